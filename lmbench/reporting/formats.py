"""The report formats: one registry entry per format, naming what it writes and the function that writes it.

``[report] formats`` in a config and ``lmbench report --formats`` choose from :data:`FORMATS`. A writer is a
function ``write(results: RunResults, folder: ReportFolder) -> None`` that puts its files into ``folder.path`` (a staging
folder, swapped in whole by :func:`lmbench.reporting.render_report`). lmbench's writers are named as
``"module:function"`` and imported only when used, so reading the list of formats (config checks, ``--help``)
loads no plotting or table library. Adding a format: an installed package's entry point in the
``lmbench.report_formats`` group, naming a :class:`ReportFormat` or simply its writer function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmbench.errors import ConfigError
from lmbench.registry import PluginError, Registry

if TYPE_CHECKING:
    from lmbench.results import RunResults


@dataclass(frozen=True)
class ReportFolder:
    """Where a report is being written, and the PNG plots made for it (when a chosen format uses plots)."""

    path: Path
    images: list[Path] = field(default_factory=list)  # every plot made (html embeds them)
    keeps_images: bool = False  # the plots stay as files beside the report, so markdown may link them


@dataclass(frozen=True)
class ReportFormat:
    """One report format. ``writer``: the function, or ``"module:function"`` imported when the format is written
    (None: the format is the plot files themselves)."""

    name: str
    writer: str | Callable[[RunResults, ReportFolder], None] | None
    files: str  # what it writes, for help texts
    plots: bool = False  # needs the PNG plots made before it is written
    keeps_plots: bool = False  # the plots stay in the report folder (else they are removed after writing)
    always: bool = False  # written whatever is chosen: `lmbench report` re-reads these

    def write(self, results: RunResults, folder: ReportFolder) -> None:
        if self.writer is None:
            return
        if callable(self.writer):
            self.writer(results, folder)
            return
        module, _, function = self.writer.partition(":")
        getattr(importlib.import_module(module), function)(results, folder)


def _adapt(name: str, obj: Any) -> ReportFormat:
    """A registry entry: a :class:`ReportFormat`, or a writer function (its docstring's first line says what
    it writes)."""
    if isinstance(obj, ReportFormat):
        if obj.name != name:
            raise PluginError(f"the report format is named {obj.name!r}, not {name!r}")
        return obj
    if callable(obj):
        return ReportFormat(name, obj, ((obj.__doc__ or "").strip().splitlines() or [name])[0])
    raise PluginError(f"expected a ReportFormat or a writer function, got {type(obj).__name__}")


FORMATS: Registry[ReportFormat] = Registry("report format", "lmbench.report_formats", adapt=_adapt)
for _format in (
    ReportFormat("md", "lmbench.reporting.report:write_markdown", "report.md (links the PNG plots)"),
    ReportFormat("csv", "lmbench.reporting.report:write_csv",
                 "results.csv, results_by_seed.csv, timings.csv, tasks.csv, samples.csv", always=True),
    ReportFormat("json", "lmbench.reporting.report:write_json", "results.json", always=True),
    ReportFormat("html", "lmbench.reporting.report:write_html", "report.html (self-contained)", plots=True),
    ReportFormat("latex", "lmbench.reporting.report:write_latex", "tables.tex (booktabs)"),
    ReportFormat("png", None, "the plots as PNG files", plots=True, keeps_plots=True),
):  # fmt: skip
    FORMATS.register(_format.name, _format)
REPORT_FORMATS = tuple(
    FORMATS.registered()
)  # lmbench's own formats (FORMATS adds those of installed packages)
DEFAULT_FORMATS = ("md", "csv", "json", "html", "png")


def chosen_formats(formats: Sequence[str]) -> list[ReportFormat]:
    """The formats to write, in registry order: those always written, then the chosen ones."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        if unknown[0] in FORMATS.broken:
            FORMATS.lookup(unknown[0])  # raises, naming the plugin that failed to load
        raise ConfigError(f"unknown report format {unknown[0]!r}; expected some of {', '.join(FORMATS)}")
    return [f for f in FORMATS.values() if f.always] + [
        f for f in FORMATS.values() if f.name in formats and not f.always
    ]
