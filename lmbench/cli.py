"""The `lmbench` command line: parses arguments and calls the Python API, nothing more.

Exit codes: 0 success; 1 a run failure (a model or task failed; the others were still reported);
2 a usage, config or data error (one line naming the file/key and what was expected; no output written).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a busy machine (more runnable threads than cores) spinning
# threads starve the ones doing work, which slowed a 2-thread training run here 30-50x. Set before torch loads;
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

import lmbench
from lmbench.errors import ConfigError, DataError, LmbenchError


class InputError(click.ClickException):
    """A config/data error: exit status 2, one line."""

    exit_code = 2


class RunFailure(click.ClickException):
    exit_code = 1


def _fail(error: LmbenchError) -> InputError:
    return InputError(str(error).splitlines()[0])


def _table(results: dict) -> str:
    from lmbench.reporting import tables
    from lmbench.reporting.search_plots import mark_tuned, statement

    text = tables.render(mark_tuned(tables.display_table(results["rows"]), results), "simple")
    floor = results.get("entropy_floor")
    if floor:
        text += f"\nentropy floor (true source): test perplexity {floor['perplexity']:.3f}"
    if results.get("search"):
        text += f"\n{statement(results)}"
    return text + f"\n{tables.signature(results)}"


def _run(
    config_path: Path, output: Path | None, runs_dir: Path | None, command: str, storage: str | None = None
) -> None:
    from lmbench.config import load_config
    from lmbench.experiment import run_experiment
    from lmbench.reporting import render_report
    from lmbench.training import distributed

    distributed.init_from_env()  # under torchrun: join the process group; otherwise nothing

    try:
        config = load_config(config_path)
    except LmbenchError as e:
        raise _fail(e) from None
    output = output or Path("reports") / config.name
    runs_dir = runs_dir or Path("runs") / config.name
    try:
        results = run_experiment(
            config, runs_dir, progress=lambda m: click.echo(m, err=True), storage=storage
        )
    except (ConfigError, DataError) as e:
        raise _fail(e) from None
    results["provenance"]["command"] = command
    if not distributed.is_main():
        return
    render_report(results, output, config.report.formats)
    click.echo(_table(results))
    click.echo(f"\nreport: {output / 'report.md'}  (runs in {runs_dir})")
    if results["failures"]:
        raise RunFailure(f"{len(results['failures'])} failure(s): " + "; ".join(results["failures"]))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(lmbench.__version__, "--version", prog_name="lmbench")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
def main(verbose: bool) -> None:
    """Train n-gram, recurrent and Transformer language models on one corpus and compare them."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    help="Report folder [default: reports/<name>].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Checkpoints and metrics [default: runs/<name>].",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Database of the [model.search] studies (any URL Optuna accepts, e.g. sqlite:///s.db or "
    "postgresql://host/db); processes sharing it split the trials [default: SQLite in each model's run folder].",
)
def run(config: Path, output: Path | None, runs_dir: Path | None, storage: str | None) -> None:
    """Train and evaluate every model of an experiment CONFIG (TOML) and write its report.

    Re-running skips models that finished, resumes interrupted neural training and interrupted searches.
    """
    command = f"lmbench run {config}" + (f" --output {output}" if output else "")
    _run(config, output, runs_dir, command, storage)


def _preset(name: str, output: Path | None, runs_dir: Path | None) -> None:
    from lmbench.presets import preset_path

    _run(
        preset_path(name),
        output or Path("reports") / name,
        runs_dir,
        f"lmbench {name}" + (f" --output {output}" if output else ""),
    )


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    help="Report folder [default: reports/demo].",
)
@click.option("--runs-dir", type=click.Path(path_type=Path, file_okay=False), help="[default: runs/demo]")
def demo(output: Path | None, runs_dir: Path | None) -> None:
    """The built-in demo: an n-gram ladder on the synthetic corpus, against its known entropy floor."""
    _preset("demo", output, runs_dir)


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    help="Report folder [default: reports/evolution].",
)
@click.option(
    "--runs-dir", type=click.Path(path_type=Path, file_okay=False), help="[default: runs/evolution]"
)
def evolution(output: Path | None, runs_dir: Path | None) -> None:
    """The model-evolution ladder (unigram -> n-grams -> RNN/GRU/LSTM -> Transformer) on the synthetic corpus."""
    _preset("evolution", output, runs_dir)


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--formats", default="md,csv,json,html,png", help="Comma-separated: md,csv,json,html,latex,png."
)
def report(folder: Path, formats: str) -> None:
    """Re-render the report in FOLDER from its results.json, without retraining."""
    from lmbench.config import REPORT_FORMATS
    from lmbench.reporting import load_results, render_report

    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in chosen if f not in REPORT_FORMATS]
    if bad:
        raise InputError(
            f"--formats: unknown format {bad[0]!r}; expected some of {', '.join(REPORT_FORMATS)}"
        )
    try:
        results = load_results(folder)
    except LmbenchError as e:
        raise _fail(e) from None
    render_report(results, folder, chosen)
    click.echo(_table(results))


@main.command()
@click.argument("run_a", type=click.Path(path_type=Path, file_okay=False))
@click.argument("run_b", type=click.Path(path_type=Path, file_okay=False))
@click.option("--split", default="test", help="Which split's rows to compare.")
def compare(run_a: Path, run_b: Path, split: str) -> None:
    """Put two report folders side by side: perplexity of each model in RUN_A and RUN_B."""
    from lmbench.reporting import load_results, tables

    try:
        a, b = load_results(run_a), load_results(run_b)
    except LmbenchError as e:
        raise _fail(e) from None
    key = lambda r: (r["model"], r["context"])  # noqa: E731
    rows_a = {key(r): r for r in a["rows"] if r["split"] == split}
    rows_b = {key(r): r for r in b["rows"] if r["split"] == split}
    table = []
    for k in dict.fromkeys([*rows_a, *rows_b]):
        ra, rb = rows_a.get(k), rows_b.get(k)
        pa = ra["perplexity"] if ra else math.nan
        pb = rb["perplexity"] if rb else math.nan
        table.append({
            "model": k[0], "context": k[1],
            run_a.name: tables.with_interval(pa, ra.get("perplexity_low") if ra else None, ra.get("perplexity_high") if ra else None) if ra else "",
            run_b.name: tables.with_interval(pb, rb.get("perplexity_low") if rb else None, rb.get("perplexity_high") if rb else None) if rb else "",
            "change": f"{100 * (pb - pa) / pa:+.1f}%" if ra and rb and math.isfinite(pa) and math.isfinite(pb) else "",
        })  # fmt: skip
    click.echo(tables.render(table, "simple"))
    click.echo(f"A: {tables.signature(a)}\nB: {tables.signature(b)}")


@main.group()
def corpora() -> None:
    """Standard corpora by name (cards in corpora/*.toml)."""


@corpora.command("list")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder holding <name>/ copies [default: $LMBENCH_DATA, else ../shared/corpora].",
)
def corpora_list(data_dir: Path | None) -> None:
    """Show each corpus card and whether a verified local copy is present."""
    from lmbench.data.cards import card_files, check_card, load_card
    from lmbench.reporting import tables

    rows = []
    for name in card_files():
        status = check_card(load_card(name), data_dir)
        state = (
            "missing"
            if not status.present
            else {True: "verified", False: "CHECKSUM MISMATCH", None: "present (no checksum)"}[
                status.verified
            ]
        )
        rows.append(
            {
                "name": name,
                "tokenizer": status.card.tokenizer,
                "licence": status.card.licence,
                "local copy": state,
                "folder": str(status.folder or ""),
            }
        )
    rows.append(
        {
            "name": "synthetic",
            "tokenizer": "whitespace",
            "licence": "generated",
            "local copy": "built in",
            "folder": "",
        }
    )
    click.echo(tables.render(rows, "simple"))


@corpora.command("fetch")
@click.argument("name")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), help="Where to put <name>/.")
def corpora_fetch(name: str, data_dir: Path | None) -> None:
    """Download corpus NAME where the network allows, and verify it against its card."""
    from lmbench.data.cards import fetch_card

    try:
        folder = fetch_card(name, data_dir)
    except LmbenchError as e:
        raise _fail(e) from None
    click.echo(f"{name}: downloaded and verified in {folder}")


if __name__ == "__main__":  # pragma: no cover - `torchrun -m lmbench.cli run CONFIG`
    sys.exit(main())
