"""Id widths are defined once (from the model's column) and checked the same way everywhere."""

from __future__ import annotations

import pytest

from mentorpay.db import ID_MAX, IN_CHUNK, check_id, chunked
from mentorpay.errors import InvalidRequestError
from mentorpay.models import Id


def test_id_max_is_the_id_column_width() -> None:
    """ID_MAX is read from the models' Id column type, not written down again."""
    assert ID_MAX == Id.length == 255


@pytest.mark.parametrize("value", ["", "x" * (ID_MAX + 1), 42, None])
def test_check_id_refuses_what_the_column_cannot_hold(value: object) -> None:
    """Empty, over-long and non-string ids are an InvalidRequestError naming the field."""
    with pytest.raises(InvalidRequestError, match="booking id must be a non-empty string") as info:
        check_id(value, field="id", label="booking id")
    assert info.value.details["field"] == "id"


def test_check_id_accepts_a_full_width_id() -> None:
    """An id of exactly ID_MAX characters fits."""
    check_id("x" * ID_MAX, field="mentor_id")


def test_chunked_covers_every_value_once_in_order() -> None:
    """chunked() slices a list into IN_CHUNK-sized pieces that add up to the list."""
    values = list(range(2 * IN_CHUNK + 3))
    pieces = list(chunked(values))
    assert [len(p) for p in pieces] == [IN_CHUNK, IN_CHUNK, 3]
    assert [v for p in pieces for v in p] == values
    assert list(chunked([])) == []
