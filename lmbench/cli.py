"""The `lmbench` command line: parses arguments and calls the Python API, nothing more.

Exit codes: 0 success; 1 a run failure (a model or task failed; the others were still reported);
2 a usage, config or data error (one line naming the file/key and what was expected; no output written).
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a busy machine (more runnable threads than cores) spinning
# threads starve the ones doing work, which slowed a 2-thread training run here 30-50x. Set before torch loads;
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

import lmbench
from lmbench.errors import DataError, LmbenchError
from lmbench.executors import EXECUTORS, ExecutorSettings
from lmbench.models.ngram.smoothing import SMOOTHERS as NGRAM_SMOOTHERS
from lmbench.reporting.formats import DEFAULT_FORMATS, REPORT_FORMATS


class InputError(click.ClickException):
    """A config/data error: exit status 2, one line."""

    exit_code = 2


class RunFailure(click.ClickException):
    exit_code = 1


def _fail(error: LmbenchError) -> InputError:
    return InputError(str(error).splitlines()[0])


def _command(words: list[str], **options: Path | None) -> str:
    """The command line that regenerates a report: the words plus every option that was given."""
    parts = list(words)
    for key, value in options.items():
        if value is not None:
            parts += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(parts)


def _run(
    config_path: Path,
    output: Path | None,
    runs_dir: Path | None,
    command: str,
    data_dir: Path | None = None,
    storage: str | None = None,
    executor: ExecutorSettings | None = None,
) -> None:
    from lmbench.config import load_config
    from lmbench.executors import open_executor
    from lmbench.experiment import run_experiment
    from lmbench.io import check_output_dir
    from lmbench.reporting import render_report, summary_text
    from lmbench.reporting.report import check_report_folder
    from lmbench.training import distributed

    settings = executor or ExecutorSettings()
    settings.check()  # before anything is read: a bad combination of options is exit 2
    if settings.kind == "ray" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InputError(
            "--executor ray does not run under torchrun: use one or the other (see docs/scale-out.md)"
        )
    distributed.init_from_env()  # under torchrun: join the process group; otherwise nothing

    config = load_config(config_path, data_dir=data_dir)
    output = output or Path("reports") / config.name
    runs_dir = runs_dir or Path("runs") / config.name
    check_output_dir(output, "report folder")  # before any training: a bad folder is exit 2, not lost work
    check_report_folder(output)
    a, b = output.resolve(), runs_dir.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise InputError(
            f"--output {output} and --runs-dir {runs_dir} overlap; the report replaces its whole folder"
        )
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    with open_executor(settings, say) as pool:
        results = run_experiment(config, runs_dir, progress=say, storage=storage, executor=pool)
    results["provenance"]["command"] = command
    if not distributed.is_main():
        return
    render_report(results, output, config.report.formats)
    click.echo(summary_text(results))
    click.echo(f"\nreport: {output / 'report.md'}  (runs in {runs_dir})")
    if results["failures"]:
        raise RunFailure(f"{len(results['failures'])} failure(s): " + "; ".join(results["failures"]))


class _TracebacksOnlyWhenVerbose(logging.Filter):
    """A library's ``log.exception`` prints its traceback only under ``-v``; otherwise the message line alone."""

    verbose = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.verbose and record.exc_info:
            record.exc_info, record.exc_text = None, None
        return True


_TRACEBACKS = _TracebacksOnlyWhenVerbose()


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.find_root().meta["lmbench.verbose"] = True
        _TRACEBACKS.verbose = True
        logging.getLogger().setLevel(logging.INFO)
    return value


def verbose_option(command):
    """``-v`` before or after the subcommand (``lmbench -v demo`` and ``lmbench demo -v``)."""
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbose,
        help="Log progress details; show the traceback of an unexpected error.",
    )(command)


class LmbenchGroup(click.Group):
    """Maps lmbench's errors to exit codes, and keeps tracebacks behind ``-v``.

    ConfigError/DataError (and any LmbenchError) -> exit 2, one line; any other exception -> exit 1, one line
    naming its type (with ``-v`` the traceback is printed too).
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except LmbenchError as e:
            raise _fail(e) from None
        except BrokenPipeError:
            # the reader of stdout went away (``lmbench ngram TEXT | head``): stop quietly, as a tool killed by
            # SIGPIPE does (exit 141), and point stdout at /dev/null so the exit flush cannot fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(141) from None
        except Exception as e:
            if ctx.find_root().meta.get("lmbench.verbose"):
                traceback.print_exc()
            detail = str(e).splitlines()[0] if str(e) else ""
            hint = "" if ctx.find_root().meta.get("lmbench.verbose") else " (run with -v for the traceback)"
            raise RunFailure(f"unexpected {type(e).__name__}: {detail}{hint}") from None


@click.group(cls=LmbenchGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(lmbench.__version__, "--version", prog_name="lmbench")
@click.option(
    "-v", "--verbose", is_flag=True, callback=_set_verbose, is_eager=True, help="Log progress details."
)
def main(verbose: bool) -> None:
    """Train n-gram, recurrent and Transformer language models on one corpus and compare them."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    _TRACEBACKS.verbose = verbose
    for handler in logging.getLogger().handlers:
        if _TRACEBACKS not in handler.filters:
            handler.addFilter(_TRACEBACKS)


RUNS_DIR_HELP = "Checkpoints, per-model metrics and logs [default: runs/<name>]."
# lmbench.data.cards.data_dir: the same rule for every command, wherever lmbench is installed
DATA_DIR_DEFAULT = "$LMBENCH_DATA, else ../shared/corpora if it exists, else ./data"


@main.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Report folder [default: reports/<name>].",
)
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder holding corpus copies <name>/ and task files; overrides corpus.data_dir "
    f"[default: corpus.data_dir, else {DATA_DIR_DEFAULT}].",
)
@click.option(
    "--storage",
    metavar="URL",
    help="Database of the [model.search] studies (any URL Optuna accepts, e.g. sqlite:///s.db or "
    "postgresql://host/db); processes sharing it split the trials [default: SQLite in each model's run folder].",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="local",
    help="Where models and search trials run: one after another here, or as Ray tasks (needs the ray extra).",
)
@click.option(
    "--address",
    metavar="ADDR",
    help="With --executor ray: the cluster to join (host:port, ray://host:10001 or auto) [default: start a "
    "local cluster for this run].",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    help="With --executor ray: (model, seed) fits or search trials at once [default: CPUs / --threads].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="With --executor ray: CPU threads per task [default: CPUs / --jobs, so tasks do not share cores].",
)
@verbose_option
def run(
    config: Path,
    output: Path | None,
    runs_dir: Path | None,
    data_dir: Path | None,
    storage: str | None,
    executor: str,
    address: str | None,
    jobs: int | None,
    threads: int | None,
) -> None:
    """Train and evaluate every model of an experiment CONFIG (TOML) and write its report.

    Re-running skips models that finished, resumes interrupted neural training and interrupted searches.
    With --executor ray every (model, seed) and search trial is a Ray task; results are those of a sequential run.
    """
    # --storage is left out of the printed command: a database URL may carry a password
    command = _command(["lmbench", "run", str(config)], output=output, runs_dir=runs_dir, data_dir=data_dir)
    settings = ExecutorSettings(executor, address, jobs, threads)
    _run(config, output, runs_dir, command, data_dir, storage, settings)


def _preset(name: str, output: Path | None, runs_dir: Path | None, default_output: Path) -> None:
    from lmbench.presets import preset_path

    _run(
        preset_path(name),
        output or default_output,
        runs_dir,
        _command(["lmbench", name], output=output, runs_dir=runs_dir),
    )


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Report folder [default: reports/demo].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    help="Checkpoints, per-model metrics and logs [default: runs/demo].",
)
@verbose_option
def demo(output: Path | None, runs_dir: Path | None) -> None:
    """The built-in demo: an n-gram ladder on the synthetic corpus, against its known entropy floor."""
    _preset("demo", output, runs_dir, Path("reports") / "demo")


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Report folder [default: reports/evolution-run; the committed example is reports/evolution].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    help="Checkpoints, per-model metrics and logs [default: runs/evolution].",
)
@verbose_option
def evolution(output: Path | None, runs_dir: Path | None) -> None:
    """The model-evolution ladder (unigram -> n-grams -> RNN/GRU/LSTM -> Transformer) on the synthetic corpus.

    Writes reports/evolution-run by default, so the committed example in reports/evolution stays as it is
    (regenerate that one with --output reports/evolution).
    """
    _preset("evolution", output, runs_dir, Path("reports") / "evolution-run")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--formats", default=",".join(DEFAULT_FORMATS), help=f"Comma-separated: {','.join(REPORT_FORMATS)}."
)
@verbose_option
def report(folder: Path, formats: str) -> None:
    """Re-render the report in FOLDER from its results.json, without retraining."""
    from lmbench.reporting import load_results, render_report, summary_text

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
    click.echo(summary_text(results))


@main.command()
@click.argument("run_a", type=click.Path(path_type=Path, file_okay=False))
@click.argument("run_b", type=click.Path(path_type=Path, file_okay=False))
@click.option("--split", default="test", help="Which split's rows to compare.")
@verbose_option
def compare(run_a: Path, run_b: Path, split: str) -> None:
    """Put two report folders side by side: perplexity of each model in RUN_A and RUN_B."""
    from lmbench.reporting import compare_results, load_results

    try:
        a, b = load_results(run_a), load_results(run_b)
    except LmbenchError as e:
        raise _fail(e) from None
    click.echo(compare_results(a, b, names=(run_a.name, run_b.name), split=split))


@main.command()
@click.argument("text", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--order", "-o", type=click.IntRange(1, 10), default=5, help="n: words per n-gram.")
@click.option(
    "--smoothing",
    type=click.Choice(list(NGRAM_SMOOTHERS)),
    default="modified-kneser-ney",
    help="Smoothing method (KenLM's lmplz: interpolated modified Kneser-Ney).",
)
@click.option(
    "--memory",
    "-S",
    default=None,
    help="Memory for the whole fit (KenLM's -S): 4G, 512M, 50%; counted tables that would not fit go "
    "to disk and are smoothed and written from there [default: half of physical memory].",
)
@click.option(
    "--arpa",
    "arpa_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    default="-",
    help="Write the ARPA file here (.gz compresses); - is stdout.",
)
@click.option(
    "--save",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also save lmbench's binary model (loads in a fraction of a second).",
)
@click.option(
    "--tokenizer", default="whitespace", help="How lines become words (whitespace, word, regexp, char)."
)
@click.option(
    "--temp-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where sorted runs and tables go when they do not fit in memory (anonymous temporary files) "
    "[default: $TMPDIR].",
)
def ngram(
    text: Path,
    order: int,
    smoothing: str,
    memory: str | None,
    arpa_path: Path,
    save: Path | None,
    tokenizer: str,
    temp_dir: Path | None,
) -> None:
    """Estimate an n-gram model from TEXT (a file, or - for stdin; one sentence per line) and write it as ARPA.

    A drop-in for KenLM's lmplz: `lmbench ngram - -o 5 -S 4G < corpus.txt > model.arpa`. Counts and
    discounts go to stderr; the vocabulary is every word of TEXT (a literal <unk> is the model's <unk>).
    """
    from lmbench.data.corpus import encode_stream
    from lmbench.data.encoding import read_lines
    from lmbench.data.tokenizers import get_tokenizer
    from lmbench.models.ngram import NgramLM

    say = lambda message: click.echo(message, err=True)  # noqa: E731
    start = time.perf_counter()
    try:
        model = NgramLM(order, smoothing, memory=memory)
        data = encode_stream(read_lines(text), get_tokenizer(tokenizer))
        if data.num_words == 0:
            raise DataError(f"{text}: no words to count (empty or whitespace-only text)")
        say(
            f"{data.num_words:,} words, {data.num_lines:,} lines, {len(data.vocab):,} types (with <unk> <s> </s>)"
        )
        model.fit(data, run_dir=temp_dir)
        del data
        say(_ngram_summary(model))
        if arpa_path == Path("-"):
            model.to_arpa(sys.stdout.buffer)
        else:
            model.to_arpa(arpa_path)
        if save:
            model.save(save)
    except LmbenchError as e:
        raise _fail(e) from None
    seconds = time.perf_counter() - start
    say(
        f"done in {seconds:.1f} s, peak memory {_peak_rss_mib():,.0f} MiB; {model.bytes_per_ngram():.1f} bytes per stored n-gram"
    )


def _ngram_summary(model) -> str:
    """lmplz-style: n-grams per order and the discounts of each order."""
    lines = []
    discounts = model.discounts_ or [None] * model.order
    for m, (count, d) in enumerate(zip(model.ngrams_per_order(), discounts, strict=True), start=1):
        text = f"order {m}: {count:,} n-grams"
        if isinstance(d, (tuple, list)):
            text += "  discounts D1={:.4f} D2={:.4f} D3+={:.4f}".format(*d)
        elif d is not None:
            text += f"  discount D={d:.4f}"
        lines.append(text)
    stats = getattr(model, "counting_stats_", None)
    if stats is not None and stats.spilled_runs:
        lines.append(
            f"counting spilled {stats.spilled_runs} sorted runs ({stats.spill_bytes / 2**20:,.0f} MiB) to disk"
        )
    return "\n".join(lines)


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--host", default="127.0.0.1", help="Interface to bind (the page has no login: keep it local).")
@click.option("--port", default=8000, type=click.IntRange(1, 65535), help="Port to serve on.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser window.")
@click.option("--tokenizer", help="Tokenizer for typed text [default: the one recorded with the runs].")
def explore(run_dir: Path, host: str, port: int, no_browser: bool, tokenizer: str | None) -> None:
    """Serve a local page over the finished models of RUN_DIR (the --runs-dir of `lmbench run`).

    Type a prefix and see every model's next-token probabilities side by side, n-gram back-off paths and
    Transformer attention maps. Needs the explore extra: pip install -e ".[explore]".
    """
    try:
        from lmbench.explore.app import is_loopback, serve
    except ImportError as e:
        raise InputError(
            f'lmbench explore needs the explore extra ({e.name} is missing): pip install -e ".[explore]"'
        ) from None
    from lmbench.explore import Explorer

    try:
        explorer = Explorer(run_dir, tokenizer=tokenizer)
    except LmbenchError as e:
        raise _fail(e) from None
    unrecorded = [entry.name for entry in explorer.runs.values() if not entry.tokenizer_recorded]
    if unrecorded:
        shown = ", ".join(unrecorded[:3]) + (
            f" and {len(unrecorded) - 3} more" if len(unrecorded) > 3 else ""
        )
        click.echo(
            f"{shown}: no tokenizer recorded; typed text is split on whitespace (see --tokenizer)", err=True
        )
    if not is_loopback(host):
        click.echo(f"warning: serving on {host}: anyone who can reach it can query the models", err=True)
    click.echo(
        f"lmbench explore: {len(explorer.runs)} model(s) from {run_dir} at http://{host}:{port}/ (Ctrl-C stops)"
    )
    serve(explorer, host, port, open_browser=not no_browser)


@main.group()
def corpora() -> None:
    """Standard corpora by name (cards shipped in the package; corpora/*.toml in the repository)."""


@corpora.command("list")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Folder holding <name>/ copies [default: {DATA_DIR_DEFAULT}].",
)
@verbose_option
def corpora_list(data_dir: Path | None) -> None:
    """Show each corpus card and whether a verified local copy is present."""
    from lmbench.data.cards import list_corpora
    from lmbench.reporting import tables

    click.echo(tables.render(list_corpora(data_dir), "simple"))


@corpora.command("fetch")
@click.argument("name")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help=f"Where to put <name>/ [default: {DATA_DIR_DEFAULT}].",
)
@verbose_option
def corpora_fetch(name: str, data_dir: Path | None) -> None:
    """Download corpus NAME where the network allows, and verify it against its card."""
    from lmbench.data.cards import fetch_card

    try:
        folder, downloaded = fetch_card(name, data_dir)
    except LmbenchError as e:
        raise _fail(e) from None
    if downloaded:
        click.echo(f"{name}: downloaded and verified in {folder}")
    else:
        click.echo(f"{name}: a verified copy is already in {folder}; nothing downloaded")


if __name__ == "__main__":  # pragma: no cover - `torchrun -m lmbench.cli run CONFIG`
    sys.exit(main())
