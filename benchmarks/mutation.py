"""Mutation testing of the functions that hold README's promises: change one thing at a time, run the tests that
speak of it, count how many changes the tests catch ("killed") per module, and list the ones they miss.

    nice -n 10 python benchmarks/mutation.py                 # every target (tens of minutes on two cores)
    nice -n 10 python benchmarks/mutation.py --only bootstrap -v       # every mutant's outcome as it runs

A small AST mutator of our own (not mutmut: it copies the package and maps every test to every line first,
which on this suite and machine costs more than the mutants themselves). Each target names a module, the
functions in it that hold a promise and the tests that speak of them. A mutant is one of: a comparison flipped
(``<`` <-> ``<=``, ``==`` <-> ``!=``, ``in`` <-> ``not in``), an arithmetic operator swapped, ``and`` <-> ``or``,
a ``not`` or unary minus dropped, a number changed (n -> n + 1, x -> 2x) or a bool flipped, a ``return``'s
value replaced by ``None``, one key dropped from a dict display, or one statement deleted (a ``raise``, a
call, an assignment). Mutants run in a scratch copy of the repository (so tests that start ``lmbench`` in a
subprocess see the mutant too), one at a time, each in a forked child that imports lmbench from the copy:
torch and the other heavy libraries are imported once, before the fork. A mutant is killed when its tests fail
or run past ``--timeout``.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Target:
    """A module, the functions in it that hold a promise (``Class.method`` for methods) and their tests."""

    name: str
    module: str  # path from the repository root
    functions: list[str]
    files: list[str]  # test files, fastest first (the run stops at the first failure)
    keywords: str = ""  # a pytest -k expression choosing the tests in them that speak of the functions

    @property
    def tests(self) -> list[str]:
        return [*self.files, *(["-k", self.keywords] if self.keywords else [])]


# fmt: off
TARGETS = [
    Target("metrics", "lmbench/evaluation/metrics.py",
           ["perplexity", "bits_per_token", "bits_per_char", "line_totals", "score"],
           ["tests/test_promises.py"], "bits or score_counts or line_totals"),
    Target("bootstrap", "lmbench/evaluation/bootstrap.py",
           ["_units", "_resample_indices", "perplexity_interval", "paired_difference", "_paired_result",
            "mean_interval", "_seed_sums", "_resampled_cross_entropy", "mean_cross_entropy",
            "seeded_perplexity_interval", "seeded_paired_difference"],
           ["tests/test_promises.py"], "interval or paired_difference or paired_p_value or stream_mode"),
    Target("smoothing", "lmbench/models/ngram/smoothing.py",
           ["interpolated_to_backoff", "adjusted_count", "_count_of_counts", "mkn_discounts_from",
            "single_discount_from", "discounted_interpolation", "add_k", "good_turing_discounts", "Katz.estimate",
            "WittenBell.estimate", "StupidBackoff.estimate", "_Discounting.counts"],
           ["tests/test_ngram_smoothers.py", "tests/test_nltk_parity.py", "tests/test_ngram.py",
            "tests/test_kenlm_parity.py", "tests/test_ngram_pruning.py"]),
    Target("training loop (resume, divergence)", "lmbench/training/loop.py",
           ["Trainer._save", "Trainer._load", "Trainer._resume", "Trainer._step", "Trainer._backward_and_update",
            "Trainer._checkpoint_or_interrupt", "Trainer._evaluate", "Trainer._finish", "_canonical", "Trainer._closing_eval_estimate",
            "Trainer._fraction_done"],
           ["tests/test_promises.py", "tests/test_trust.py", "tests/test_artefacts.py", "tests/test_training_recipes.py",
            "tests/test_distributed.py"],
           "gradient or validation_loss or resume_with_dropout or checkpoint or non_finite or after_an_interrupt"
           " or diverged or damaged_checkpoint or learning_curve_holds or minutes_budget or on_a_terminal"
           " or progress_lines or two_gloo_processes"),
    Target("run identity (runs.py)", "lmbench/runs.py",
           ["canonical_json", "fingerprint", "_json_default", "RunFolder.check", "RunFolder.read_json"],
           ["tests/test_promises.py"], "identities_hold or own_identity"),
    Target("run identity (experiment.py)", "lmbench/experiment.py", ["training_identity", "scoring_identity"],
           ["tests/test_promises.py"], "identities_hold or own_identity"),
]
# fmt: on

# reasons shared by several equivalent mutants
_GUARD = (
    "a stored n-gram's context was seen at least as often as the n-gram (total >= 1), so the guard "
    "against dividing by zero never chooses its other branch"
)
_WITTEN_BELL_GUARD = (
    "Witten-Bell's divisor c(h) + T(h) is at least 2 for a stored n-gram's context: " + _GUARD
)
_FLOAT16_ONLY = "the gradient scaler exists only for precision = float16, which lmbench allows on CUDA alone"

# Survivors no test can kill, each with the reason: (target name, function, description) as the run prints them.
EQUIVALENT = {
    ("bootstrap", "_units", "0 -> 1"):
        "np.zeros(0) -> np.zeros(1) only for an empty input, whose one zero 'unit' has a count of 0: every caller "
        "still sees fewer than two units and returns NaN, as for no unit",
    ("bootstrap", "_seed_sums", "0 -> 1"):
        "pairs[0][1] -> pairs[1][1]: the units' token counts, the same for every seed (the other '0 -> 1', "
        "p[0] -> p[1], stacks counts for sums and is killed)",
    ("bootstrap", "seeded_perplexity_interval", "1 -> 2"):
        "the key of the seed-drawing stream, default_rng([seed, 1]) -> [seed, 2]: any fixed key gives an "
        "independent, reproducible stream; the figures change with it as they do with --seed",
    ("smoothing", "interpolated_to_backoff", "delete `prob[bos_id] = 0.0`"):
        "<s> is never counted as a predicted word, so its order-1 estimate (count 0) and its share of the uniform "
        "base (0) already give it probability 0; the line states the invariant",
    ("smoothing", "discounted_interpolation", "delete `prob[bos_id] = 0.0`"):
        "as in interpolated_to_backoff: <s>'s count and its uniform share are 0, so its order-1 probability is 0",
    ("smoothing", "adjusted_count", "delete `adjusted[bos_id] = 0.0`"):
        "the unigram <s> has raw count 0 (it is never predicted) and no word precedes it, so both counts the "
        "np.where chooses between are already 0",
    ("smoothing", "discounted_interpolation", "0 -> 1"):
        "np.ones(0) -> np.ones(1): the placeholder back-off of the order just made, replaced by the next order's "
        "gamma (or by the top order's ones) before anything reads it",
    ("smoothing", "mkn_discounts_from", "4 -> 5"):
        "two places: a slice of count_of_counts(c, 4), which never holds a fifth entry (a longer array is tested and "
        "kills the slice's other mutants), and the warning's display precision (round to 4 or 5 digits)",
    ("smoothing", "mkn_discounts_from", "1 -> 2"):
        "enumerate(d, start=2) loosens the upper bounds D_k <= k by one, but for counts that are never negative "
        "D1 <= 1, D2 <= 2 and D3+ <= 3 always hold (the bounds are KenLM's check, kept as it has them)",
    ("smoothing", "good_turing_discounts", "1 -> 2"):
        "_count_of_counts(counts, k + 2) returns one more n_r than the formula reads (n_1..n_(k+1)); the other "
        "'1 -> 2' mutants of the function are killed by the hand-computed discounts",
    ("smoothing", "Katz.estimate", "delete `prob[bos_id] = 0.0`"):
        "<s> has count 0 and no share of the uniform base, so its order-1 probability is already 0",
    ("smoothing", "Katz.estimate", "total[table.context] > 0 -> total[table.context] >= 0"): _GUARD,
    ("smoothing", "Katz.estimate", "0 -> 1"): _GUARD + " (total > 1 keeps total = 1 as the divisor 1.0)",
    ("smoothing", "Katz.estimate", "seen_mass < 1.0 -> seen_mass <= 1.0"):
        "a context whose seen words hold all its mass (seen_mass = 1) is scaled by 1: no change",
    ("smoothing", "Katz.estimate", "1.0 -> 2.0"):
        "three places no value reaches: the divide-by-zero guard above, seen_mass < 2 (a mass is never above 1, "
        "and scaling by a mass of 1 changes nothing), the back-off of a context that is never followed (total 0) "
        "or stuck (its lower order leaves at most STUCK_MASS = 1e-12 for unseen words, below every tolerance)",
    ("smoothing", "Katz.estimate", "total > 0 -> total >= 0"):
        "a context never followed (total 0) has seen and lower masses 0: it is not stuck either way, and its "
        "back-off (1 - 0) / (1 - 0) = 1 equals the other branch's",
    ("smoothing", "Katz.estimate", "1.0 - lower_mass <= STUCK_MASS -> 1.0 - lower_mass < STUCK_MASS"):
        "differs only when the lower order's free mass equals 1e-12 exactly",
    ("smoothing", "Katz.estimate", "1e-300 -> 2e-300"):
        "the floor only keeps a stuck context's division finite; its result is replaced by 1 for stuck contexts",
    ("smoothing", "StupidBackoff.estimate", "1 -> 2"):
        "enumerate(tables, start=2) changes only the minimum length context_sums gives its bincount: the sums "
        "read at the stored contexts are the same",
    ("smoothing", "StupidBackoff.estimate", "total[table.context] > 0 -> total[table.context] >= 0"): _GUARD,
    ("smoothing", "StupidBackoff.estimate", "0 -> 1"): _GUARD + " (total > 1 keeps total = 1 as the divisor 1.0)",
    ("smoothing", "StupidBackoff.estimate", "1.0 -> 2.0"): _GUARD,
    ("smoothing", "WittenBell.estimate", "1.0 -> 2.0"):
        _WITTEN_BELL_GUARD,
    ("smoothing", "WittenBell.estimate", "den[table.context] > 0 -> den[table.context] >= 0"):
        "Witten-Bell's divisor c(h) + T(h) is at least 2 for a stored n-gram's context: the guard never acts",
    ("smoothing", "WittenBell.estimate", "0 -> 1"):
        _WITTEN_BELL_GUARD,
    ("training loop (resume, divergence)", "Trainer._load",
     "{'model', 'optimizer', 'state'} <= set(payload) -> {'model', 'optimizer', 'state'} < set(payload)"):
        "every checkpoint lmbench writes holds more keys than these three (and a foreign file fails the sha256 "
        "record first), so < and <= agree on every file that reaches this check",
    ("training loop (resume, divergence)", "Trainer._step", "low or torch.bfloat16 -> low and torch.bfloat16"):
        "the two differ only for precision = float16 (bf16 autocast instead of fp16), which lmbench allows on CUDA "
        "alone: not observable on a CPU-only machine (a GPU run of tests/test_training_recipes.py would see it)",
    ("training loop (resume, divergence)", "Trainer._step", "1 -> 2"):
        "state.position after a batch without targets: the loop writes no checkpoint after such a batch, the next "
        "trained batch overwrites the position and an epoch's end resets it, so no resume can read the value",
    ("training loop (resume, divergence)", "Trainer._backward_and_update", "delete `run.scaler.step(run.optimizer)`"):
        _FLOAT16_ONLY,
    ("training loop (resume, divergence)", "Trainer._evaluate",
     "loss < state.best_loss - 1e-06 -> loss <= state.best_loss - 1e-06"):
        "differs only for a fall of exactly 1e-6 in a float validation loss",
    ("training loop (resume, divergence)", "Trainer._step", "return 0 -> return None"):
        "a batch without targets: both callers test the result for truth (0 and None alike) and skip the batch",
    ("training loop (resume, divergence)", "Trainer._step", "0 -> 1"):
        "return 0 -> return 1 for a batch without targets: the loop then checks the evaluation and checkpoint "
        "schedules, which read steps and seconds that the empty batch left unchanged, so nothing else happens",
    ("training loop (resume, divergence)", "Trainer._checkpoint_or_interrupt",
     "run.state.step >= self.stop_after_steps -> run.state.step > self.stop_after_steps"):
        "stop_after_steps is the tests' stand-in for a signal; one step later is still an interruption, and the "
        "resume tests compare with an uninterrupted run, which agrees wherever the interruption falls",
    ("training loop (resume, divergence)", "Trainer._checkpoint_or_interrupt",
     "delete `run.last_checkpoint = time.perf_counter()`"):
        "checkpoints then come every step after the first interval instead of every interval: the same content "
        "at each point, only more writing (checkpoint_seconds is a cost setting, not a promise)",
    ("training loop (resume, divergence)", "Trainer._backward_and_update", "delete `run.scaler.update()`"):
        _FLOAT16_ONLY,
    ("training loop (resume, divergence)", "Trainer._checkpoint_or_interrupt",
     "time.perf_counter() - run.last_checkpoint > self.config.checkpoint_seconds -> "
     "time.perf_counter() - run.last_checkpoint >= self.config.checkpoint_seconds"):
        "> and >= differ only when a float clock difference equals checkpoint_seconds exactly, which no run "
        "(or test) can arrange",
}  # fmt: skip


# ------------------------------------------------------------------------------------------- mutants
@dataclass
class Mutant:
    index: int
    line: int
    function: str
    description: str


SWAP_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}  # fmt: skip
SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
              ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv}  # fmt: skip


def _mutations(node: ast.AST) -> Iterator[tuple[str, ast.AST | None]]:
    """(description, replacement) for each mutant of ``node`` alone; a replacement of None deletes a statement."""
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAP_COMPARE:
        new = copy.deepcopy(node)
        new.ops = [SWAP_COMPARE[type(node.ops[0])]()]
        yield f"{ast.unparse(node)} -> {ast.unparse(new)}", new
    elif isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
        new = copy.deepcopy(node)
        new.op = SWAP_BINOP[type(node.op)]()
        yield f"{ast.unparse(node)} -> {ast.unparse(new)}", new
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield f"{ast.unparse(node)} -> {ast.unparse(new)}", new
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        yield f"{ast.unparse(node)} -> {ast.unparse(node.operand)}", copy.deepcopy(node.operand)
    elif isinstance(node, ast.Constant) and type(node.value) in (bool, int, float):
        if isinstance(node.value, bool):
            value = not node.value
        elif isinstance(node.value, int):
            value = node.value + 1
        else:
            value = node.value * 2 if node.value else 1.0
        yield f"{node.value!r} -> {value!r}", ast.Constant(value)
    elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
        yield f"return {_short(node.value)} -> return None", ast.Return(ast.Constant(None))
    elif isinstance(node, ast.Dict) and len(node.keys) > 1:
        for i, key in enumerate(node.keys):
            if key is None:
                continue
            new = copy.deepcopy(node)
            del new.keys[i], new.values[i]
            yield f"dict without {ast.unparse(key)}", new
    if isinstance(node, (ast.Raise, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign)) and not (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # a docstring
    ):
        yield f"delete `{_short(node)}`", None


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= 60 else text[:57] + "..."


def _scoped_functions(tree: ast.Module, names: list[str]) -> Iterator[tuple[str, ast.AST]]:
    """The function nodes named ``f`` or ``Class.method``, in source order."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                qualified = f"{node.name}.{sub.name}" if hasattr(sub, "name") else ""
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and qualified in names:
                    yield qualified, sub


def _points(function: ast.AST) -> Iterator[ast.AST]:
    """Every node of a function body where a mutant may go (not its signature, decorators or docstring)."""
    for statement in function.body:  # type: ignore[attr-defined]
        yield from ast.walk(statement)


class _Apply(ast.NodeTransformer):
    """Replace the node ``target`` with ``replacement``; None deletes it (a statement: ``pass`` if none is left)."""

    def __init__(self, target: ast.AST, replacement: ast.AST | None):
        self.target, self.replacement = target, replacement

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name, value in ast.iter_fields(node):
            if isinstance(value, list):
                out = []
                for item in value:
                    if item is self.target:
                        if self.replacement is not None:
                            out.append(self.replacement)
                    else:
                        out.append(self.visit(item) if isinstance(item, ast.AST) else item)
                if not out and value and name in ("body", "finalbody"):
                    out = [ast.Pass()]
                setattr(node, name, out)
            elif value is self.target:
                setattr(node, name, self.replacement)
            elif isinstance(value, ast.AST):
                setattr(node, name, self.visit(value))
        return node


def mutants(source: str, functions: list[str]) -> Iterator[tuple[Mutant, str]]:
    """Every mutant of the named functions: its record and the whole module's mutated source."""
    tree = ast.parse(source)
    missing = set(functions) - {name for name, _ in _scoped_functions(tree, functions)}
    if missing:
        raise SystemExit(f"functions not found: {', '.join(sorted(missing))}")
    index = 0
    for name, function in _scoped_functions(tree, functions):
        docstring = ast.get_docstring(function) is not None
        for node in _points(function):
            if docstring and node is function.body[0]:  # type: ignore[attr-defined]
                continue
            for description, replacement in _mutations(node):
                # apply on a fresh copy of the module: the same node by its position in the walk order
                fresh = ast.parse(source)
                position = [n for n in ast.walk(tree)].index(node)
                twin = list(ast.walk(fresh))[position]
                twin_replacement = copy.deepcopy(replacement) if replacement is not None else None
                mutated = _Apply(twin, twin_replacement).visit(fresh)
                ast.fix_missing_locations(mutated)
                try:
                    text = ast.unparse(mutated)
                    compile(text, "<mutant>", "exec")
                except (SyntaxError, ValueError):
                    continue
                index += 1
                yield Mutant(index, getattr(node, "lineno", 0), name, description), text


# --------------------------------------------------------------------------------------------- running
@dataclass
class Outcome:
    target: str
    killed: int = 0
    total: int = 0
    survivors: list[Mutant] = field(default_factory=list)
    timeouts: list[Mutant] = field(default_factory=list)  # counted as killed, listed: on a loaded machine a
    # slow survivor can look like a hang, so read them before trusting the rate
    seconds: float = 0.0


def _scratch_copies(jobs: int) -> list[Path]:
    """``jobs`` copies of the repository without .git, runs or caches, in a temporary folder (../shared kept)."""
    scratch = Path(tempfile.mkdtemp(prefix="lmbench-mutation-"))
    ignore = shutil.ignore_patterns(
        ".git", "__pycache__", "runs", ".pytest_cache", ".hypothesis", "*.egg-info"
    )
    shared = ROOT.parent / "shared"
    copies = []
    for slot in range(jobs):
        repo = scratch / f"slot-{slot}" / "repo"
        shutil.copytree(ROOT, repo, symlinks=True, ignore=ignore)
        if shared.exists():
            (repo.parent / "shared").symlink_to(shared.resolve())
        copies.append(repo)
    return copies


def _start_tests(repo: Path, tests: list[str], *, quiet: bool = True) -> int:
    """Fork a child that imports lmbench from ``repo`` and runs ``tests`` there (``quiet``: output to /dev/null);
    its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 3  # the child: a fresh lmbench from the scratch copy, the parent's torch and friends
    try:
        os.chdir(repo)
        sys.path.insert(0, str(repo))
        for name in [m for m in sys.modules if m == "lmbench" or m.startswith(("lmbench.", "tests"))]:
            del sys.modules[name]
        if quiet:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        import pytest

        basetemp = (
            repo.parent / "pytest-tmp"
        )  # one per copy: parallel sessions never share or clean each other's
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}", *tests])
    finally:
        os._exit(int(code))


def _poll(pid: int, deadline: float) -> str | None:
    """'pass', 'fail' or 'timeout' (the child killed) once the child is done; None while it runs."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        return "pass" if os.waitstatus_to_exitcode(status) == 0 else "fail"
    if time.monotonic() < deadline:
        return None
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout"


def run_target(
    target: Target, repos: list[Path], *, timeout: float, limit: int | None, every: int, say
) -> Outcome:
    """The target's mutants, ``len(repos)`` at a time (one per scratch copy); the module is restored after."""
    original = (ROOT / target.module).read_text(encoding="utf-8")
    outcome = Outcome(target.name)
    started = time.perf_counter()
    pid, deadline = _start_tests(repos[0], target.tests, quiet=False), time.monotonic() + 3 * timeout
    while (baseline := _poll(pid, deadline)) is None:
        time.sleep(0.5)
    if baseline != "pass":
        raise SystemExit(
            f"{target.name}: the tests fail without any mutant ({baseline}, output above); fix them"
        )
    queue = [
        (m, text)
        for m, text in mutants(original, target.functions)
        if (limit is None or m.index <= limit) and (m.index - 1) % every == 0
    ]
    running: dict[int, tuple[int, Mutant, float]] = {}
    free = list(range(len(repos)))
    try:
        while queue or running:
            while queue and free:
                slot = free.pop()
                mutant, text = queue.pop(0)
                (repos[slot] / target.module).write_text(text, encoding="utf-8")
                running[slot] = (_start_tests(repos[slot], target.tests), mutant, time.monotonic() + timeout)
            time.sleep(0.2)
            for slot, (pid, mutant, deadline) in list(running.items()):
                result = _poll(pid, deadline)
                if result is None:
                    continue
                del running[slot]
                (repos[slot] / target.module).write_text(original, encoding="utf-8")
                free.append(slot)
                outcome.total += 1
                if result == "pass":
                    outcome.survivors.append(mutant)
                else:
                    outcome.killed += 1
                    if result == "timeout":
                        outcome.timeouts.append(mutant)
                say(f"  {target.name} #{mutant.index} {mutant.function}:{mutant.line} {mutant.description}: "
                    f"{'SURVIVED' if result == 'pass' else result}")  # fmt: skip
    finally:
        for pid, _, _ in running.values():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for repo in repos:
            (repo / target.module).write_text(original, encoding="utf-8")
    outcome.survivors.sort(key=lambda m: m.index)
    outcome.seconds = time.perf_counter() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", default=[], help="targets whose name contains this (repeatable)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per mutant's tests (then: killed)"
    )
    parser.add_argument(
        "--function", action="append", default=[], help="only these functions of the targets (repeatable)"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many mutants per target")
    parser.add_argument("--every", type=int, default=1, help="run every Nth mutant only (a sample; 1: all)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (one scratch copy each)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit, running nothing")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every mutant's outcome")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if not args.only or any(word in t.name for word in args.only)]
    if args.function:  # a focused run: the named functions of the targets that hold them
        targets = [replace(t, functions=[f for f in t.functions if f in args.function]) for t in targets]
        targets = [t for t in targets if t.functions]
    if args.list:
        for t in targets:
            found = list(mutants((ROOT / t.module).read_text(encoding="utf-8"), t.functions))
            print(f"{t.name}: {len(found)} mutants")
            for m, _ in found:
                print(f"  #{m.index} {m.function}:{m.line} {m.description}")
        return 0
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # a stale .pyc of another mutant must never be imported
    sys.dont_write_bytecode = True
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.pop("CI", None)  # tests that need what this machine lacks skip, as on any workstation
    import numpy  # noqa: F401  (imported once, before the forks)
    import pandas  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401

    repos = _scratch_copies(max(args.jobs, 1))
    say = (lambda line: print(line, flush=True)) if args.verbose else (lambda line: None)
    outcomes = []
    try:
        for target in targets:
            print(f"{target.name} ({target.module}) ...", flush=True)
            outcomes.append(
                run_target(target, repos, timeout=args.timeout, limit=args.limit, every=args.every, say=say)
            )
            o = outcomes[-1]
            print(f"  {o.killed}/{o.total} killed ({100 * o.killed / max(o.total, 1):.1f}%) in {o.seconds:.0f} s",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(repos[0].parent.parent, ignore_errors=True)
    print("\nkill rate per module")
    print(f"{'target':<36} {'killed':>7} {'total':>6} {'rate':>7} {'timeouts':>9}")
    print(f"{'(equivalent survivors count as killed: they are listed with the reason below)':<36}")
    for o in outcomes:
        killed = o.killed + len(_equivalent(o))
        rate = 100 * killed / max(o.total, 1)
        print(f"{o.target:<36} {killed:>7} {o.total:>6} {rate:>6.1f}% {len(o.timeouts):>9}")
    killed = sum(o.killed + len(_equivalent(o)) for o in outcomes)
    total = sum(o.total for o in outcomes)
    print(f"{'all':<36} {killed:>7} {total:>6} {100 * killed / max(total, 1):>6.1f}%")
    for o in outcomes:
        equivalent = _equivalent(o)
        survivors = [m for m in o.survivors if m.index not in {e.index for e, _ in equivalent}]
        for label, found in (("survivors", survivors), ("timeouts (counted as killed)", o.timeouts)):
            if found:
                print(f"\n{label} in {o.target}:")
                for m in found:
                    print(f"  #{m.index} {m.function}:{m.line} {m.description}")
        if equivalent:
            print(f"\nequivalent survivors in {o.target}:")
            for m, why in equivalent:
                print(f"  #{m.index} {m.function}:{m.line} {m.description}: {why}")
    return 0


def _equivalent(outcome: Outcome) -> list[tuple[Mutant, str]]:
    """The survivors of ``outcome`` that no test can kill (``EQUIVALENT``), each with the reason."""
    found = [(m, EQUIVALENT.get((outcome.target, m.function, m.description))) for m in outcome.survivors]
    return [(m, why) for m, why in found if why]


if __name__ == "__main__":
    sys.exit(main())
