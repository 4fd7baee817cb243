"""Results -> tables (pandas), shown as terminal text, markdown, HTML, LaTeX or CSV."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
from tabulate import tabulate

from lmbench.reporting.escape import one_line
from lmbench.results import (
    LM_EVAL_COLUMNS,
    RESULT_COLUMNS,
    SAMPLE_COLUMNS,
    SEED_COLUMNS,
    TASK_COLUMNS,
    TIMING_COLUMNS,
    CombinedRow,
    ResultRow,
    RunResults,
    Sample,
    TaskRow,
)

INFINITY = "∞"
TASK_INT_COLUMNS = ["n", "distance", "ties", "oov_items", "skipped", "train_items", "train_tokens"]


def results_frame(
    rows: Sequence[CombinedRow | ResultRow],
    columns: list[str] = RESULT_COLUMNS,
    *,
    extra: Sequence[dict] = (),
) -> pd.DataFrame:
    """``rows`` (and ``extra`` rows given as dicts) in the fixed columns of a CSV file (results.csv by default),
    missing values empty. Results written before ``word_perplexity`` existed keep their columns (their files
    re-render unchanged)."""
    if not any(r.word_perplexity is not None for r in rows):
        columns = [c for c in columns if c != "word_perplexity"]
    stored = [*(r.to_dict() for r in rows), *extra]
    frame = pd.DataFrame(stored, columns=list(dict.fromkeys([*columns, *(k for r in stored for k in r)])))
    return frame[columns]


def seed_frame(rows: Sequence[ResultRow]) -> pd.DataFrame:
    """results_by_seed.csv: one row per (model, seed, split, context); ``seed`` empty for deterministic models."""
    return results_frame(rows, SEED_COLUMNS)


def timings_frame(rows: Sequence[CombinedRow], task_rows: Sequence[TaskRow] = ()) -> pd.DataFrame:
    """timings.csv: what this machine took (the only figures that differ between identical runs): one row per
    model, split and context, then one per task figure that records a training time (``task`` says which)."""
    timed = [
        {
            "model": r.model,
            "task": f"{r.task} · {r.group()}" if r.group() else r.task,
            "train_seconds": r.train_seconds,
        }
        for r in task_rows
        if r.train_seconds is not None and r.metric == "accuracy"
    ]
    return results_frame(rows, TIMING_COLUMNS, extra=timed)


def with_interval(value: float, low: float, high: float, digits: int = 2) -> str:
    """``value ± half-width`` (the half-width of the percentile interval, which need not be symmetric)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return INFINITY
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {(high - low) / 2:.{digits}f}"


def _number(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and math.isinf(value):
        return INFINITY if value > 0 else "-" + INFINITY
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _compact(n: float) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    if isinstance(n, str):
        return n
    for unit, size in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size * (1 - 5e-5):  # what rounds to 1000.0 of the smaller unit is 1.0 of this one
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _seeds(row: CombinedRow) -> str:
    """``3 (sd 1.23)``: how many seeds a figure averages and the spread of their perplexities."""
    n = row.seeds
    if _missing(n) or n is None:
        return ""
    sd = row.seed_sd
    return f"{int(n)}" + ("" if _missing(sd) else f" (sd {sd:.2f})")


def format_p(p: float, n_resamples: int | None = None) -> str:
    """``p=0.012``, or ``p<0.001`` where p sits at the bootstrap's resolution (1/n_resamples): the paired
    bootstrap floors p there, so the true value is only known to be below it."""
    if _missing(p):
        return ""
    resolution = 1.0 / n_resamples if n_resamples else 0.0
    if p <= resolution * (1 + 1e-9):
        return f"p<{resolution:.3g}"
    return f"p={p:.3f}" if p >= 0.001 else f"p={p:.1e}"


def display_table(
    rows: Sequence[CombinedRow],
    *,
    split: str | None = None,
    context: str | None = None,
    bootstrap: int | None = None,
) -> list[dict[str, str]]:
    """The human-readable comparison table: perplexity ± interval, the seeds behind it, the training it rests
    on (budget, tokens seen, estimated FLOPs) and the cost.

    ``split``/``context`` keep only those rows; ``bootstrap`` (the number of resamples) sets the resolution
    below which p-values read ``p<1/n``.
    """
    out = []
    has_diff = any(not _missing(r.diff_vs_baseline) for r in rows)
    has_seeds = any(not _missing(r.seeds) and r.seeds > 1 for r in rows)  # type: ignore[operator]
    has_words = any(_word_level_differs(r) for r in rows)  # subword or character tokens: per word too
    for r in rows:
        if (split and r.split != split) or (context and r.context != context):
            continue
        entry = {
            "model": r.model,
            "family": r.family,
            "split": r.split,
            "context": r.context,
            "perplexity": with_interval(r.perplexity, r.perplexity_low, r.perplexity_high),  # type: ignore[arg-type]
        }
        if has_seeds:
            entry["seeds"] = _seeds(r)
        if has_words:
            entry["word ppl"] = _number(r.word_perplexity, 2)
        entry.update(
            {
                "bits/char": _number(r.bits_per_char, 3),
                "OOV": _number(r.oov),
                "params": _compact(r.parameters),  # type: ignore[arg-type]
                "budget": r.budget or "",
                "tokens seen": _compact(r.train_tokens),  # type: ignore[arg-type]
                "train FLOPs": _compact(r.train_flops),  # type: ignore[arg-type]
                "train s": _number(r.train_seconds, 1),
                "score tok/s": _compact(r.score_tokens_per_second),  # type: ignore[arg-type]
            }
        )
        if has_diff:
            d = r.diff_vs_baseline
            if _missing(d):
                entry["Δ vs baseline (p)"] = ""
            elif not math.isfinite(d):
                entry["Δ vs baseline (p)"] = ("+" if d > 0 else "-") + INFINITY  # no interval for infinity
            else:
                entry["Δ vs baseline (p)"] = (
                    f"{d:+.2f} [{r.diff_low:+.2f}, {r.diff_high:+.2f}] ({format_p(r.p_value, bootstrap)})"  # type: ignore[arg-type]
                )
        out.append(entry)
    return out


def _word_level_differs(row: CombinedRow) -> bool:
    """Is the row's per-word perplexity a different figure from its per-token one (a subword or character
    run), so that tables show it for comparison with word-level runs?"""
    word, token = row.word_perplexity, row.perplexity
    if _missing(word) or _missing(token) or not (math.isfinite(word) and math.isfinite(token)):
        return False
    return abs(word - token) > 1e-9 * max(abs(token), 1.0)


def compare_table(
    rows_a: Sequence[CombinedRow],
    rows_b: Sequence[CombinedRow],
    names: tuple[str, str],
    *,
    split: str = "test",
) -> list[dict[str, str]]:
    """Two runs' perplexities side by side, one line per (model, context) of ``split`` in either run (A's order
    first), with B's relative change where both have a finite figure. ``names``: the two column headers.
    Runs whose token counts differ (a BPE run beside a word run) are compared by word-level perplexity."""
    by_a = {(r.model, r.context): r for r in rows_a if r.split == split}
    by_b = {(r.model, r.context): r for r in rows_b if r.split == split}

    # runs cut into different tokens (a BPE run beside a word run) compare per whitespace word
    pairs = [(by_a[k], by_b[k]) for k in by_a.keys() & by_b.keys()]
    per_word = any(a.tokens != b.tokens for a, b in pairs) and all(
        not _missing(r.word_perplexity) for pair in pairs for r in pair
    )
    columns = tuple(f"{n} (per word)" for n in names) if per_word else names

    def figure(r: CombinedRow) -> float:
        return r.word_perplexity if per_word else r.perplexity  # type: ignore[return-value]

    def shown(r: CombinedRow | None) -> str:
        if not r:
            return ""
        if per_word:
            return _number(figure(r), 2)
        return with_interval(r.perplexity, r.perplexity_low, r.perplexity_high)  # type: ignore[arg-type]

    table = []
    for model, context in dict.fromkeys([*by_a, *by_b]):
        ra, rb = by_a.get((model, context)), by_b.get((model, context))
        pa = figure(ra) if ra else math.nan
        pb = figure(rb) if rb else math.nan
        both = ra and rb and math.isfinite(pa) and math.isfinite(pb)
        table.append(
            {
                "model": model,
                "context": context,
                columns[0]: shown(ra),
                columns[1]: shown(rb),
                "change": f"{100 * (pb - pa) / pa:+.1f}%" if both else "",
            }
        )
    return table


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


TASK_NOTE = (
    "Minimal-pair accuracy counts a tie (two totals equal within `tie_tolerance`, 1e-9 relative by default) as "
    "half; `ties` and `OOV` count "
    "pairs (items) tied and holding an out-of-vocabulary word."
)


def task_frame(task_rows: Sequence[TaskRow]) -> pd.DataFrame:
    """tasks.csv: one row per task figure in the fixed columns of :class:`lmbench.results.TaskRow`; counts
    stay integers (empty where they do not apply)."""
    columns = TASK_COLUMNS
    if not any(r.subtask or r.stderr is not None for r in task_rows):
        columns = [c for c in TASK_COLUMNS if c not in LM_EVAL_COLUMNS]
    frame = pd.DataFrame([r.to_dict() for r in task_rows], columns=columns)
    for column in TASK_INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    return frame


def sample_frame(samples: Sequence[Sample]) -> pd.DataFrame:
    """samples.csv: one row per generated text (model, prompt, continuation, task, seed)."""
    frame = pd.DataFrame([s.to_dict() for s in samples], columns=SAMPLE_COLUMNS)
    frame["seed"] = pd.to_numeric(frame["seed"]).astype("Int64")
    return frame


def task_table(task_rows: Sequence[TaskRow], *, compact: bool = False) -> list[dict[str, str]]:
    """Task scores as ``value ± half-width`` with ties, OOV items and notes (generated samples are
    :class:`~lmbench.results.Sample` records, listed apart). ``compact``: without the notes column, for the
    terminal."""
    has_pairs = any(r.ties is not None for r in task_rows)
    has_skipped = any(r.skipped is not None for r in task_rows)
    out = []
    for r in task_rows:
        entry = {
            "model": r.model,
            "task": r.task,
            "on": r.group(compact=compact),
            "metric": r.metric,
            "value": with_interval(r.value, r.low, r.high, 3),
            "n": _number(r.n),
        }
        if has_pairs:
            entry["ties"] = _number(r.ties)
            entry["OOV"] = _number(r.oov_items)
        if has_skipped:
            entry["skipped"] = _number(r.skipped)
        if not compact:
            entry["note"] = r.detail or ""
        out.append(entry)
    return out


def render(table: list[dict[str, str]], fmt: str = "github") -> str:
    """tabulate with one of its formats: github (markdown), simple (terminal), html, latex_booktabs.

    Cells are made one line (a newline would break the row; an escape sequence would reach the terminal); html
    escapes its cells; markdown cells must come escaped (:func:`lmbench.reporting.escape.md_escaped`)."""
    if not table:
        return ""
    if fmt != "html":
        table = [
            {one_line(k): one_line(v) if isinstance(v, str) else v for k, v in row.items()} for row in table
        ]
    return tabulate(table, headers="keys", tablefmt=fmt, disable_numparse=True)


def signature(results: RunResults) -> str:
    """A one-line reproducibility signature, sacrebleu-style, printed under every table."""
    p = results.provenance
    commit = (p.git_commit or "nogit")[:10]
    return (
        f"corpus:{p.corpus}|tok:{p.tokenizer}|vocab:{p.vocab_size}|context:{'+'.join(p.contexts)}|"
        f"bootstrap:{p.bootstrap}|seed:{p.seed}|lmbench:{p.lmbench_version}|commit:{commit}"
    )


# ------------------------------------------------------------------------------------------------ LaTeX
_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
    "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "±": r"$\pm$", "∞": r"$\infty$", "Δ": r"$\Delta$", "–": "--", "—": "---", "−": "$-$", "×": r"$\times$", "·": r"$\cdot$",
    "⟶": r"$\to$", "→": r"$\to$", "≤": r"$\leq$", "≥": r"$\geq$",
}  # fmt: skip
TEXT_COLUMNS = {"model", "family", "split", "context", "task", "metric", "detail", "name", "device", "budget"}


def latex_text(text: str) -> str:
    """Plain text for pdflatex: special characters escaped, ±, Δ, ∞ and arrows as math, and newlines and other
    control characters made spaces (a blank line in a caption is a paragraph break, an error there)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in one_line(text))


def latex_number(text: str) -> str:
    """A numeric cell as math: ``14.00 ± 0.50`` -> ``$14.00 \\pm 0.50$``, ``inf`` -> ``$\\infty$``,
    ``+1.2 [+0.3, +2.1] (p<0.001)`` -> ``$+1.2$ [$+0.3$, $+2.1$] ($p < 0.001$)``."""
    text = str(text).strip()
    if not text:
        return ""
    number = r"[+-]?(?:inf|\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?[kMG]?)"

    def as_math(match: re.Match[str]) -> str:
        value = match.group(0)
        value = re.sub(r"([+-]?)inf", r"\1\\infty", value).replace(",", "{,}")
        unit = value[-1] if value[-1] in "kMG" else ""  # 12.3k: the unit stays upright text
        return f"${value[: len(value) - len(unit)]}${unit}"

    out = []
    for part in re.split(r"(p[<=][^)\s]+)", text):
        if re.fullmatch(r"p[<=][^)\s]+", part):
            out.append(f"${part[0]} {part[1]} {part[2:]}$")
            continue
        part = re.sub(rf"{number} ± {number}", lambda m: m.group(0).replace(" ± ", " \\pm "), part)
        pieces = re.split(
            r"(\$[^$]*\$)", re.sub(rf"(?<![\w.]){number}(?:\s\\pm\s{number})?(?![\w.])", as_math, part)
        )
        out.append("".join(p if p.startswith("$") else latex_text(p) for p in pieces))
    return "".join(out).replace("$\\pm$", "\\pm")


def latex_table(table: list[dict[str, str]], *, caption: str, label: str) -> str:
    """A ``table`` environment (booktabs rules, caption, label) with numbers right-aligned and in math mode.

    Needs ``\\usepackage{booktabs}`` in the document's preamble.
    """
    if not table:
        return ""
    columns = list(table[0])
    numeric = [c not in TEXT_COLUMNS for c in columns]
    spec = "".join("r" if n else "l" for n in numeric)
    lines = [
        "\\begin{table}[htbp]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_text(caption)}}}",
        f"\\label{{{re.sub(r'[^A-Za-z0-9:.-]+', '-', label)}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(latex_text(c) for c in columns) + " \\\\",
        "\\midrule",
    ]
    for row in table:
        cells = [
            latex_number(row[c]) if n else latex_text(row[c]) for c, n in zip(columns, numeric, strict=True)
        ]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)
