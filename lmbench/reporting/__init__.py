"""Tables, plots and report pages rendered from a run's :class:`~lmbench.results.RunResults`.

The functions below load on first use, so that importing a light module of this package (``formats``: the
list of report formats, read by config checks) does not load pandas, Jinja2 or matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_results", "load_results", "render_report", "summary_text"]


def __getattr__(name: str) -> Any:
    if name == "compare_results":
        from lmbench.reporting import compare

        return compare.compare_results
    if name in __all__:
        from lmbench.reporting import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
