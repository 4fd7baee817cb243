"""Render a report folder from a results dict: results.csv, tasks.csv, results.json, report.md, a
self-contained report.html (plots embedded), LaTeX tables and PNG plots.

Everything is written into a temporary folder beside the target and swapped in at the end, so an
interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lmbench.reporting import tables
from lmbench.reporting.narrative import narrative_markdown
from lmbench.reporting.search_plots import mark_tuned, search_html, search_markdown, write_search_outputs


def _json_safe(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings that :func:`load_results` turns back into floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):
        return _json_safe(value.item())
    return value


def _json_restore(value: Any) -> Any:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, dict):
        return {k: _json_restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_restore(v) for v in value]
    return value


def load_results(folder: str | Path) -> dict[str, Any]:
    """The results dict stored in ``folder/results.json``."""
    path = Path(folder) / "results.json"
    from lmbench.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: not found (expected a report folder written by `lmbench run`)")
    try:
        return _json_restore(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None


def samples_markdown(task_rows: list[dict[str, Any]], per_model: int = 3) -> str:
    samples = [r for r in task_rows if r["metric"] == "sample"]
    if not samples:
        return ""
    lines = []
    for name in dict.fromkeys(r["model"] for r in samples):
        lines.append(f"**{name}**")
        for r in [r for r in samples if r["model"] == name][:per_model]:
            lines.append(f"- `{r['detail']}`")
        lines.append("")
    return "\n".join(lines)


def markdown_report(results: dict[str, Any], images: Sequence[Path] = ()) -> str:
    name = results.get("experiment", "experiment")
    rows = results.get("rows", [])
    parts = [f"# lmbench report: {name}", ""]
    p = results.get("provenance", {})
    if p.get("command"):
        parts += [f"Regenerate with: `{p['command']}`", ""]
    for split in dict.fromkeys(r["split"] for r in rows):
        table = mark_tuned(tables.display_table(rows, split=split), results)
        parts += [f"## {split} split", "", tables.render(table), ""]
    parts += [f"`{tables.signature(results)}`", ""]
    if results.get("references"):
        parts += ["**Published and reference figures for the same setting** (not produced by this run):", "",
                  tables.render(results["references"]), ""]  # fmt: skip
    floor = results.get("entropy_floor")
    if floor:
        parts += [
            f"**Entropy floor** (the true source of the synthetic corpus): test perplexity {floor['perplexity']:.3f} "
            f"({floor['bits_per_token']:.3f} bits/token); exact entropy rate {floor['entropy_rate_perplexity']:.3f}. "
            "No model can beat it on average.",
            "",
        ]
    if results.get("search"):
        parts += [search_markdown(results)]
    narrative = narrative_markdown(results)
    if narrative:
        parts += ["## What each step changed", "", narrative, ""]
    task_rows = results.get("tasks", [])
    if task_rows:
        parts += ["## Downstream tasks", "", tables.render(tables.task_table(task_rows)), ""]
        samples = samples_markdown(task_rows)
        if samples:
            parts += ["### Generated samples", "", samples]
    if results.get("failures"):
        parts += ["## Failures", ""] + [f"- {f}" for f in results["failures"]] + [""]
    if images:
        parts += ["## Plots", ""] + [f"![{img.stem}]({img.name})" for img in images] + [""]
    parts += ["## Provenance", "", "```json", json.dumps(_json_safe(p), indent=2), "```", ""]
    return "\n".join(parts)


HTML_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
code, pre { background: #f6f6f6; padding: 2px 4px; font-size: 0.85em; }
pre { padding: 8px; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.floor { background: #eef6ee; padding: 6px 10px; border-left: 4px solid #4a4; }
"""


def _bold(text: str) -> str:
    """The markdown ``**bold**`` of the narrative as HTML."""
    return re.sub(r"[*][*](.+?)[*][*]", r"<b>\1</b>", text)


def html_report(results: dict[str, Any], images: Sequence[Path] = ()) -> str:
    """A self-contained page: inline CSS, plots as data URIs, no script, no network."""
    esc = html.escape
    name = results.get("experiment", "experiment")
    rows = results.get("rows", [])
    body = [f"<h1>lmbench report: {esc(name)}</h1>"]
    for split in dict.fromkeys(r["split"] for r in rows):
        body += [
            f"<h2>{esc(split)} split</h2>",
            tables.render(mark_tuned(tables.display_table(rows, split=split), results), "html"),
        ]
    body.append(f"<p><code>{esc(tables.signature(results))}</code></p>")
    if results.get("references"):
        body += [
            "<h3>Published and reference figures for the same setting</h3>",
            tables.render(results["references"], "html"),
        ]
    floor = results.get("entropy_floor")
    if floor:
        body.append(
            f'<p class="floor"><b>Entropy floor</b>: the true source scores test perplexity '
            f"{floor['perplexity']:.3f} ({floor['bits_per_token']:.3f} bits/token).</p>"
        )
    if results.get("search"):
        body.append(search_html(results))
    narrative = narrative_markdown(results)
    if narrative:
        body.append("<h2>What each step changed</h2>")
        # the narrative's only markup is **model name**
        body += [f"<p>{_bold(esc(par))}</p>" for par in narrative.split("\n\n")]
    task_rows = results.get("tasks", [])
    if task_rows:
        body += ["<h2>Downstream tasks</h2>", tables.render(tables.task_table(task_rows), "html")]
        samples = [r for r in task_rows if r["metric"] == "sample"]
        if samples:
            body.append("<h3>Generated samples</h3><ul>")
            body += [
                f"<li><b>{esc(r['model'])}</b>: <code>{esc(r['detail'])}</code></li>" for r in samples[:30]
            ]
            body.append("</ul>")
    if results.get("failures"):
        body += ["<h2>Failures</h2><ul>"] + [f"<li>{esc(f)}</li>" for f in results["failures"]] + ["</ul>"]
    if images:
        body.append("<h2>Plots</h2>")
        for img in images:
            data = base64.b64encode(img.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(img.stem)}" src="data:image/png;base64,{data}"><figcaption>{esc(img.stem)}</figcaption></figure>'
            )
    body += [
        "<h2>Provenance</h2>",
        f"<pre>{esc(json.dumps(_json_safe(results.get('provenance', {})), indent=2))}</pre>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>lmbench: {esc(name)}</title><style>{HTML_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def latex_tables(results: dict[str, Any]) -> str:
    rows = results.get("rows", [])
    parts = [f"% lmbench {tables.signature(results)}"]
    for split in dict.fromkeys(r["split"] for r in rows):
        parts += [
            f"% {split} split",
            tables.render(mark_tuned(tables.display_table(rows, split=split), results), "latex_booktabs"),
        ]
    if results.get("tasks"):
        parts += ["% downstream tasks", tables.render(tables.task_table(results["tasks"]), "latex_booktabs")]
    return "\n".join(parts) + "\n"


def render_report(
    results: dict[str, Any],
    output_dir: str | Path,
    formats: Sequence[str] = ("md", "csv", "json", "html", "png"),
) -> Path:
    """Write the report files for ``results`` into ``output_dir`` (replaced as a whole, atomically)."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.tmp-"))
    try:
        # results.csv, tasks.csv and results.json are always written: they are what `lmbench report` re-reads
        tables.results_frame(results.get("rows", [])).to_csv(staging / "results.csv", index=False)
        tables.seed_frame(results.get("rows_by_seed", [])).to_csv(
            staging / "results_by_seed.csv", index=False
        )
        tables.timings_frame(results.get("rows", [])).to_csv(staging / "timings.csv", index=False)
        task_columns = ["model", "task", "metric", "value", "low", "high", "n", "detail"]
        pd.DataFrame(results.get("tasks", []), columns=task_columns).to_csv(
            staging / "tasks.csv", index=False
        )
        (staging / "results.json").write_text(json.dumps(_json_safe(results), indent=2), encoding="utf-8")
        images: list[Path] = []
        if "png" in formats or "html" in formats:
            from lmbench.reporting.plots import write_plots

            images = write_plots(results, staging)
        images += write_search_outputs(results, staging, plots="png" in formats or "html" in formats)
        if "md" in formats:
            (staging / "report.md").write_text(
                markdown_report(results, images if "png" in formats else ()), encoding="utf-8"
            )
        if "html" in formats:
            (staging / "report.html").write_text(html_report(results, images), encoding="utf-8")
        if "latex" in formats:
            (staging / "tables.tex").write_text(latex_tables(results), encoding="utf-8")
        if "png" not in formats:
            for img in images:
                img.unlink()
        old = None
        if output_dir.exists():
            old = output_dir.parent / f".{output_dir.name}.old-{staging.name[-8:]}"
            output_dir.rename(old)
        staging.chmod(0o755)  # mkdtemp makes it private; a report folder is for reading
        staging.rename(output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir
