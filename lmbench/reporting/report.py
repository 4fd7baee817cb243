"""Render a report folder from a results dict: results.csv, tasks.csv, samples.csv, results.json, report.md,
a self-contained report.html (plots embedded), LaTeX tables and PNG plots (the formats of
:mod:`lmbench.reporting.formats`).

Everything is written into a temporary folder beside the target and swapped in at the end, so an
interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from lmbench.reporting import tables
from lmbench.reporting.crossover import baseline_caption, crossover_lines
from lmbench.reporting.formats import DEFAULT_FORMATS, ReportFolder, chosen_formats
from lmbench.reporting.narrative import narrative_markdown
from lmbench.reporting.search_plots import mark_tuned, search_html, search_markdown, write_search_outputs
from lmbench.results import Sample, main_view, samples, split_legacy_samples, task_rows
from lmbench.tasks import task_warnings


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
    """The results dict stored in ``folder/results.json``, in today's layout (generated samples that earlier
    versions kept among the task rows are moved to ``samples``)."""
    path = Path(folder) / "results.json"
    from lmbench.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: not found (expected a report folder written by `lmbench run`)")
    try:
        results = _json_restore(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if not isinstance(results, dict) or not isinstance(results.get("rows"), list):
        raise DataError(f"{path}: expected the results object written by `lmbench run` (with a list of rows)")
    return split_legacy_samples(results)


def samples_markdown(generated: Sequence[Sample], per_model: int = 3) -> str:
    """The first ``per_model`` samples of each model, as a markdown list under the model's name."""
    if not generated:
        return ""
    lines = []
    for name in dict.fromkeys(s.model for s in generated):
        lines.append(f"**{name}**")
        for s in [s for s in generated if s.model == name][:per_model]:
            lines.append(f"- `{s.text}`")
        lines.append("")
    return "\n".join(lines)


def summary_text(results: dict[str, Any]) -> str:
    """What ``lmbench run`` and ``lmbench report`` print: the report's headline table (its split and context named),
    then every other split and context, the entropy floor, the
    search statement, the signature, and the task figures with their tie warnings (terminal tables)."""
    from lmbench.reporting.search_plots import statement

    split, context = _main_view(results)
    text = f"{split} perplexity ({context} context), as the report heads with:\n"
    text += tables.render(_main_table(results), "simple")
    others = [r for r in results["rows"] if (r["split"], r["context"]) != (split, context)]
    if others:
        table = mark_tuned(tables.display_table(others, bootstrap=_bootstrap(results)), results)
        text += "\n\nevery other split and context:\n" + tables.render(table, "simple")
    text += _floor_warnings(results)
    floor = results.get("entropy_floor")
    if floor:
        text += f"\nentropy floor (true source): test perplexity {floor['perplexity']:.3f}"
    if results.get("search"):
        text += f"\n{statement(results)}"
    text += f"\n{tables.signature(results)}"
    figures = task_rows(results)
    if figures:
        text += "\n\n" + tables.render(tables.task_table(figures, compact=True), "simple")
        text += "".join(f"\n{w}" for w in task_warnings(figures))
    return text


def _floor_warnings(results: dict[str, Any]) -> str:
    from lmbench.reporting.narrative import floor_warnings

    return "".join(f"\n{w}" for w in floor_warnings(results))


def _main_view(results: dict[str, Any]) -> tuple[str, str]:
    """The split and context of the main table and the headline figure (:func:`lmbench.results.main_view`)."""
    return main_view(results.get("rows", []))


def _bootstrap(results: dict[str, Any]) -> int | None:
    return (results.get("provenance") or {}).get("bootstrap") or None


def _main_table(results: dict[str, Any]) -> list[dict[str, str]]:
    split, context = _main_view(results)
    table = mark_tuned(
        tables.display_table(
            results.get("rows", []), split=split, context=context, bootstrap=_bootstrap(results)
        ),
        results,
    )
    return [{k: v for k, v in row.items() if k not in ("split", "context")} for row in table]


def _headline_caption(results: dict[str, Any]) -> str:
    split, context = _main_view(results)
    text = f"{split.capitalize()} perplexity of each model ({context} context), with 95% bootstrap intervals"
    floor = results.get("entropy_floor")
    if floor:
        text += f"; the dashed line is the true source's entropy floor ({floor['perplexity']:.2f})"
    return text + ". Lower is better."


def _attention_text(results: dict[str, Any]) -> str:
    """The attention example in one paragraph (HTML: tokens in <code>)."""
    examples = results.get("attention") or {}
    if not examples:
        return ""
    name, ex = list(examples.items())[-1]
    tokens, q, k = ex["tokens"], ex["query"], ex["key"]
    esc = html.escape
    chosen = f" (chosen as {esc(ex['reason'])})" if ex.get("reason") else ""
    return (
        f"On the test sentence <code>{esc(' '.join(tokens[1:]))}</code>{chosen}, {esc(name)}'s position that "
        f"predicts <code>{esc(tokens[q + 1])}</code> puts {ex['weight']:.0%} of its attention (layer {ex['layer']}, "
        f"head {ex['head']}) on <code>{esc(tokens[k])}</code>, {q - k + 1} tokens back; an even spread would "
        f"give {ex['uniform_weight']:.0%}. An n-gram sees only n - 1 words back: it would need order "
        f"{q - k + 2} to see <code>{esc(tokens[k])}</code> here."
    )


def markdown_report(results: dict[str, Any], images: Sequence[Path] = ()) -> str:
    """The report as markdown: headline figure, main table (test, one context), step cards, the attention
    example, plots, tasks; every split and context, the references and provenance in an appendix."""
    from lmbench.reporting.attention import FORMULA
    from lmbench.reporting.narrative import floor_warnings, ladder_steps

    name = results.get("experiment", "experiment")
    rows = results.get("rows", [])
    by_stem = {img.stem: img for img in images}
    parts = [f"# lmbench report: {name}", ""]
    p = results.get("provenance", {})
    if p.get("command"):
        parts += [f"Regenerate with: `{p['command']}`", ""]
    if "headline" in by_stem:
        parts += [f"![headline]({by_stem['headline'].name})", "", f"*{_headline_caption(results)}*", ""]
    split, context = _main_view(results)
    parts += [f"## {split.capitalize()} perplexity ({context} context)", ""]
    parts += [tables.render(_main_table(results)), "", f"`{tables.signature(results)}`", ""]
    if results.get("search"):
        parts += [search_markdown(results)]
    floor = results.get("entropy_floor")
    if floor:
        parts += [
            f"**Entropy floor** (the true source of the synthetic corpus): test perplexity {floor['perplexity']:.3f} "
            f"({floor['bits_per_token']:.3f} bits/token); exact entropy rate {floor['entropy_rate_perplexity']:.3f}. "
            "No model can beat it on average.",
            "",
        ]
        parts += [f"- **{w}**" for w in floor_warnings(results)] + ([""] if floor_warnings(results) else [])
    steps = ladder_steps(results)
    if len(steps) > 1:
        parts += [f"## {steps_title(results)}", ""]
        for i, step in enumerate(steps, start=1):
            cost = "; ".join(x for x in (step["tokens"], step["compute"]) if x)
            parts += [
                f"**{i}. {step['model']}**: {step['description']}. {step['changed']}  ",
                step["figure"] + (f" · {cost}" if cost else "") + "  ",
                f"*{step['why']}*",
                "",
            ]
    if "attention" in by_stem:
        text = html.unescape(re.sub(r"</?code>", "`", _attention_text(results)))
        parts += ["## Why attention reaches further back", "", f"`{FORMULA}`", "", text, ""]
        parts += [f"![attention]({by_stem['attention'].name})", ""]
    lines = crossover_lines(results)
    if lines:
        parts += ["## Learning curves against the n-gram baseline", "", baseline_caption(results), ""]
        parts += [f"- {line}" for line in lines] + [""]
        if "learning_curves" in by_stem:
            parts += [f"![learning_curves]({by_stem['learning_curves'].name})", ""]
    shown = ("headline", "attention", "learning_curves") if lines else ("headline", "attention")
    plots = [img for img in images if img.stem not in shown]
    if plots:
        parts += ["## Plots", ""] + [f"![{img.stem}]({img.name})" for img in plots] + [""]
    figures = task_rows(results)
    if figures:
        parts += [
            "## Downstream tasks",
            "",
            tables.render(tables.task_table(figures)),
            "",
            tables.TASK_NOTE,
            "",
        ]
        warnings = task_warnings(figures)
        if warnings:
            parts += [f"- **{w}**" for w in warnings] + [""]
        generated = samples_markdown(samples(results))
        if generated:
            parts += ["### Generated samples", "", generated]
    if results.get("failures"):
        parts += ["## Failures", ""] + [f"- {f}" for f in results["failures"]] + [""]
    parts += ["## Appendix", ""]
    for s in dict.fromkeys(r["split"] for r in rows):
        table = mark_tuned(tables.display_table(rows, split=s, bootstrap=_bootstrap(results)), results)
        parts += [f"### {s} split, every context", "", tables.render(table), ""]
    if results.get("references"):
        parts += [
            "### Published and reference figures for the same setting",
            "",
            "(not produced by this run)",
            "",
        ]
        parts += [tables.render(results["references"]), ""]
    narrative = narrative_markdown(results)
    if narrative:
        parts += ["### Detailed commentary", "", narrative, ""]
    parts += ["### Provenance", "", "```json", json.dumps(_json_safe(p), indent=2), "```", ""]
    return "\n".join(parts)


def steps_title(results: dict[str, Any]) -> str:
    """The heading of the model-by-model cards: a ladder only where the models form one."""
    from lmbench.reporting.narrative import forms_ladder

    return "The ladder, step by step" if forms_ladder(results) else "Model by model"


def _bold(text: str) -> str:
    """The markdown ``**bold**`` of the narrative as HTML."""
    return re.sub(r"[*][*](.+?)[*][*]", r"<b>\1</b>", text)


def _data_uri(img: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(img.read_bytes()).decode("ascii")


def _hex(colour: Any) -> str:
    r, g, b = (round(255 * c) for c in colour[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def html_report(results: dict[str, Any], images: Sequence[Path] = ()) -> str:
    """A self-contained page from the Jinja2 template ``templates/report.html.j2``: inline CSS, plots as
    data URIs, no script, no network."""
    import jinja2

    from lmbench.reporting.attention import FORMULA
    from lmbench.reporting.narrative import floor_warnings, ladder_steps
    from lmbench.reporting.plots import model_colours

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    rows = results.get("rows", [])
    by_stem = {img.stem: img for img in images}
    colours = model_colours(results)
    steps = ladder_steps(results) if len({r["model"] for r in rows}) > 1 else []
    for step in steps:
        step["colour"] = _hex(colours.get(step["model"], (0.5, 0.5, 0.5)))
    split, context = _main_view(results)
    figures = task_rows(results)
    narrative = narrative_markdown(results)
    bootstrap = _bootstrap(results)
    return env.get_template(
        "report.html.j2"
    ).render(
        name=results.get("experiment", "experiment"),
        command=(results.get("provenance") or {}).get("command"),
        headline={"src": _data_uri(by_stem["headline"])} if "headline" in by_stem else None,
        headline_caption=_headline_caption(results),
        main_title=f"{split.capitalize()} perplexity ({context} context)",
        main_table=tables.render(_main_table(results), "html"),
        search=Markup(search_html(results)) if results.get("search") else "",  # escaped where it is built
        signature=tables.signature(results),
        floor=results.get("entropy_floor"),
        floor_warnings=floor_warnings(results),
        steps=steps,
        steps_title=steps_title(results),
        attention={"src": _data_uri(by_stem["attention"])} if "attention" in by_stem else None,
        formula=FORMULA,
        attention_text=Markup(_attention_text(results)),  # built with html.escape above
        crossover=crossover_lines(results),
        crossover_caption=baseline_caption(results),
        curves_plot={"src": _data_uri(by_stem["learning_curves"])}
        if crossover_lines(results) and "learning_curves" in by_stem
        else None,
        plots=[
            {"name": i.stem, "src": _data_uri(i)}
            for i in images
            if i.stem
            not in ("headline", "attention") + (("learning_curves",) if crossover_lines(results) else ())
        ],
        task_table=tables.render(tables.task_table(figures), "html") if figures else "",
        task_note=tables.TASK_NOTE,
        tie_warnings=task_warnings(figures),
        samples=samples(results)[:30],
        failures=results.get("failures") or [],
        all_tables=[
            (
                s,
                tables.render(
                    mark_tuned(tables.display_table(rows, split=s, bootstrap=bootstrap), results), "html"
                ),
            )
            for s in dict.fromkeys(r["split"] for r in rows)
        ],
        references=tables.render(results["references"], "html") if results.get("references") else "",
        # the narrative's only markup is **model name**
        narrative=[_bold(html.escape(par)) for par in narrative.split("\n\n")] if narrative else [],
        provenance=json.dumps(_json_safe(results.get("provenance", {})), indent=2),
    )


def latex_tables(results: dict[str, Any]) -> str:
    """Tables a paper can use: one ``table`` environment per split (caption, label, booktabs rules,
    right-aligned numbers, ±/Δ/∞ as math) and one for the downstream tasks; needs booktabs."""
    rows = results.get("rows", [])
    name = results.get("experiment", "experiment")
    corpus = (results.get("provenance") or {}).get("corpus") or "the corpus"
    n = _bootstrap(results)
    parts = [f"% lmbench {tables.signature(results)}", "% needs \\usepackage{booktabs} in the preamble", ""]
    for split in dict.fromkeys(r["split"] for r in rows):
        table = [
            {k: v for k, v in row.items() if k != "split"}
            for row in mark_tuned(tables.display_table(rows, split=split, bootstrap=n), results)
        ]
        caption = f"{split.capitalize()} perplexity on {corpus}"
        if n:
            caption += f"; ± is the half-width of the 95% bootstrap interval ({n:,} resamples)"
        if table and any(key.startswith("Δ") for key in table[0]):
            caption += "; Δ is the paired-bootstrap difference in perplexity from the baseline, with its 95% interval"
        parts += [tables.latex_table(table, caption=caption + ".", label=f"tab:{name}-{split}"), ""]
    task_table = tables.task_table(task_rows(results))
    if task_table:
        caption = f"Downstream tasks on {corpus}; ± is the half-width of the 95% interval."
        parts += [tables.latex_table(task_table, caption=caption, label=f"tab:{name}-tasks"), ""]
    return "\n".join(parts)


def render_report(
    results: dict[str, Any],
    output_dir: str | Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
) -> Path:
    """Write the report files for ``results`` into ``output_dir`` (replaced as a whole, atomically).

    The files are staged in a hidden ``.<name>.tmp-*`` folder beside the target and swapped in under a lock on
    the parent folder, so renders racing for one folder take turns; the previous report sits in ``.<name>.old-*``
    only during the swap, and is moved back if the swap fails. Leftovers of interrupted renders are cleaned.
    """
    output_dir = Path(output_dir)
    chosen_formats(formats)  # an unknown format fails before anything is written
    results = split_legacy_samples(results)  # written in today's layout, whatever version made the dict
    check_report_folder(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(output_dir.parent):
        _recover(output_dir)
        staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.tmp-"))
        try:
            _write_report_files(results, staging, formats)
            old = None
            if output_dir.exists():
                old = output_dir.parent / f".{output_dir.name}.old-{staging.name[-8:]}"
                output_dir.rename(old)
            staging.chmod(0o755)  # mkdtemp makes it private; a report folder is for reading
            try:
                staging.rename(output_dir)
            except BaseException:
                if old is not None and not output_dir.exists():
                    old.rename(output_dir)  # never leave the previous report only in a hidden folder
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return output_dir


def check_report_folder(output_dir: str | Path) -> None:
    """A report replaces its folder as a whole, so the folder must be new, empty, or an earlier report
    (it holds results.json): ``--output .`` or ``--output ~`` would otherwise swap away the user's files."""
    from lmbench.errors import ConfigError

    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: the report folder exists and is a file, expected a folder")
    if path.is_dir() and not (path / "results.json").is_file() and any(path.iterdir()):
        raise ConfigError(
            f"{path}: the report folder holds other files and no results.json, so it is not an earlier report; "
            "a report replaces its whole folder: pick a new or empty one"
        )


def _write_report_files(results: dict[str, Any], staging: Path, formats: Sequence[str]) -> None:
    """Every chosen format (and those always written) into ``staging``; plots first where a format uses them."""
    chosen = chosen_formats(formats)
    with_plots = any(f.plots for f in chosen)
    images: list[Path] = []
    if with_plots:
        from lmbench.reporting.plots import write_plots

        images = write_plots(results, staging)
    images += write_search_outputs(results, staging, plots=with_plots)
    folder = ReportFolder(staging, images, keeps_images=any(f.keeps_plots for f in chosen))
    for report_format in chosen:
        report_format.write(results, folder)
    if not folder.keeps_images:
        for img in images:
            img.unlink()


def write_csv(results: dict[str, Any], folder: ReportFolder) -> None:
    """results.csv, results_by_seed.csv, timings.csv, tasks.csv, and samples.csv where text was generated."""
    tables.results_frame(results.get("rows", [])).to_csv(folder.path / "results.csv", index=False)
    tables.seed_frame(results.get("rows_by_seed", [])).to_csv(
        folder.path / "results_by_seed.csv", index=False
    )
    tables.timings_frame(results.get("rows", []), task_rows(results)).to_csv(
        folder.path / "timings.csv", index=False
    )
    tables.task_frame(task_rows(results)).to_csv(folder.path / "tasks.csv", index=False)
    generated = samples(results)
    if generated:
        tables.sample_frame(generated).to_csv(folder.path / "samples.csv", index=False)


def write_json(results: dict[str, Any], folder: ReportFolder) -> None:
    """results.json: everything ``lmbench report`` re-renders from."""
    (folder.path / "results.json").write_text(json.dumps(_json_safe(results), indent=2), encoding="utf-8")


def write_markdown(results: dict[str, Any], folder: ReportFolder) -> None:
    """report.md, linking the plots where they stay beside it."""
    images = folder.images if folder.keeps_images else ()
    (folder.path / "report.md").write_text(markdown_report(results, images), encoding="utf-8")


def write_html(results: dict[str, Any], folder: ReportFolder) -> None:
    (folder.path / "report.html").write_text(html_report(results, folder.images), encoding="utf-8")


def write_latex(results: dict[str, Any], folder: ReportFolder) -> None:
    (folder.path / "tables.tex").write_text(latex_tables(results), encoding="utf-8")


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``folder`` (flock on the folder itself: no lock file is left behind)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on Windows: renders there do not take turns
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # an unreadable (write-only) parent: render without taking turns
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _recover(output_dir: Path) -> None:
    """Under the lock: an interrupted swap's previous report goes back in place; stale staging goes away."""
    olds = sorted(output_dir.parent.glob(f".{output_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not output_dir.exists():
        olds.pop().rename(output_dir)
    for stale in [*olds, *output_dir.parent.glob(f".{output_dir.name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)
