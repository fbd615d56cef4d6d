"""The shape of the source tree: small modules and classes, layers that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "mentorpay"
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300
# Alembic revisions are append-only history: each is written once and never edited.
EXEMPT = ("migrations/versions/",)


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if not any(part in p.as_posix() for part in EXEMPT))


def _name(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_module_is_small(path: Path) -> None:
    """Every module under src/mentorpay is at most 500 lines, so a reader can hold it at once."""
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_classes_are_small(path: Path) -> None:
    """No class under src/mentorpay is longer than 300 lines: rules, storage and wiring split."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    big = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert not big, f"{_name(path)}: {big}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_posting_rules_need_no_database() -> None:
    """The ledger's posting rules import neither SQLAlchemy nor a driver: they are pure."""
    rules = SRC / "ledger" / "rules.py"
    heavy = {m for m in _imports(rules) if m.split(".")[0] in {"sqlalchemy", "psycopg", "sqlite3"}}
    assert not heavy


def test_no_module_outside_the_test_kit_imports_it() -> None:
    """Only the test kit itself and the demo import mentorpay.testing (the CLI does not)."""
    offenders = [
        _name(p)
        for p in _modules()
        if "testing" not in p.relative_to(SRC).parts
        and p.name != "demo.py"
        and any(m == "mentorpay.testing" or m.startswith("mentorpay.testing.") for m in _imports(p))
    ]
    assert not offenders
