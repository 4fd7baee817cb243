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
from typing import TYPE_CHECKING, Any

# Idle OpenMP threads sleep instead of spinning: on a busy machine (more runnable threads than cores) spinning
# threads starve the ones doing work, which slowed a 2-thread training run here 30-50x. Set before torch loads;
# an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

import lmbench
from lmbench.errors import DataError, LmbenchError
from lmbench.reporting.formats import DEFAULT_FORMATS, FORMATS, REPORT_FORMATS

if TYPE_CHECKING:
    from lmbench.executors import ExecutorSettings


class InputError(click.ClickException):
    """A config/data error: exit status 2, one line."""

    exit_code = 2


class RunFailure(click.ClickException):
    exit_code = 1


class InternalError(click.ClickException):
    """An exception lmbench did not expect (a bug): exit status 70 (EX_SOFTWARE), told apart from a handled error."""

    exit_code = 70


def _print_version(ctx: click.Context) -> None:
    """``--version``, as click's version_option prints it; the version is looked up only when asked for."""
    if not ctx.resilient_parsing:
        click.echo(f"lmbench, version {lmbench.__version__}")
        ctx.exit()


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
    dry_run: bool = False,
    force: bool = False,
    executor: ExecutorSettings | None = None,
) -> None:
    """``lmbench run`` and the presets: the defaults of the folders, then the Python API (:mod:`lmbench.workflow`)."""
    from lmbench.config import load_config
    from lmbench.executors import ExecutorSettings
    from lmbench.reporting import summary_text
    from lmbench.workflow import run_and_report, start

    settings = executor or ExecutorSettings()
    start(settings)  # before anything is read: a bad combination of options is exit 2
    config = load_config(config_path, data_dir=data_dir)
    output = output or DEFAULT_OUTPUT / config.name  # never the committed reports/: see .gitignore
    runs_dir = runs_dir or Path("runs") / config.name
    if dry_run:
        from lmbench.experiment import dry_run_experiment

        click.echo(dry_run_experiment(config, runs_dir))
        return
    results = run_and_report(
        config, output, runs_dir, command=command, storage=storage, force=force, settings=settings,
        say=lambda m: click.echo(m, err=True), warn=lambda m: click.echo(f"warning: {m}", err=True),
    )  # fmt: skip
    if results is None:  # a torchrun process other than the main one
        return
    click.echo(summary_text(results))
    click.echo(f"\nreport: {output / 'report.md'}  (runs in {runs_dir})")
    if results.failures:
        raise RunFailure(f"{len(results.failures)} failure(s): " + "; ".join(results.failures))


class _Registered(click.Choice):
    """A choice among a registry's names, read when a command needs them (so installed plugins count, and
    importing the CLI loads none). ``registry``: the registry, or a function returning it where importing its
    module costs start-up time (the smoothers' imports NumPy, which `lmbench score` and `--help` should not wait for)."""

    def __init__(self, registry: Any):
        self.registry = registry
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        registry = self.registry() if callable(self.registry) else self.registry
        return tuple(registry)

    @choices.setter
    def choices(self, _value: Any) -> None:
        pass


def _executors() -> Any:
    from lmbench.executors import EXECUTORS

    return EXECUTORS


def _smoothers() -> Any:
    from lmbench.models.ngram.smoothing import SMOOTHERS

    return SMOOTHERS


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

    ConfigError/DataError (and any LmbenchError) -> exit 2, one line; any other exception is a bug: exit 70
    (EX_SOFTWARE), one ``internal error`` line naming its type (with ``-v`` the traceback is printed too), so
    that scripts and fuzz tests can tell a crash from a handled failure (exit 1: a model or task failed).
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
            raise InternalError(f"internal error: unexpected {type(e).__name__}: {detail}{hint}") from None


@click.group(cls=LmbenchGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--version",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _, value: _print_version(ctx) if value else None,
    help="Show the version and exit.",
)
@click.option(
    "-v", "--verbose", is_flag=True, callback=_set_verbose, is_eager=True, help="Log progress details."
)
def main(verbose: bool) -> None:
    """Train n-gram, recurrent and Transformer language models on one corpus and compare them."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    _TRACEBACKS.verbose = verbose
    _exit_on_sigterm()
    for handler in logging.getLogger().handlers:
        if _TRACEBACKS not in handler.filters:
            handler.addFilter(_TRACEBACKS)


def _exit_on_sigterm() -> None:
    """SIGTERM (``kill``, a batch system's time limit) and SIGHUP end the command as Ctrl-C does, through Python's
    exit path: temporary files are removed and no hidden half-written output stays behind. Code that
    handles SIGTERM itself (training saves a checkpoint first) installs its own handler while it runs."""
    import signal

    def stop(signum: int, frame: object) -> None:  # noqa: ARG001
        raise SystemExit(128 + signum)

    for name in (
        "SIGTERM",
        "SIGHUP",
    ):  # SIGHUP: the terminal closed (left alone under nohup, which ignores it)
        signum = getattr(signal, name, None)
        try:
            if signum is not None and signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, stop)
        except ValueError:  # not the main thread (the CLI run inside a test's thread): keep the default
            pass


DEFAULT_OUTPUT = Path("out")  # default report folders: out/<name> (git-ignored), never the committed reports/
FORCE_HELP = (
    "Write into an --output/--runs-dir folder that lmbench did not make and that holds other files; lmbench "
    "only adds its own files there and never replaces or removes the others."
)
RUNS_DIR_HELP = "Checkpoints, per-model metrics and logs [default: runs/<name>]."
# lmbench.data.cards.data_dir: the same rule for every command, wherever lmbench is installed
DATA_DIR_DEFAULT = "$LMBENCH_DATA, else ../shared/corpora if it exists, else ./data"


@main.command()
@click.argument("config", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Report folder [default: out/<name>].",
)
@click.option("--runs-dir", type=click.Path(path_type=Path), help=RUNS_DIR_HELP)
@click.option("--force", is_flag=True, help=FORCE_HELP)
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
    "--dry-run",
    is_flag=True,
    help="Check the config and data and print the plan (parameters, tokens, steps, epochs, FLOPs, precision, "
    "estimated time here from a few timed steps); train and write nothing.",
)
@click.option(
    "--executor",
    type=_Registered(_executors),
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
    force: bool,
    data_dir: Path | None,
    storage: str | None,
    dry_run: bool,
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
    command += " --force" if force else ""  # the regenerate command works where this one did
    from lmbench.executors import ExecutorSettings

    settings = ExecutorSettings(executor, address, jobs, threads)
    _run(
        config, output, runs_dir, command, data_dir, storage, dry_run=dry_run, force=force, executor=settings
    )


def _preset(
    name: str, output: Path | None, runs_dir: Path | None, default_output: Path, force: bool = False
) -> None:
    from lmbench.presets import preset_path

    _run(
        preset_path(name),
        output or default_output,
        runs_dir,
        _command(["lmbench", name], output=output, runs_dir=runs_dir) + (" --force" if force else ""),
        force=force,
    )


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Report folder [default: out/demo].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    help="Checkpoints, per-model metrics and logs [default: runs/demo].",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@verbose_option
def demo(output: Path | None, runs_dir: Path | None, force: bool) -> None:
    """The built-in demo: an n-gram ladder on the synthetic corpus, against its known entropy floor."""
    _preset("demo", output, runs_dir, DEFAULT_OUTPUT / "demo", force)


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Report folder [default: out/evolution; the committed example is reports/evolution].",
)
@click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    help="Checkpoints, per-model metrics and logs [default: runs/evolution].",
)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@verbose_option
def evolution(output: Path | None, runs_dir: Path | None, force: bool) -> None:
    """The model-evolution ladder (unigram -> n-grams -> RNN/GRU/LSTM -> Transformer) on the synthetic corpus.

    Writes out/evolution by default, so the committed example in reports/evolution stays as it is
    (regenerate that one with --output reports/evolution).
    """
    _preset("evolution", output, runs_dir, DEFAULT_OUTPUT / "evolution", force)


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
    bad = [f for f in chosen if f not in FORMATS]
    if bad:
        raise InputError(f"--formats: unknown format {bad[0]!r}; expected some of {', '.join(FORMATS)}")
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
    """Put two runs side by side: perplexity of each model in RUN_A and RUN_B, each a report folder (--output of
    `lmbench run`) or a runs folder (--runs-dir)."""
    from lmbench.reporting import compare_results
    from lmbench.reporting.compare import load_comparable

    try:
        a, b = load_comparable(run_a), load_comparable(run_b)
    except LmbenchError as e:
        raise _fail(e) from None
    click.echo(compare_results(a, b, names=(run_a.name, run_b.name), split=split))


class _Counts(click.Option):
    """An option taking one or more counts, as lmplz's ``--prune 0 1 1`` (``--prune 0,1,1`` works too)."""

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is None:
                continue
            process = option.process

            def greedy(value, state, process=process) -> None:
                values = [value]
                while state.rargs and state.rargs[0].isdigit():
                    values.append(state.rargs.pop(0))
                process(" ".join(values), state)

            option.process = greedy


def _parse_counts(_ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    words = value.replace(",", " ").split()
    if not words or not all(w.isdigit() for w in words):
        raise click.BadParameter(f"expected counts >= 0, one per order (e.g. 0 1 1), got {value!r}")
    return [int(w) for w in words]


@main.command()
@click.argument("text", type=click.Path(path_type=Path, allow_dash=True))
@click.option("--order", "-o", type=click.IntRange(1, 10), default=5, help="n: words per n-gram.")
@click.option(
    "--prune",
    cls=_Counts,
    callback=_parse_counts,
    metavar="T1 T2 ...",
    help="lmplz's count pruning: drop n-grams of order i seen at most Ti times (0 1 1: singleton bigrams "
    "and trigrams; the last value repeats; unigrams never); the model stays normalised.",
)
@click.option(
    "--vocab_pad",
    "--vocab-pad",
    "vocab_pad",
    type=click.IntRange(0),
    default=0,
    help="lmplz's --vocab_pad: spread the unigrams' uniform base over at least this many words (the padding "
    "goes to <unk>), so perplexities compare across vocabularies.",
)
@click.option(
    "--smoothing",
    type=_Registered(_smoothers),
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
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Also save lmbench's binary model (loads in a fraction of a second); - is stdout (with --arpa FILE).",
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
    prune: list[int] | None,
    vocab_pad: int,
) -> None:
    """Estimate an n-gram model from TEXT (a file, or - for stdin; one sentence per line) and write it as ARPA.

    A drop-in for KenLM's lmplz: `lmbench ngram - -o 5 -S 4G < corpus.txt > model.arpa`. Counts and
    discounts go to stderr; the vocabulary is every word of TEXT (a literal <unk> is the model's <unk>).
    """
    from lmbench.data.corpus import encode_stream
    from lmbench.data.encoding import read_lines
    from lmbench.data.tokenizers import get_tokenizer
    from lmbench.io import check_output_dir, check_outputs_apart, is_stream_target, refuse_special
    from lmbench.models.ngram import NgramLM

    say = lambda message: click.echo(message, err=True)  # noqa: E731
    start = time.perf_counter()
    try:
        # before any counting: an output that is the input text, or a folder or socket, is exit 2
        check_outputs_apart({"--arpa": arpa_path, "--save": save}, {"TEXT": text})
        if save is not None and str(save) == "-" and str(arpa_path) == "-":
            raise InputError("--save - and --arpa - would both write to stdout; give one of them a file")
        for target, what in ((arpa_path, "--arpa"), (save, "--save")):
            if target is not None and not is_stream_target(target):
                refuse_special(target, what)
                check_output_dir(target.absolute().parent, f"folder of {what}")  # writable, before counting
        pad = {"vocab_pad": vocab_pad} if vocab_pad else {}
        model = NgramLM(order, smoothing, memory=memory, prune=prune, **pad)
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
            model.save(save)  # - is stdout (lmbench.io.open_output)
    except LmbenchError as e:
        raise _fail(e) from None
    seconds = time.perf_counter() - start
    say(
        f"done in {seconds:.1f} s, peak memory {_peak_rss_mib():,.0f} MiB; {model.bytes_per_ngram():.1f} bytes per stored n-gram"
    )


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("text", type=click.Path(path_type=Path, allow_dash=True), default="-")
@click.option(
    "--sentences",
    is_flag=True,
    help="Print one TSV row per line (line, log10prob, tokens, oovs, perplexity) on stdout; the summary "
    "then goes to stderr.",
)
@click.option(
    "--context",
    type=click.Choice(["sentence", "stream"]),
    default="sentence",
    help="sentence: each line from <s> alone (KenLM's query); stream: context crosses line ends.",
)
@verbose_option
def score(model: Path, text: Path, sentences: bool, context: str) -> None:
    """Score TEXT (a file, or - for stdin; one sentence per line) with MODEL, as KenLM's query does.

    MODEL is an ARPA file (.arpa, .arpa.gz), a trained model's folder from `lmbench run` (any family), or a
    binary from `lmbench ngram --save`. Prints perplexity including and excluding OOVs, OOVs and tokens
    (tokens = words + one </s> per line): `lmbench score model.arpa.gz test.txt`.
    """
    # no NumPy matrix products here: one BLAS thread spares starting a pool as NumPy loads (0.1 s when busy)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from lmbench.scoring import SENTENCE_HEADER, score_file

    result = score_file(model, text, context=context)  # type: ignore[arg-type]
    if len(result.tokens) == 0:
        raise InputError(f"{text}: no lines to score (empty text)")
    summary = "\n".join(result.summary_lines())
    if sentences:
        click.echo(SENTENCE_HEADER)
        click.echo("\n".join(result.sentence_rows()))
        click.echo(summary, err=True)
    else:
        click.echo(summary)


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
        from lmbench.explore.app import bind, is_loopback, serve
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
    unavailable = [f"{run.name}: {run.error}" for run in explorer.runs.values() if run.error]
    for line in unavailable:
        click.echo(f"unavailable: {line}", err=True)
    if not is_loopback(host):
        click.echo(f"warning: serving on {host}: anyone who can reach it can query the models", err=True)
    try:  # a port in use is exit 2 naming it (and a free one), before anything is served
        sock = bind(host, port)
    except LmbenchError as e:
        explorer.close()
        raise _fail(e) from None
    click.echo(
        f"lmbench explore: {len(explorer.runs)} model(s) from {run_dir} at http://{host}:{port}/ (Ctrl-C stops)"
    )
    serve(explorer, host, port, open_browser=not no_browser, sock=sock)


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


@main.group("config")
def config_group() -> None:
    """The experiment config file: its JSON Schema, for editors and checks."""


@config_group.command("schema")
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the schema to this file (a new one, or an lmbench schema) instead of printing it.",
)
@verbose_option
def config_schema(output: Path | None) -> None:
    """Print the JSON Schema (draft 2020-12) of a config file: point an editor at it (Taplo / Even Better TOML:
    a first line ``#:schema PATH``) to complete and check keys, types and each family's settings."""
    from lmbench.config_schema import schema_json, write_schema

    if output is None:
        click.echo(schema_json(), nl=False)
        return
    try:
        click.echo(f"lmbench config schema: wrote {write_schema(output)}")
    except LmbenchError as e:
        raise _fail(e) from None


@main.command("lm-eval")
@click.argument("model_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--tasks", required=True, help="lm-eval task names, comma-separated (globs as lm-eval takes them)."
)
@click.option(
    "--include-path",
    type=click.Path(path_type=Path, file_okay=False),
    help="A folder of local lm-eval task YAML files.",
)
@click.option("--limit", type=click.FloatRange(min=0, min_open=True), help="At most N documents per task.")
@click.option(
    "--output-path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write lm-eval's results JSON here (a new file).",
)
@click.option("--name", help="Which model, when MODEL_DIR holds several.")
@click.option("--tokenizer", help="How raw text is cut [default: the tokenizer the run recorded].")
@click.option(
    "--context", type=click.Choice(["sentence", "stream"]), default="sentence", help="Scoring context."
)
@click.option("--eos/--no-eos", default=True, help="A continuation that ends the text predicts </s> too.")
@click.option("--num-fewshot", type=click.IntRange(min=0), help="Few-shot examples per prompt.")
@click.option("--seed", type=click.IntRange(min=0), default=0, help="lm-eval's seeds (sampling, few-shot).")
@verbose_option
def lm_eval(model_dir: Path, tasks: str, include_path: Path | None, limit: float | None, output_path: Path | None,
            name: str | None, tokenizer: str | None, context: str, eos: bool, num_fewshot: int | None,
            seed: int) -> None:  # fmt: skip
    """Run lm-evaluation-harness TASKS on the trained model in MODEL_DIR (any family)."""
    from lmbench.integrations.lm_eval import LmbenchLM, evaluate, task_manager, write_results

    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if output_path is not None and output_path.exists():
        raise InputError(f"--output-path: {output_path} exists; lmbench writes only new files")
    manager = task_manager(names, include_path)  # an unknown task: exit 2 before any model loads
    lm = LmbenchLM(model_dir, name=name, tokenizer=tokenizer, context=context, eos=eos)
    limit_n = int(limit) if limit is not None and limit >= 1 and float(limit).is_integer() else limit
    scores, results = evaluate(lm, names, limit=limit_n, seed=seed, num_fewshot=num_fewshot, manager=manager)
    from lmbench.reporting import tables

    rows = [{"task": s.task, "metric": s.metric, "value": f"{s.value:.4f}",
             "stderr": "" if s.stderr is None else f"{s.stderr:.4f}", "n": s.n} for s in scores]  # fmt: skip
    click.echo(tables.render(rows, "simple"))
    click.echo(
        f"{lm.name}: {lm.oov_tokens:,} of {lm.counts.tokens:,} tokens outside the vocabulary (scored as <unk>)"
    )
    if output_path is not None:
        write_results(results, output_path)
        click.echo(f"results: {output_path}")


if __name__ == "__main__":  # pragma: no cover - `torchrun -m lmbench.cli run CONFIG`
    sys.exit(main())
