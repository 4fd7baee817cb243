"""The report formats: one registry entry per format, naming what it writes and the function that writes it.

``[report] formats`` in a config and ``lmbench report --formats`` choose from :data:`REPORT_FORMATS`. A writer
is a function ``write(results, folder: ReportFolder) -> None`` that puts its files into ``folder.path`` (a
staging folder, swapped in whole by :func:`lmbench.reporting.render_report`). Writers are named as
``"module:function"`` and imported only when used, so reading the list of formats (config checks, ``--help``)
loads no plotting or table library. Adding a format: one module with its writer, one line in ``FORMATS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmbench.errors import ConfigError


@dataclass(frozen=True)
class ReportFolder:
    """Where a report is being written, and the PNG plots made for it (when a chosen format uses plots)."""

    path: Path
    images: list[Path] = field(default_factory=list)  # every plot made (html embeds them)
    keeps_images: bool = False  # the plots stay as files beside the report, so markdown may link them


@dataclass(frozen=True)
class ReportFormat:
    """One report format. ``writer``: ``"module:function"`` (None: the format is the plot files themselves)."""

    name: str
    writer: str | None
    files: str  # what it writes, for help texts
    plots: bool = False  # needs the PNG plots made before it is written
    keeps_plots: bool = False  # the plots stay in the report folder (else they are removed after writing)
    always: bool = False  # written whatever is chosen: `lmbench report` re-reads these

    def write(self, results: dict[str, Any], folder: ReportFolder) -> None:
        if self.writer is None:
            return
        module, _, function = self.writer.partition(":")
        getattr(importlib.import_module(module), function)(results, folder)


FORMATS = {f.name: f for f in (
    ReportFormat("md", "lmbench.reporting.report:write_markdown", "report.md (links the PNG plots)"),
    ReportFormat("csv", "lmbench.reporting.report:write_csv",
                 "results.csv, results_by_seed.csv, timings.csv, tasks.csv, samples.csv", always=True),
    ReportFormat("json", "lmbench.reporting.report:write_json", "results.json", always=True),
    ReportFormat("html", "lmbench.reporting.report:write_html", "report.html (self-contained)", plots=True),
    ReportFormat("latex", "lmbench.reporting.report:write_latex", "tables.tex (booktabs)"),
    ReportFormat("png", None, "the plots as PNG files", plots=True, keeps_plots=True),
)}  # fmt: skip
REPORT_FORMATS = tuple(FORMATS)
DEFAULT_FORMATS = ("md", "csv", "json", "html", "png")


def chosen_formats(formats: Sequence[str]) -> list[ReportFormat]:
    """The formats to write, in registry order: those always written, then the chosen ones."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(
            f"unknown report format {unknown[0]!r}; expected some of {', '.join(REPORT_FORMATS)}"
        )
    return [f for f in FORMATS.values() if f.always] + [
        f for f in FORMATS.values() if f.name in formats and not f.always
    ]
