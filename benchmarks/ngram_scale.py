"""N-grams at scale: `lmbench ngram` (text -> ARPA, order 5, modified Kneser-Ney) on WikiText-2 made N times
larger by ../shared/tools/make_scale_corpus.py (50 copies ~ WikiText-103's 103M tokens), beside KenLM's
`lmplz` — run side by side where `lmplz` is on PATH, else its recorded figures (../shared/reference/kenlm/SOURCE.md).

    python benchmarks/ngram_scale.py --copies 10 50 [--memory 4G] [--work-dir DIR]

Each tool runs as its own process; wall time, CPU time and peak RSS are that process's (os.wait4). Both read
the same file, with the literal <unk> renamed UNKTOK (KenLM refuses it). Wall times on a shared machine drift
with its load (printed beside them). lmbench uses up to two cores where it pays (reading ahead of the
tokenizer, counting a chunk per thread, formatting ARPA ahead of the file write), as lmplz uses threads, so
wall time is the figure to compare; CPU time is printed beside it. Numba compiles lmbench's kernels once per
install; a warm-up on a few lines does that before anything is timed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lmbench.data.shared import shared_path

# lmplz -o 5 on the same kind of 2-core machine (SOURCE.md, 2026-11-25): (seconds, peak MiB) per -S setting
KENLM_RECORDED = {
    1: {"1G": (2.65, 258)},
    10: {"1G": (27.4, 1024)},
    50: {"1G": (144.9, 1044), "4G": (153.1, 4096)},
}
KENLM_PROBING_MULTIPLIER = 1.5  # build_binary -p default
KENLM_BYTES_PER_NGRAM = (8 + 4 + 4) * KENLM_PROBING_MULTIPLIER


def run_measured(
    command: list[str], stdin: Path | None = None, stdout: Path | None = None
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stderr of one child process."""
    start = time.perf_counter()
    with (
        open(stdin, "rb") if stdin else open(os.devnull, "rb") as f_in,
        open(stdout, "wb") if stdout else open(os.devnull, "wb") as f_out,
        tempfile.TemporaryFile() as f_err,
    ):
        proc = subprocess.Popen(command, stdin=f_in, stdout=f_out, stderr=f_err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        f_err.seek(0)
        err = f_err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {err[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, err


def make_corpus(copies: int, folder: Path) -> Path:
    """The scale corpus of ``copies`` copies, <unk> renamed UNKTOK (built once, reused from ``folder``)."""
    target = folder / f"wt2x{copies}.txt"
    if target.exists():
        return target
    train = shared_path("corpora", "wikitext-2", "train.txt")
    tool = shared_path("tools", "make_scale_corpus.py")
    if train is None or tool is None:
        sys.exit("needs ../shared/corpora/wikitext-2/train.txt and ../shared/tools/make_scale_corpus.py")
    raw = folder / f"raw{copies}.txt"
    subprocess.run([sys.executable, str(tool), str(train), str(raw), str(copies)], check=True)
    with open(raw, encoding="utf-8") as f_in, open(target, "w", encoding="utf-8") as f_out:
        for line in f_in:
            f_out.write(line.replace("<unk>", "UNKTOK"))
    raw.unlink()
    return target


def warm_up(work: Path, order: int) -> float:
    """Run lmbench on a few lines, so that Numba's one-time compilation of the n-gram kernels (cached
    beside the package after the first run) is not timed as part of the first corpus; its wall seconds."""
    text = work / "warm-up.txt"
    text.write_text("".join(f"w{i % 7} w{i % 5} w{i % 3} x{i}\n" for i in range(200)), encoding="utf-8")
    seconds = 0.0
    for memory in ("1G", "1M"):  # the in-memory path, then the on-disk one (chunks, merges, streaming)
        seconds += run_measured(
            [sys.executable, "-m", "lmbench.cli", "ngram", str(text), "--order", str(order),
             "--memory", memory, "--temp-dir", str(work), "--arpa", str(work / "warm-up.arpa.gz")]
        )[0]  # fmt: skip
    for path in (text, work / "warm-up.arpa.gz"):
        path.unlink(missing_ok=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--order", type=int, default=5)
    parser.add_argument("--memory", default="4G", help="lmbench --memory and lmplz -S")
    parser.add_argument(
        "--work-dir", type=Path, help="keep corpora and ARPA files here [default: a temp dir]"
    )
    parser.add_argument(
        "--read-arpa", action="store_true", help="also time reading the ARPA back (copies <= 5)"
    )
    args = parser.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ngram-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    kenlm = shutil.which("lmplz")
    print(f"compiled kernels ready (compiled once per install, cached): {warm_up(work, args.order):.1f} s")
    rows = []
    for copies in args.copies:
        corpus = make_corpus(copies, work)
        tokens = sum(len(line.split()) + 1 for line in open(corpus, encoding="utf-8"))
        arpa = work / f"lmbench.x{copies}.arpa"
        load = os.getloadavg()[0]
        seconds, cpu, peak, err = run_measured(
            [sys.executable, "-m", "lmbench.cli", "ngram", str(corpus), "--order", str(args.order),
             "--memory", args.memory, "--arpa", str(arpa), "--temp-dir", str(work)]
        )  # fmt: skip
        found = re.search(r"([\d.]+) bytes per stored n-gram", err)
        ngrams = sum(int(x.replace(",", "")) for x in re.findall(r"order \d+: ([\d,]+) n-grams", err))
        row = {
            "copies": copies,
            "tokens": tokens,
            "n-grams": ngrams,
            "lmbench s": seconds,
            "lmbench CPU s": cpu,
            "lmbench MiB": peak,
            "bytes/n-gram": float(found.group(1)) if found else float("nan"),
            "load": load,
        }
        if args.read_arpa and copies <= 5:  # the reader holds whole sections in memory
            code = f"import time; from lmbench.models.ngram import NgramLM; NgramLM.from_arpa({str(arpa)!r})"
            row["ARPA read s"], row["ARPA read CPU s"], row["ARPA read MiB"], _ = run_measured(
                [sys.executable, "-c", code]
            )
        arpa.unlink(missing_ok=True)
        if kenlm:
            out = work / f"kenlm.x{copies}.arpa"
            row["KenLM s"], row["KenLM CPU s"], row["KenLM MiB"], _ = run_measured(
                [kenlm, "-o", str(args.order), "-S", args.memory, "-T", str(work)], stdin=corpus, stdout=out
            )
            row["KenLM"] = f"live, -S {args.memory}"
            out.unlink(missing_ok=True)
        else:
            recorded = KENLM_RECORDED.get(copies, {})
            setting = args.memory if args.memory in recorded else next(iter(recorded), None)
            if setting:
                row["KenLM s"], row["KenLM MiB"] = recorded[setting]
                row["KenLM"] = f"recorded, -S {setting}"
        rows.append(row)
        print(_format(row), flush=True)
    print(
        f"\nwork dir: {work}\nKenLM's query model (default 'probing'): a 64-bit hash key, float32 probability and"
        f" back-off per n-gram in a hash table {KENLM_PROBING_MULTIPLIER}x the entries, {KENLM_BYTES_PER_NGRAM} bytes"
        " per n-gram (kheafield.com/code/kenlm/structures); lmplz itself streams counts through disk."
    )


def _format(row: dict) -> str:
    parts = []
    for key, value in row.items():
        if isinstance(value, float):
            value = f"{value:,.1f}"
        elif isinstance(value, int):
            value = f"{value:,}"
        parts.append(f"{key}={value}")
    return "  ".join(parts)


if __name__ == "__main__":
    main()
