"""What ``lmbench compare`` reads: a report folder (its ``results.json``) or a runs folder (each model's
``metrics.json``, one per seed), and the warnings that keep a side-by-side table honest (different corpora,
vocabularies or contexts make its figures incomparable)."""

from __future__ import annotations

import json
from pathlib import Path

from lmbench.errors import DataError
from lmbench.reporting import tables
from lmbench.results import CombinedRow, Provenance, ResultRow, RunResults


def load_comparable(folder: str | Path) -> RunResults:
    """The results of ``folder`` as ``lmbench compare`` puts them side by side: a report folder's results, or
    a runs folder's rows read from each ``<model>/[seed-<s>/]metrics.json`` (one row per seed there, the model
    labelled ``name [seed s]``). Anything else is a one-line DataError saying what is needed."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder (expected a report folder or a runs folder of `lmbench run`)")
    if (path / "results.json").is_file():
        return RunResults.load(path / "results.json")
    rows = []
    for metrics in sorted(path.glob("*/metrics.json")) + sorted(path.glob("*/seed-*/metrics.json")):
        try:
            stored = json.loads(metrics.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"{metrics}: unreadable ({type(e).__name__})") from None
        for stored_row in stored.get("rows", []) if isinstance(stored, dict) else []:
            try:
                seed_row = ResultRow.from_dict(stored_row)
            except TypeError as e:
                raise DataError(f"{metrics}: a row lacks a field ({e})") from None
            label = seed_row.model if seed_row.seed is None else f"{seed_row.model} [seed {seed_row.seed}]"
            rows.append(CombinedRow.of_seed(seed_row, model=label))
    if not rows:
        raise DataError(
            f"{path}: neither a report folder (it has no results.json) nor a runs folder (no <model>/metrics.json): "
            "give `lmbench compare` two --output folders or two --runs-dir folders of `lmbench run`"
        )
    return RunResults(experiment=path.name, rows=rows)


def comparability_warnings(a: RunResults, b: RunResults, names: tuple[str, str]) -> list[str]:
    """One line per setting that differs between the two runs (corpus, tokenizer, vocabulary size, contexts),
    or that cannot be checked (a runs folder records no provenance)."""
    pa, pb = a.provenance, b.provenance
    if pa == Provenance() or pb == Provenance():
        missing = [n for n, p in zip(names, (pa, pb), strict=True) if p == Provenance()]
        return [
            f"note: {', '.join(missing)} is a runs folder: its corpus and vocabulary are not recorded there, so "
            "check that both runs used the same data before reading the change column"
        ]
    out = []
    for what, x, y in (("corpus", pa.corpus, pb.corpus), ("tokenizer", pa.tokenizer, pb.tokenizer),
                       ("vocabulary size", pa.vocab_size, pb.vocab_size),
                       ("corpus files", pa.corpus_checksums, pb.corpus_checksums)):  # fmt: skip
        if x != y:
            shown = (x, y) if what != "corpus files" else ("one set", "another")
            out.append(
                f"warning: the runs differ in {what} ({names[0]}: {shown[0]}, {names[1]}: {shown[1]}): "
                "their perplexities are not comparable"
            )
    return out


def compare_results(
    a: RunResults, b: RunResults, *, names: tuple[str, str] = ("A", "B"), split: str = "test"
) -> str:
    """Two runs' results side by side (:func:`lmbench.reporting.tables.compare_table`) with the signature of
    each and a line for every setting that makes their figures incomparable, as ``lmbench compare`` prints them."""
    table = tables.compare_table(a.rows, b.rows, names, split=split)
    if not table:
        splits = sorted({r.split for r in [*a.rows, *b.rows]})
        return f"no {split} rows in either run (their splits: {', '.join(splits) or 'none'}); pick one with --split"
    text = tables.render(table, "simple")
    for side, results in zip(("A", "B"), (a, b), strict=True):
        if results.provenance != Provenance():
            text += f"\n{side}: {tables.signature(results)}"
    return text + "".join(f"\n{w}" for w in comparability_warnings(a, b, names))
