"""``lmbench run`` as Python calls: check the executor and the folders, train and score every model
(:func:`lmbench.experiment.run_experiment`), then render the report and log it to the trackers.

The CLI parses its options and calls :func:`start` and :func:`run_and_report`; everything else a run does
lives here, so a script gets the same checks, in the same order, as the command line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lmbench.config import ExperimentConfig
from lmbench.errors import ConfigError
from lmbench.executors import ExecutorSettings
from lmbench.results import RunResults
from lmbench.training import distributed


def start(settings: ExecutorSettings) -> None:
    """Before anything is read: the executor options make sense together (else :class:`ConfigError`), and
    under torchrun this process joins the process group."""
    settings.check()
    if settings.kind == "ray" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "--executor ray does not run under torchrun: use one or the other (see docs/scale-out.md)"
        )
    distributed.init_from_env()  # under torchrun: join the process group; otherwise nothing


def check_folders(output: Path, runs_dir: Path, *, force: bool) -> None:
    """Before any training: the report folder can be written (and holds no report lmbench did not write,
    unless ``force``), and it and the runs folder do not overlap. A bad folder is a :class:`ConfigError`,
    not lost work."""
    from lmbench.io import check_output_dir
    from lmbench.reporting.report import check_report_folder

    check_output_dir(output, "report folder")
    check_report_folder(output, force=force)
    a, b = output.resolve(), runs_dir.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ConfigError(f"--output {output} and --runs-dir {runs_dir} overlap; give each its own folder")


def run_and_report(
    config: ExperimentConfig,
    output: Path,
    runs_dir: Path,
    *,
    command: str,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    storage: str | None = None,
    force: bool = False,
    settings: ExecutorSettings | None = None,
) -> RunResults | None:
    """Check the folders, claim the runs folder, train and score every model of ``config`` and write its
    report to ``output``. ``command``: the command line that regenerates the report (in its provenance);
    ``say``: progress lines; ``warn``: warnings (missing tracker packages, tracker failures).

    Returns the results, or ``None`` in a torchrun process other than the main one (it writes no report).
    """
    from lmbench.executors import open_executor
    from lmbench.experiment import run_experiment
    from lmbench.ownership import claim_runs_folder, mark_runs_folder
    from lmbench.reporting import render_report
    from lmbench.reporting.trackers import log_to_trackers, missing_packages

    check_folders(output, runs_dir, force=force)
    if distributed.is_main():
        for line in missing_packages(config.report.trackers):  # said before training, not after it
            warn(line)
    owned_runs = claim_runs_folder(runs_dir, force=force, models=[m.name for m in config.models])
    try:
        with open_executor(settings or ExecutorSettings(), say) as pool:
            results = run_experiment(config, runs_dir, progress=say, storage=storage, executor=pool)
    finally:
        if owned_runs and distributed.is_main():
            mark_runs_folder(runs_dir)
    results.provenance.command = command
    if not distributed.is_main():
        return None
    render_report(results, output, config.report.formats, force=force)
    if config.report.trackers:
        log_to_trackers(results, output, runs_dir, config.report.trackers, warn)
    return results
