"""A small mutation-testing runner for mentorpay (standard library and pytest only).

For each mutant (one small fault injected into one line of a module) it runs the tests that cover
that module and records whether any of them failed ("killed") or all passed ("survived").

Why a runner of our own: mutmut took about 30 s per mutant here. This one imports pytest and
the heavy third-party libraries once, then forks one child per mutant; the child loads the
mutated module *from memory* through an import hook and runs pytest in-process with ``-x``. The
source file on disk is never written, so Ctrl-C, a timeout or a crash cannot leave a mutated
file behind. (A test that starts a separate Python process would see the original module; the
test files mapped below do not.)

Usage: see ``scripts/mutation.sh`` or ``python scripts/mutation.py --help``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.abc
import importlib.util
import os
import random
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
EQUIVALENT_FILE = ROOT / "scripts" / "mutation_equivalent.txt"

# module -> the test files that exercise it, fastest and most direct first (pytest -x stops at
# the first failure, so a killed mutant costs only the tests up to the one that notices).
_LEDGER_TESTS = [
    "tests/test_posting_rules.py",
    "tests/test_mutation_ledger.py",
    "tests/test_ledger.py",
    "tests/test_refunds.py",
    "tests/test_payouts.py",
    "tests/test_reconcile.py",
    "tests/test_flow.py",
    "tests/test_ledger_properties.py",
    "tests/test_webhook_truth.py",
    "tests/test_payment_review.py",
    "tests/test_dispute_holds.py",
    "tests/test_refund_failures.py",
    "tests/test_payment_lifecycle_orderings.py",
]
_WEBHOOK_TESTS = [
    "tests/test_mutation_webhooks.py",
    "tests/test_webhooks_kit.py",
    "tests/test_webhooks.py",
    "tests/test_webhook_truth.py",
    "tests/test_webhook_attacker.py",
    "tests/test_stripe_shapes.py",
    "tests/test_checkout_delayed_payment.py",
    "tests/test_refund_failures.py",
    "tests/test_flow.py",
    "tests/test_webhooks_orderings.py",
]
# Module names are dotted below mentorpay: "ledger.rules" is src/mentorpay/ledger/rules.py.
_PLAN_TESTS = [
    "tests/test_plans_checkout_events.py",
    "tests/test_plans_credits.py",
    "tests/test_plans_lifecycle.py",
    "tests/test_plans_notifications.py",
    "tests/test_plans_orderings.py",
    "tests/test_plans_attacker.py",
    "tests/test_plans_refunds.py",
]
MODULE_TESTS: dict[str, list[str]] = {
    "money": [
        "tests/test_mutation_money.py",
        "tests/test_money.py",
        "tests/test_commission.py",
    ],
    "_currencies": ["tests/test_mutation_money.py", "tests/test_money.py"],
    "commission": [
        "tests/test_mutation_money.py",
        "tests/test_commission.py",
        "tests/test_money.py",
    ],
    "ledger.rules": _LEDGER_TESTS,
    "ledger.state": _LEDGER_TESTS,
    "ledger.postings": _LEDGER_TESTS,
    "ledger._journal": _LEDGER_TESTS,
    "ledger.queries": _LEDGER_TESTS,
    "ledger.verify": _LEDGER_TESTS,
    "webhooks.processor": _WEBHOOK_TESTS,
    "webhooks._inbox": _WEBHOOK_TESTS,
    "webhooks._deferral": _WEBHOOK_TESTS,
    "webhooks._signature": _WEBHOOK_TESTS,
    "webhooks.handlers.payments": _WEBHOOK_TESTS,
    "webhooks.handlers.refunds": _WEBHOOK_TESTS,
    "webhooks.handlers.disputes": _WEBHOOK_TESTS,
    "webhooks.handlers._common": _WEBHOOK_TESTS,
    "stripe_objects": _WEBHOOK_TESTS,
    "payment_truth": [
        "tests/test_payment_truth.py",
        "tests/test_webhook_truth.py",
        "tests/test_webhook_attacker.py",
    ],
    "payments": [
        "tests/test_payment_review.py",
        "tests/test_webhook_truth.py",
        "tests/test_cli_payments.py",
    ],
    "payouts.rules": ["tests/test_payout_rules.py", "tests/test_payouts.py"],
    "cancellation": [
        "tests/test_mutation_marketplace.py",
        "tests/test_cancellation_policy.py",
        "tests/test_cancellations.py",
    ],
    "accounts.rules": [
        "tests/test_mutation_marketplace.py",
        "tests/test_accounts.py",
        "tests/test_accounts_gateway.py",
    ],
    "plans.rules": ["tests/test_plan_rules.py", *_PLAN_TESTS],
    "plans.credits": _PLAN_TESTS,
    "webhooks.handlers._plan_periods": _PLAN_TESTS,
    "webhooks.handlers.plans": _PLAN_TESTS,
}
DEFAULT_MODULES = list(MODULE_TESTS)
TEST_OVERRIDE: list[str] = []  # --tests

_SWAP_BINOP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
    ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
_SWAP_CMP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_SWAP_CALL = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutant:
    """One fault: node number ``index`` (in ``ast.walk`` order) rewritten by ``kind``."""

    module: str
    path: str  # relative to ROOT
    line: int
    index: int
    kind: str
    arg: int
    original: str
    mutant: str

    def describe(self) -> str:
        return f"{self.path}:{self.line}: {self.original} -> {self.mutant}"


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: docstrings, annotations, f-strings, ``__all__``."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                mark(body[0])
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mark(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                mark(arg.annotation)
            if node.args.vararg:
                mark(node.args.vararg.annotation)
            if node.args.kwarg:
                mark(node.args.kwarg.annotation)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.JoinedStr) or (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        ):
            mark(node)
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            # The exception's message is not behaviour; its class and the condition are.
            for sub in [*node.exc.args, *node.exc.keywords]:
                mark(sub)
    return skip


def _candidates(node: ast.AST) -> Iterator[tuple[str, int]]:
    """The (kind, arg) mutations that apply to ``node``."""
    if isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BINOP:
        yield "binop", 0
    elif isinstance(node, ast.AugAssign) and type(node.op) in _SWAP_BINOP:
        yield "augop", 0
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _SWAP_CMP:
                yield "cmp", i
    elif isinstance(node, ast.BoolOp):
        yield "boolop", 0
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        yield "unary", 0
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, int):  # bools included: True <-> False
            yield "const", 0
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        # Deleting a log call changes what operators read, not what the library does.
        func = node.value.func
        owner = func.value if isinstance(func, ast.Attribute) else None
        if not (isinstance(owner, ast.Name) and owner.id in ("logger", "logging", "log")):
            yield "delcall", 0
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            yield "retnone", 0
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _SWAP_CALL
    ):
        yield "call", 0
    elif isinstance(node, ast.If) and not isinstance(
        node.test, ast.Compare | ast.BoolOp | ast.UnaryOp
    ):
        # Comparisons, and/or and `not` already get their own mutants; negating them is noise.
        yield "ifnot", 0


def _apply(node: ast.AST, kind: str, arg: int) -> ast.AST:
    """Mutate ``node`` in place (or return its replacement)."""
    if kind == "binop":
        assert isinstance(node, ast.BinOp)
        node.op = _SWAP_BINOP[type(node.op)]()
    elif kind == "augop":
        assert isinstance(node, ast.AugAssign)
        node.op = _SWAP_BINOP[type(node.op)]()
    elif kind == "cmp":
        assert isinstance(node, ast.Compare)
        node.ops[arg] = _SWAP_CMP[type(node.ops[arg])]()
    elif kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "unary":
        assert isinstance(node, ast.UnaryOp)
        return node.operand
    elif kind == "const":
        assert isinstance(node, ast.Constant)
        if isinstance(node.value, bool):
            node.value = not node.value
        else:
            node.value = node.value + 1 if node.value != 1 else 0
    elif kind == "delcall":
        return ast.Pass()
    elif kind == "retnone":
        assert isinstance(node, ast.Return)
        node.value = ast.Constant(value=None)
    elif kind == "call":
        assert isinstance(node, ast.Call)
        assert isinstance(node.func, ast.Name)
        node.func.id = _SWAP_CALL[node.func.id]
    elif kind == "ifnot":
        assert isinstance(node, ast.If)
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    return node


def _show(node: ast.AST, source: str) -> str:
    if isinstance(node, ast.If):
        return f"if {ast.unparse(node.test)}:"
    if isinstance(node, ast.Pass):
        return "pass"
    text = ast.unparse(node)
    return " ".join(text.split())[:120]


def _replace(tree: ast.AST, target: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``target`` is in ``tree`` (when _apply returned a different node)."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is target:
                        value[i] = new
                        return


def module_path(module: str) -> Path:
    """The file of ``mentorpay.<module>``; ``ledger.rules`` is src/mentorpay/ledger/rules.py."""
    return SRC / "mentorpay" / (module.replace(".", "/") + ".py")


def generate(module: str, functions: set[str] | None = None) -> list[Mutant]:
    """Every mutant of ``mentorpay.<module>`` (optionally only inside the named functions)."""
    path = module_path(module)
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    skip = _skipped_nodes(tree)
    inside: set[int] | None = None
    if functions:
        inside = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in functions:
                inside.update(id(n) for n in ast.walk(node))
    # A constant passed by keyword is shown with its name (`slots=True -> slots=False`).
    keyword_of = {
        id(k.value): k.arg for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords
    }
    mutants: list[Mutant] = []
    for index, node in enumerate(ast.walk(tree)):
        # `slots=` on a dataclass only changes memory layout (frozen already forbids new
        # attributes), so flipping it is equivalent everywhere: not generated at all.
        if keyword_of.get(id(node)) == "slots":
            continue
        if id(node) in skip or (inside is not None and id(node) not in inside):
            continue
        line = getattr(node, "lineno", 0)
        if not line or "pragma: no mutate" in lines[line - 1]:
            continue
        for kind, arg in _candidates(node):
            before = _show(node, source)
            after = _show(_apply(copy.deepcopy(node), kind, arg), source)
            if before == after:
                continue
            if keyword_of.get(id(node)):
                before, after = (
                    f"{keyword_of[id(node)]}={before}",
                    f"{keyword_of[id(node)]}={after}",
                )
            rel = str(path.relative_to(ROOT))
            mutants.append(Mutant(module, rel, line, index, kind, arg, before, after))
    return mutants


def mutated_code(m: Mutant) -> CodeType:
    path = ROOT / m.path
    tree = ast.parse(path.read_text())
    node = next(n for i, n in enumerate(ast.walk(tree)) if i == m.index)
    new = _apply(node, m.kind, m.arg)
    if new is not node:
        _replace(tree, node, new)
    ast.fix_missing_locations(tree)
    return compile(tree, str(path), "exec")


class _MutantLoader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module's mutated code object instead of its file."""

    def __init__(self, name: str, path: Path, code: CodeType) -> None:
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname: str, path: object, target: object = None) -> object:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self.code, module.__dict__)  # noqa: S102 - the whole point: run the mutant


def _pytest_args(module: str, extra: list[str]) -> list[str]:
    tests = TEST_OVERRIDE or [t for t in MODULE_TESTS[module] if (ROOT / t).exists()]
    return [
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--hypothesis-seed=0",
        "-W",
        "ignore::DeprecationWarning",
        *extra,
        *tests,
    ]


def run_child(module: str, code: CodeType | None, extra: list[str], timeout: float) -> str:
    """Fork; in the child run pytest against the (mutated) module. Returns the outcome."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            if not os.environ.get("MUTATION_VERBOSE"):
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            os.setpgid(0, 0)
            os.chdir(ROOT)
            # Test this tree's package even if the environment's install points elsewhere.
            sys.path.insert(0, str(SRC))
            if code is not None:
                name = f"mentorpay.{module}"
                sys.meta_path.insert(0, _MutantLoader(name, module_path(module), code))
            import pytest

            rc = pytest.main(_pytest_args(module, extra))
            os._exit(int(rc))
        except BaseException:  # anything here means "the tests could not pass"
            os._exit(99)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                if rc == 0:
                    return "survived"
                if rc == 5:
                    return "no-tests"
                return "killed"
            if time.monotonic() > deadline:
                _kill(pid)
                return "timeout"
            time.sleep(0.02)
    except BaseException:
        # Ctrl-C reaches only this process (the child has its own process group): end the
        # child too. Nothing on disk was changed, so there is nothing else to restore.
        _kill(pid)
        raise


def _kill(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        for _ in range(50):
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.02)


def load_equivalent() -> list[tuple[str, int, str, str]]:
    """Entries ``path:line: original -> mutant  # why`` (the line is a hint, text must match)."""
    entries = []
    if not EQUIVALENT_FILE.exists():
        return entries
    for raw in EQUIVALENT_FILE.read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        body, _, why = text.partition("  # ")
        if not why.strip():
            raise SystemExit(f"{EQUIVALENT_FILE}: every entry needs '  # why': {raw!r}")
        location, _, change = body.partition(": ")
        path, _, line = location.rpartition(":")
        original, _, mutant = change.partition(" -> ")
        entries.append((path, int(line), original.strip(), mutant.strip()))
    return entries


def is_equivalent(m: Mutant, entries: list[tuple[str, int, str, str]], all_m: list[Mutant]) -> bool:
    same_text = [e for e in entries if (e[0], e[2], e[3]) == (m.path, m.original, m.mutant)]
    if any(e[1] == m.line for e in same_text):
        return True
    # Lines move when the file is edited: a unique textual match still counts.
    if same_text:
        twins = [
            x for x in all_m if (x.path, x.original, x.mutant) == (m.path, m.original, m.mutant)
        ]
        return len(twins) == 1
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: {' '.join(DEFAULT_MODULES)}")
    parser.add_argument("--sample", type=int, help="try N randomly chosen mutants per module")
    parser.add_argument("--seed", type=int, default=1, help="seed for --sample (default 1)")
    parser.add_argument("--budget", type=float, default=600, help="seconds in all (default 600)")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default 4x baseline)")
    parser.add_argument("--only", help="comma-separated function/class names to mutate")
    parser.add_argument("--line", type=int, action="append", help="only mutants on this line")
    parser.add_argument("--list", action="store_true", help="list mutants, run nothing")
    parser.add_argument("-k", dest="keyword", help="passed to pytest -k")
    parser.add_argument("--tests", nargs="+", help="run these test files instead of the map")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every outcome")
    args = parser.parse_args(argv)
    modules = args.modules or DEFAULT_MODULES
    for module in modules:
        if module not in MODULE_TESTS:
            parser.error(f"unknown module {module!r}; known: {', '.join(MODULE_TESTS)}")
    extra = ["-k", args.keyword] if args.keyword else []
    TEST_OVERRIDE[:] = args.tests or []
    functions = set(args.only.split(",")) if args.only else None
    equivalent = load_equivalent()

    # Imported once here so every forked child starts with them loaded; mentorpay itself is
    # not imported in this process, so each child imports it afresh (with the mutant).
    import hypothesis  # noqa: F401
    import pydantic  # noqa: F401
    import pytest  # noqa: F401
    import responses  # noqa: F401
    import sqlalchemy  # noqa: F401
    import stripe  # noqa: F401

    assert "mentorpay" not in sys.modules, "the runner must not import mentorpay itself"

    start = time.monotonic()
    totals = []
    for module in modules:
        every = generate(module, functions)
        chosen = sorted(every, key=lambda m: (m.line, m.index))
        if args.line:
            chosen = [m for m in chosen if m.line in args.line]
        if args.sample and args.sample < len(chosen):
            chosen = sorted(
                random.Random(args.seed).sample(chosen, args.sample),
                key=lambda m: (m.line, m.index),
            )
        if args.list:
            for m in chosen:
                flag = "  [equivalent]" if is_equivalent(m, equivalent, every) else ""
                print(f"{m.describe()}{flag}")
            continue
        t0 = time.monotonic()
        baseline = run_child(module, None, extra, timeout=600)
        base_s = time.monotonic() - t0
        if baseline != "survived":
            print(f"{module}: the unmutated tests do not pass ({baseline}); nothing measured")
            return 2
        timeout = args.timeout or max(10.0, 4 * base_s)
        print(
            f"== {module}: {len(chosen)} of {len(every)} mutants; tests "
            f"{' '.join(TEST_OVERRIDE or MODULE_TESTS[module])}; "
            f"baseline {base_s:.1f}s, timeout {timeout:.0f}s",
            flush=True,
        )
        counts = {"killed": 0, "survived": 0, "equivalent": 0, "timeout": 0, "no-tests": 0}
        survivors: list[Mutant] = []
        tried = 0
        for m in chosen:
            if time.monotonic() - start > args.budget:
                print(f"   budget of {args.budget:.0f}s spent; stopping {module}", flush=True)
                break
            tried += 1
            if is_equivalent(m, equivalent, every):
                counts["equivalent"] += 1
                continue
            try:
                code = mutated_code(m)
            except (SyntaxError, ValueError, TypeError):
                counts["killed"] += 1  # does not even compile
                continue
            outcome = run_child(module, code, extra, timeout)
            counts[outcome] += 1
            if outcome in ("survived", "no-tests"):
                survivors.append(m)
                print(f"   SURVIVED {m.describe()}", flush=True)
            elif args.verbose:
                print(f"   {outcome} {m.describe()}", flush=True)
        behaviour = tried - counts["equivalent"]
        killed = counts["killed"] + counts["timeout"]
        score = 100.0 * killed / behaviour if behaviour else 100.0
        totals.append((module, tried, killed, len(survivors), counts["equivalent"], score))
        print(
            f"   {module}: tried {tried}, killed {killed} (timeouts {counts['timeout']}), "
            f"survived {len(survivors)}, equivalent {counts['equivalent']}, score {score:.1f}%",
            flush=True,
        )
    if not args.list:
        print(f"\n{'module':<12}{'tried':>7}{'killed':>8}{'survived':>10}{'equiv':>7}{'score':>8}")
        for module, tried, killed, surv, eq, score in totals:
            print(f"{module:<12}{tried:>7}{killed:>8}{surv:>10}{eq:>7}{score:>7.1f}%")
        print(f"elapsed {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
