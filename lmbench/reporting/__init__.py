"""Tables, plots and report pages rendered from a results dict."""

from lmbench.reporting.report import load_results, render_report

__all__ = ["load_results", "render_report"]
