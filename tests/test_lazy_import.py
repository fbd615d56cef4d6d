"""`import mentorpay` is lazy yet complete: its loader and its type-checking imports agree, and
the first use of a name makes the package what an eager import would."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mentorpay


def _type_checking_imports() -> dict[str, tuple[str, ...]]:
    """module -> names, from the ``if TYPE_CHECKING:`` block of mentorpay/__init__.py."""
    source = Path(mentorpay.__file__).read_text(encoding="utf-8")
    found: dict[str, tuple[str, ...]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "_typing.TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                found[stmt.module] = tuple(alias.name for alias in stmt.names)
    return found


def test_loader_and_type_checking_imports_agree() -> None:
    """The loader reads the modules the TYPE_CHECKING imports name, and they cover __all__."""
    imports = _type_checking_imports()
    assert set(imports) == set(mentorpay._SOURCES)
    imported = {name for names in imports.values() for name in names}
    assert imported == set(mentorpay.__all__) - {"__version__"}


def test_each_name_is_the_object_its_import_names() -> None:
    """mentorpay.X is the very object the TYPE_CHECKING import takes (no copies, no proxies)."""
    import importlib

    for module_name, names in _type_checking_imports().items():
        module = importlib.import_module(module_name)
        for name in names:
            assert getattr(mentorpay, name) is getattr(module, name), name


def test_first_use_loads_everything_and_dir_lists_all() -> None:
    """In a fresh interpreter: import loads no SQLAlchemy; one name loads the whole API."""
    code = (
        "import sys, mentorpay\n"
        "assert 'sqlalchemy' not in sys.modules\n"
        "assert set(mentorpay.__all__) <= set(dir(mentorpay))\n"
        "mentorpay.Money\n"
        "missing = [n for n in mentorpay.__all__ if n not in vars(mentorpay)]\n"
        "print(missing, 'sqlalchemy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[] True"


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A name mentorpay does not have raises AttributeError, as for any module."""
    assert not hasattr(mentorpay, "NoSuchName")
