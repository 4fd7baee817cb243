"""`lmbench score` against KenLM's `query`: whole process (start-up, reading the ARPA file, scoring), side by side.

    python benchmarks/score_speed.py                       # the reference ARPA files of ../shared/reference/kenlm
    python benchmarks/score_speed.py --arpa wt2.arpa --text ../shared/corpora/wikitext-2/test.txt --kenlm-seconds 1.76
    KENLM_BIN=~/kenlm/build/bin python benchmarks/score_speed.py --rounds 7

With a KenLM build (``query`` in $KENLM_BIN or on PATH) both tools run as separate processes in interleaved rounds
(so both see the same machine load) after one untimed warm-up each, and the medians are compared. Without one,
lmbench's side is measured and compared with the time KenLM recorded for the same files (the ``Name:query ...
real:`` line its reference ``*.query.txt`` outputs end with, or ``--kenlm-seconds``). Gzipped ARPA files are
unpacked to a temporary plain file first: KenLM's recorded runs read plain ARPA. Prints wall and CPU seconds per
round, the medians, both ratios, and both tools' perplexities; also what importing lmbench's command line costs
(``python -X importtime``). Children run with bytecode caching on, as an installed lmbench has it.

Measured 2026-12-07 (2 cores shared with a training run at higher priority, load 6-7; KenLM built from
github.com/kpu/kenlm, Release), ``KENLM_BIN=/work/kenlm-src/build/bin nice -n 19 python
benchmarks/score_speed.py --rounds 7``, medians (lmbench / KenLM):

    before (ARPA -> full NgramLM)   order 3: cpu 1.056 / 0.327 s = 3.23x   order 5: cpu 2.082 / 0.902 s = 2.31x
    after  (query path)             order 3: cpu 0.652 / 0.315 s = 2.07x   order 5: cpu 1.174 / 0.998 s = 1.18x
                                    order 3: wall 3.98 / 2.31 s = 1.72x    order 5: wall 5.85 / 6.49 s = 0.90x
    again, final code (beside tests)  order 3: cpu 0.673 / 0.322 s = 2.09x   order 5: cpu 1.129 / 0.983 s = 1.15x
                                    order 3: wall 4.53 / 2.12 s = 2.13x    order 5: wall 6.82 / 8.32 s = 0.82x

(Walls under ``nice -n 19`` on that machine are mostly waiting: the "before" run's wall medians, 9.8 / 6.6 s
and 29.8 / 3.7 s, say nothing; its CPU figures are steady.) Without nice, alternating by hand at load ~5:
order 3 0.53-0.55 s against query's 0.21-0.24 s, order 5 0.96-0.99 s against 0.83-0.86 s. Perplexities equal
KenLM's to 1.2e-8 (order 3) and 2.2e-8 (order 5) relative. Of lmbench's order-3 run, ~0.35 s CPU is start-up
(Python 0.1, NumPy 0.07-0.15, pyarrow 0.05-0.2, click 0.02); the rest reads, parses and looks up.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    name: str
    arpa: Path
    text: Path
    kenlm_seconds: float | None  # recorded wall seconds of query on the same files, where known


def _reference_cases(root: Path) -> list[Case]:
    cases = []
    for order in (3, 5):
        recorded = root / f"wt2-8k.o{order}.valid.query.txt"
        found = re.search(r"Name:query.*?real:([\d.]+)", recorded.read_text()) if recorded.exists() else None
        cases.append(
            Case(
                f"wt2-8k order {order}, 1k lines",
                root / f"wt2-8k.o{order}.arpa.gz",
                root / "wt2-1k.valid.txt",
                float(found.group(1)) if found else None,
            )
        )
    return cases


def _plain(arpa: Path, folder: Path) -> Path:
    """The ARPA file unpacked (query's recorded runs read plain files)."""
    if arpa.read_bytes()[:2] != b"\x1f\x8b":
        return arpa
    out = folder / arpa.name.removesuffix(".gz")
    with gzip.open(arpa, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def _timed(command: list[str], stdin: Path | None = None) -> tuple[float, float, str]:
    """Wall and CPU (user + sys) seconds of one process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f:
        out = subprocess.run(command, stdin=f, capture_output=True, check=True, env=_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout.decode("utf-8", "replace")


def _env() -> dict[str, str]:
    """The child's environment: this checkout first on the path, and bytecode cached as an installed package
    has it (PYTHONDONTWRITEBYTECODE would make every run compile lmbench's sources again)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _perplexity(summary: str) -> float | None:
    found = re.search(r"Perplexity including OOVs:\s*(\S+)", summary)
    return float(found.group(1)) if found else None


def _query_binary() -> str | None:
    folder = os.environ.get("KENLM_BIN")
    if folder and (Path(folder) / "query").is_file():
        return str(Path(folder) / "query")
    return shutil.which("query")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.2f}-{max(values):.2f})"


def import_cost(rounds: int) -> None:
    """Wall seconds of starting Python bare and of importing lmbench's command line, and the biggest imports."""
    bare = [_timed([sys.executable, "-c", "pass"])[0] for _ in range(rounds)]
    cli = [_timed([sys.executable, "-c", "import lmbench.cli"])[0] for _ in range(rounds)]
    print(f"python start-up {_median(bare)}; + import lmbench.cli {_median(cli)}")
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import lmbench.cli, lmbench.scoring"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    rows = [line.split("|") for line in out.stderr.splitlines() if line.startswith("import time:")]
    top = sorted(((int(r[1]), r[2].strip()) for r in rows if r[1].strip().isdigit()), reverse=True)
    print("largest cumulative imports (ms): " + ", ".join(f"{name} {us / 1000:.0f}" for us, name in top[:6]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arpa", type=Path, help="An ARPA file (with --text) instead of the reference files."
    )
    parser.add_argument("--text", type=Path, help="The text to score (one sentence per line).")
    parser.add_argument("--kenlm-seconds", type=float, help="query's recorded wall seconds on --arpa/--text.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    if args.arpa:
        if not args.text:
            parser.error("--arpa needs --text")
        cases = [Case(args.arpa.name, args.arpa, args.text, args.kenlm_seconds)]
    else:
        shared = Path(os.environ.get("LMBENCH_SHARED", REPO.parent / "shared"))
        root = shared / "reference" / "kenlm"
        if not root.is_dir():
            sys.exit(f"{root}: not found; pass --arpa and --text (or set LMBENCH_SHARED)")
        cases = _reference_cases(root)
    query = _query_binary()
    print(f"KenLM query: {query or 'not found (set KENLM_BIN or put query on PATH): recorded timings'}")
    import_cost(args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            arpa = _plain(case.arpa, Path(folder))
            ours_wall, ours_cpu, theirs_wall, theirs_cpu = [], [], [], []
            ours_out = theirs_out = ""
            _timed([sys.executable, "-m", "lmbench.cli", "score", str(arpa), str(case.text)])  # warm-up:
            if query:  # bytecode written, files in the page cache, for both tools
                _timed([query, "-v", "summary", str(arpa)], stdin=case.text)
            for _ in range(args.rounds):  # interleaved: both tools see the same moments of machine load
                wall, cpu, ours_out = _timed(
                    [sys.executable, "-m", "lmbench.cli", "score", str(arpa), str(case.text)]
                )
                ours_wall.append(wall)
                ours_cpu.append(cpu)
                if query:
                    wall, cpu, theirs_out = _timed([query, "-v", "summary", str(arpa)], stdin=case.text)
                    theirs_wall.append(wall)
                    theirs_cpu.append(cpu)
            print(f"\n{case.name}: {arpa.name} ({arpa.stat().st_size / 2**20:.0f} MiB), {case.text.name}")
            print(
                f"  lmbench score  wall {_median(ours_wall)}  cpu {_median(ours_cpu)}  ppl {_perplexity(ours_out)}"
            )
            if query:
                print(
                    f"  KenLM query    wall {_median(theirs_wall)}  cpu {_median(theirs_cpu)}  ppl {_perplexity(theirs_out)}"
                )
                reference = statistics.median(theirs_wall)
                print(
                    f"  ratio (lmbench / KenLM, cpu medians): {statistics.median(ours_cpu) / statistics.median(theirs_cpu):.2f}"
                )
            else:
                reference = case.kenlm_seconds
                print(
                    f"  KenLM query    wall {reference} s (recorded)" if reference else "  KenLM: no timing"
                )
            if reference:
                print(
                    f"  ratio (lmbench / KenLM, wall medians): {statistics.median(ours_wall) / reference:.2f}"
                )


if __name__ == "__main__":
    main()
