"""The public contract: exported names, the error tree, and import without side effects."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import mentorpay
from mentorpay import errors


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted, unique, and each name is importable from mentorpay."""
    assert list(mentorpay.__all__) == sorted(set(mentorpay.__all__))
    for name in mentorpay.__all__:
        assert hasattr(mentorpay, name), name


def test_public_names_are_exactly_the_exports() -> None:
    """Every public attribute of the package is in __all__ (submodules aside)."""
    public = {
        name
        for name, value in vars(mentorpay).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(mentorpay.__all__) - {"__version__"}


def test_every_error_is_exported_and_carries_http_status() -> None:
    """Each MentorpayError subclass is public and names an HTTP status between 400 and 599."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.MentorpayError)
        assert 400 <= cls.http_status < 600
        assert name in mentorpay.__all__


def test_error_tree_docstring_names_every_error() -> None:
    """The exception tree drawn in errors.py mentions every error class."""
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, name


def test_import_has_no_side_effects(tmp_path: object) -> None:
    """Importing mentorpay creates no files and reads no Stripe variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE", "MENTORPAY"))}
    code = "import os, mentorpay; print(sorted(os.listdir('.')))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_every_test_has_a_one_line_docstring() -> None:
    """Each test in this suite says, in one line, what it proves."""
    import ast
    from pathlib import Path

    missing = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                doc = ast.get_docstring(node) or ""
                if not doc.strip() or "\n" in doc.strip():
                    missing.append(f"{path.name}::{node.name}")
    assert missing == []


def test_payment_pending_error_is_a_public_conflict() -> None:
    """PaymentPendingError is exported, a ConflictError, and answers 409 payment_pending."""
    assert mentorpay.PaymentPendingError is errors.PaymentPendingError
    assert issubclass(errors.PaymentPendingError, errors.ConflictError)
    assert (errors.PaymentPendingError.http_status, errors.PaymentPendingError.code) == (
        409,
        "payment_pending",
    )
