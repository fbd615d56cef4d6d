"""The examples' cancellation routes (Flask test client): who may cancel, what the page and the
JSON say, and that nothing paid means nothing refunded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from examples.flask_app import create_app
from flask.testing import FlaskClient

from tests.test_examples_flask import _env, _example


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    """The Flask example in offline mode."""
    app = create_app(_env(tmp_path))
    yield app.test_client()
    _example(app).mp.engine.dispose()


def test_only_the_mentee_or_mentor_may_cancel(client: FlaskClient) -> None:
    """A stranger gets 403 and nothing is recorded; an unknown booking is 404."""
    booking = client.post("/demo/bookings").get_json()["booking_id"]
    refused = client.post(f"/bookings/{booking}/cancel", headers={"X-Demo-User": "99"})
    assert refused.status_code == 403
    assert "Already cancelled" not in client.get(f"/bookings/{booking}/cancel").text
    missing = client.post("/bookings/nope/cancel", headers={"X-Demo-User": "7"})
    assert missing.status_code == 404
    assert client.post(f"/bookings/{booking}/cancel").status_code == 401


def test_unpaid_booking_cancels_with_nothing_refunded(client: FlaskClient) -> None:
    """The mentor cancels an unpaid booking: recorded, nothing refunded, page says so."""
    booking = client.post("/demo/bookings").get_json()["booking_id"]
    page = client.get(f"/bookings/{booking}/cancel")
    assert page.status_code == 200
    assert "keeps its commission" in page.text
    done = client.post(f"/bookings/{booking}/cancel", headers={"X-Demo-User": "3"})
    assert done.status_code == 200
    body = done.get_json()
    assert (body["cancelled_by"], body["refund_display"], body["mentor_pending"]) == (
        "mentor",
        "nothing",
        None,
    )
    assert "Already cancelled by the mentor" in client.get(f"/bookings/{booking}/cancel").text
