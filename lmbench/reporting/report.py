"""Render a report folder from a run's :class:`~lmbench.results.RunResults`: results.csv, tasks.csv, samples.csv, results.json, report.md,
a self-contained report.html (plots embedded), LaTeX tables and PNG plots (the formats of
:mod:`lmbench.reporting.formats`).

Everything is written into a temporary folder beside the target and moved in at the end, so an
interrupted run never leaves a half-written file; only files lmbench wrote are ever replaced
(:mod:`lmbench.ownership`).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from lmbench.reporting import tables
from lmbench.reporting.crossover import baseline_caption, crossover_lines
from lmbench.reporting.escape import latex_comment, md_code, md_escaped, md_text, one_line, well_formed
from lmbench.reporting.formats import DEFAULT_FORMATS, ReportFolder, chosen_formats
from lmbench.reporting.narrative import narrative_markdown
from lmbench.reporting.search_plots import mark_tuned, search_html, search_markdown, write_search_outputs
from lmbench.results import RunResults, Sample, json_safe, main_view
from lmbench.tasks import task_warnings


def load_results(folder: str | Path) -> RunResults:
    """The results stored in ``folder/results.json`` (:meth:`RunResults.load`: any layout this lmbench reads)."""
    return RunResults.load(Path(folder) / "results.json")


def samples_markdown(generated: Sequence[Sample], per_model: int = 3) -> str:
    """The first ``per_model`` samples of each model, as a markdown list under the model's name."""
    if not generated:
        return ""
    lines = []
    for name in dict.fromkeys(s.model for s in generated):
        lines.append(f"**{md_text(name)}**")
        for s in [s for s in generated if s.model == name][:per_model]:
            lines.append(f"- {md_code(s.text)}")
        lines.append("")
    return "\n".join(lines)


def summary_text(results: RunResults) -> str:
    """What ``lmbench run`` and ``lmbench report`` print: the report's headline table (its split and context named),
    then every other split and context, the entropy floor, the
    search statement, the signature, and the task figures with their tie warnings (terminal tables)."""
    from lmbench.reporting.search_plots import statement

    split, context = _main_view(results)
    text = f"{split} perplexity ({context} context), as the report heads with:\n"
    text += tables.render(_main_table(results), "simple")
    others = [r for r in results.rows if (r.split, r.context) != (split, context)]
    if others:
        table = mark_tuned(tables.display_table(others, bootstrap=_bootstrap(results)), results)
        text += "\n\nevery other split and context:\n" + tables.render(table, "simple")
    text += _floor_warnings(results)
    if results.entropy_floor:
        text += f"\nentropy floor (true source): test perplexity {results.entropy_floor.perplexity:.3f}"
    if results.search:
        text += f"\n{one_line(statement(results))}"
    text += f"\n{one_line(tables.signature(results))}"  # a corpus path may hold a newline or escape sequence
    figures = results.tasks
    if figures:
        text += "\n\n" + tables.render(tables.task_table(figures, compact=True), "simple")
        text += "".join(f"\n{one_line(w)}" for w in task_warnings(figures))
    return text


def _floor_warnings(results: RunResults) -> str:
    from lmbench.reporting.narrative import floor_warnings

    return "".join(f"\n{one_line(w)}" for w in floor_warnings(results))


def _main_view(results: RunResults) -> tuple[str, str]:
    """The split and context of the main table and the headline figure (:func:`lmbench.results.main_view`)."""
    return main_view(results.rows)


def _bootstrap(results: RunResults) -> int | None:
    return results.provenance.bootstrap or None


def _main_table(results: RunResults) -> list[dict[str, str]]:
    split, context = _main_view(results)
    table = mark_tuned(
        tables.display_table(results.rows, split=split, context=context, bootstrap=_bootstrap(results)),
        results,
    )
    return [{k: v for k, v in row.items() if k not in ("split", "context")} for row in table]


def _headline_caption(results: RunResults) -> str:
    split, context = _main_view(results)
    text = f"{split.capitalize()} perplexity of each model ({context} context), with 95% bootstrap intervals"
    floor = results.entropy_floor
    if floor:
        text += f"; the dashed line is the true source's entropy floor ({floor.perplexity:.2f})"
    return text + ". Lower is better."


def _html_code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _attention_text(
    results: RunResults, code: Callable[[str], str] = _html_code, text: Callable[[str], str] = html.escape
) -> str:
    """The attention example in one paragraph: corpus tokens through ``code``, the model name through
    ``text`` (HTML by default; :func:`markdown_report` passes Markdown's)."""
    if not results.attention:
        return ""
    name, ex = list(results.attention.items())[-1]
    tokens, q, k = ex.tokens, ex.query, ex.key
    chosen = f" (chosen as {text(ex.reason)})" if ex.reason else ""
    return (
        f"On the test sentence {code(' '.join(tokens[1:]))}{chosen}, {text(name)}'s position that predicts "
        f"{code(tokens[q + 1])} puts {ex.weight:.0%} of its attention (layer {ex.layer}, "
        f"head {ex.head}) on {code(tokens[k])}, {q - k + 1} tokens back; an even spread would "
        f"give {ex.uniform_weight:.0%}. An n-gram sees only n - 1 words back: it would need order "
        f"{q - k + 2} to see {code(tokens[k])} here."
    )


def markdown_report(results: RunResults, images: Sequence[Path] = ()) -> str:
    """The report as markdown: headline figure, main table (test, one context), step cards, the attention
    example, plots, tasks; every split and context, the references and provenance in an appendix.

    Every string of ``results`` (names, paths, messages, generated text) is escaped for Markdown
    (:mod:`lmbench.reporting.escape`): code spans and the provenance block show the raw values."""
    raw, results = results, md_escaped(results)
    by_stem = {img.stem: img for img in images}
    return "\n".join(
        _md_head(raw, results, by_stem)
        + _md_steps(results)
        + _md_attention(raw, by_stem)
        + _md_curves_and_plots(results, images, by_stem)
        + _md_tasks(raw, results)
        + (["## Failures", ""] + [f"- {f}" for f in results.failures] + [""] if results.failures else [])
        + _md_appendix(raw, results)
    )


def _md_head(raw: RunResults, results: RunResults, by_stem: dict[str, Path]) -> list[str]:
    """Title, the command that regenerates the report, the headline figure, the main table with its signature,
    the search statement and the entropy floor (``results``: escaped for Markdown; ``raw``: as stored)."""
    from lmbench.reporting.narrative import floor_warnings

    parts = [f"# lmbench report: {results.experiment}", ""]
    if raw.provenance.command:
        parts += [f"Regenerate with: {md_code(raw.provenance.command)}", ""]
    if "headline" in by_stem:
        parts += [f"![headline]({by_stem['headline'].name})", "", f"*{_headline_caption(results)}*", ""]
    split, context = _main_view(results)
    parts += [f"## {split.capitalize()} perplexity ({context} context)", ""]
    parts += [tables.render(_main_table(results)), "", md_code(tables.signature(raw)), ""]
    if results.search:
        parts += [search_markdown(results)]
    floor = results.entropy_floor
    if floor:
        parts += [
            f"**Entropy floor** (the true source of the synthetic corpus): test perplexity {floor.perplexity:.3f} "
            f"({floor.bits_per_token:.3f} bits/token); exact entropy rate {floor.entropy_rate_perplexity:.3f}. "
            "No model can beat it on average.",
            "",
        ]
        parts += [f"- **{w}**" for w in floor_warnings(results)] + ([""] if floor_warnings(results) else [])
    return parts


def _md_steps(results: RunResults) -> list[str]:
    """One card per model (what it is, what changed, its figure and cost, why): only with several models."""
    from lmbench.reporting.narrative import ladder_steps

    steps = ladder_steps(results)
    if len(steps) <= 1:
        return []
    parts = [f"## {steps_title(results)}", ""]
    for i, step in enumerate(steps, start=1):
        cost = "; ".join(x for x in (step.tokens, step.compute) if x)
        parts += [
            f"**{i}. {step.model}**: {step.description}. {step.changed}  ",
            step.figure + (f" · {cost}" if cost else "") + "  ",
            f"*{step.why}*",
            "",
        ]
    return parts


def _md_attention(raw: RunResults, by_stem: dict[str, Path]) -> list[str]:
    """The attention example with its formula and plot, where the attention plot was drawn."""
    from lmbench.reporting.attention import FORMULA

    if "attention" not in by_stem:
        return []
    text = _attention_text(raw, code=md_code, text=md_text)
    parts = ["## Why attention reaches further back", "", f"`{FORMULA}`", "", text, ""]
    return parts + [f"![attention]({by_stem['attention'].name})", ""]


def _md_curves_and_plots(results: RunResults, images: Sequence[Path], by_stem: dict[str, Path]) -> list[str]:
    """Learning curves read against the n-gram baseline (where there are crossovers to tell), then every plot
    not shown above."""
    parts: list[str] = []
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
    return parts


def _md_tasks(raw: RunResults, results: RunResults) -> list[str]:
    """The downstream task table with its note and warnings, and the generated samples."""
    figures = results.tasks
    if not figures:
        return []
    parts = ["## Downstream tasks", "", tables.render(tables.task_table(figures)), "", tables.TASK_NOTE, ""]
    warnings = task_warnings(figures)
    if warnings:
        parts += [f"- **{w}**" for w in warnings] + [""]
    generated = samples_markdown(raw.samples)
    if generated:
        parts += ["### Generated samples", "", generated]
    return parts


def _md_appendix(raw: RunResults, results: RunResults) -> list[str]:
    """Every split in every context, the reference figures, the detailed commentary and the provenance."""
    rows = results.rows
    parts = ["## Appendix", ""]
    for s in dict.fromkeys(r.split for r in rows):
        table = mark_tuned(tables.display_table(rows, split=s, bootstrap=_bootstrap(results)), results)
        parts += [f"### {s} split, every context", "", tables.render(table), ""]
    if results.references:
        parts += [
            "### Published and reference figures for the same setting",
            "",
            "(not produced by this run)",
            "",
        ]
        parts += [tables.render([ref.to_dict() for ref in results.references]), ""]
    narrative = narrative_markdown(results)
    if narrative:
        parts += ["### Detailed commentary", "", narrative, ""]
    return parts + ["### Provenance", "", "```json", _provenance_json(raw), "```", ""]


def _provenance_json(results: RunResults) -> str:
    return json.dumps(json_safe(results.provenance.to_dict()), indent=2)


def steps_title(results: RunResults) -> str:
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


def html_report(results: RunResults, images: Sequence[Path] = ()) -> str:
    """A self-contained page from the Jinja2 template ``templates/report.html.j2``: inline CSS, plots as
    data URIs, no script, no network."""
    import jinja2

    from lmbench.reporting.narrative import floor_warnings

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    split, context = _main_view(results)
    return env.get_template(
        "report.html.j2"
    ).render(
        name=results.experiment,
        command=results.provenance.command,
        headline_caption=_headline_caption(results),
        main_title=f"{split.capitalize()} perplexity ({context} context)",
        search=Markup(search_html(results)) if results.search else "",  # escaped where it is built
        signature=tables.signature(results),
        floor=results.entropy_floor,
        floor_warnings=floor_warnings(results),
        steps=_html_steps(results),
        steps_title=steps_title(results),
        attention_text=Markup(_attention_text(results)),  # built with html.escape above
        crossover=crossover_lines(results),
        crossover_caption=baseline_caption(results),
        task_note=tables.TASK_NOTE,
        tie_warnings=task_warnings(results.tasks),
        samples=results.samples[:30],
        failures=results.failures,
        **_html_plots(results, images),
        **_html_tables(results),
        provenance=_provenance_json(results),
    )


def _html_steps(results: RunResults) -> list[Any]:
    """The model-by-model cards, each in its model's plot colour (none for a single model)."""
    from lmbench.reporting.narrative import ladder_steps
    from lmbench.reporting.plots import model_colours

    colours = model_colours(results)
    steps = ladder_steps(results) if len({r.model for r in results.rows}) > 1 else []
    for step in steps:
        step.colour = _hex(colours.get(step.model, (0.5, 0.5, 0.5)))
    return steps


def _html_plots(results: RunResults, images: Sequence[Path]) -> dict[str, Any]:
    """The template's plots as data URIs: headline, attention (with its formula), the learning curves where
    the crossover section shows them, and every other plot."""
    from lmbench.reporting.attention import FORMULA

    by_stem = {img.stem: img for img in images}
    crossover = bool(crossover_lines(results))
    shown = ("headline", "attention") + (("learning_curves",) if crossover else ())
    return {
        "headline": {"src": _data_uri(by_stem["headline"])} if "headline" in by_stem else None,
        "attention": {"src": _data_uri(by_stem["attention"])} if "attention" in by_stem else None,
        "formula": FORMULA,
        "curves_plot": {"src": _data_uri(by_stem["learning_curves"])}
        if crossover and "learning_curves" in by_stem
        else None,
        "plots": [{"name": i.stem, "src": _data_uri(i)} for i in images if i.stem not in shown],
    }


def _html_tables(results: RunResults) -> dict[str, Any]:
    """The template's tables as HTML: the main one, the tasks, every split in every context, the references,
    and the commentary's paragraphs."""
    rows, figures, bootstrap = results.rows, results.tasks, _bootstrap(results)
    narrative = narrative_markdown(results)
    return {
        "main_table": tables.render(_main_table(results), "html"),
        "task_table": tables.render(tables.task_table(figures), "html") if figures else "",
        "all_tables": [
            (
                s,
                tables.render(
                    mark_tuned(tables.display_table(rows, split=s, bootstrap=bootstrap), results), "html"
                ),
            )
            for s in dict.fromkeys(r.split for r in rows)
        ],
        "references": tables.render([ref.to_dict() for ref in results.references], "html")
        if results.references
        else "",
        # the narrative's only markup is **model name**
        "narrative": [_bold(html.escape(par)) for par in narrative.split("\n\n")] if narrative else [],
    }


def latex_tables(results: RunResults) -> str:
    """Tables a paper can use: one ``table`` environment per split (caption, label, booktabs rules,
    right-aligned numbers, ±/Δ/∞ as math) and one for the downstream tasks; needs booktabs."""
    rows = results.rows
    name = results.experiment
    corpus = results.provenance.corpus or "the corpus"
    n = _bootstrap(results)
    parts = [
        f"% lmbench {latex_comment(tables.signature(results))}",
        "% needs \\usepackage{booktabs} in the preamble",
        "",
    ]
    for split in dict.fromkeys(r.split for r in rows):
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
    task_table = tables.task_table(results.tasks)
    if task_table:
        caption = f"Downstream tasks on {corpus}; ± is the half-width of the 95% interval."
        parts += [tables.latex_table(task_table, caption=caption, label=f"tab:{name}-tasks"), ""]
    return "\n".join(parts)


def render_report(
    results: RunResults,
    output_dir: str | Path,
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    force: bool = False,
) -> Path:
    """Write the report files for ``results`` into ``output_dir``, replacing only files lmbench wrote there.

    The folder's manifest (:mod:`lmbench.ownership`) says which files are lmbench's: a folder lmbench did not
    make is refused unless ``force``, and a file it did not write is never replaced or removed. The files are
    staged in a hidden ``.<name>.tmp-<pid>-*`` folder beside the target, then moved in one at a time (each
    move atomic) under a lock on the parent folder, so renders racing for one folder take turns. Files of the
    chosen formats that this render no longer makes (a plot of a model that is gone) are removed; files of
    formats not chosen stay (``--formats html,latex`` keeps report.md and the PNGs). Leftovers of interrupted
    renders are cleaned.
    """
    from lmbench.errors import ConfigError
    from lmbench.ownership import Manifest, claim_report_folder, write_manifest

    output_dir = Path(output_dir)
    if output_dir.is_symlink() and output_dir.is_dir():  # stage beside the real folder (one file system)
        output_dir = output_dir.resolve()
    chosen = chosen_formats(formats)  # an unknown format fails before anything is written
    results = well_formed(results)  # no lone surrogate (from a hostile results.json) reaches a UTF-8 file
    claim_report_folder(output_dir, force=force)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(output_dir.parent):
        _recover(output_dir)
        owned = claim_report_folder(output_dir, force=force).files  # again, now that renders take turns
        staging = Path(
            tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.tmp-{os.getpid()}-")
        )
        try:
            written = _write_report_files(results, staging, formats)
            foreign = sorted(n for n in written if n not in owned and os.path.lexists(output_dir / n))
            if foreign:  # a format whose file name was not known before the work: checked now, still refused
                raise ConfigError(
                    f"{output_dir}: {foreign[0]} is not a file lmbench wrote and the report writes that name; "
                    "move it or write the report to another folder (lmbench never replaces files it did not write)"
                )
            redone = {f.name for f in chosen}
            stale = {name for name, fmt in owned.items() if fmt in redone and name not in written}
            output_dir.mkdir(exist_ok=True)
            # the manifest lists old and new files while they move, so an interrupted move leaves none unowned
            write_manifest(output_dir, Manifest("report", {**owned, **written}))
            for name in sorted(written):
                os.replace(staging / name, output_dir / name)
            for name in stale:
                (output_dir / name).unlink(missing_ok=True)
            kept = {name: fmt for name, fmt in {**owned, **written}.items() if name not in stale}
            write_manifest(output_dir, Manifest("report", kept))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def check_report_folder(output_dir: str | Path, *, force: bool = False) -> None:
    """Before any work: lmbench may write a report into ``output_dir`` (see
    :func:`lmbench.ownership.claim_report_folder`): new, empty, or lmbench's; another folder only with
    ``force``, and a file lmbench did not write is never replaced."""
    from lmbench.ownership import claim_report_folder

    claim_report_folder(output_dir, force=force)


def _write_report_files(results: RunResults, staging: Path, formats: Sequence[str]) -> dict[str, str]:
    """Every chosen format (and those always written) into ``staging``; plots first where a format uses them.
    Returns each file written with the format that wrote it (plots: ``png``), for the folder's manifest."""
    chosen = chosen_formats(formats)
    with_plots = any(f.plots for f in chosen)
    images: list[Path] = []
    if with_plots:
        from lmbench.reporting.plots import write_plots

        images = write_plots(results, staging)
    images += write_search_outputs(results, staging, plots=with_plots)
    made = {name: "csv" for name in os.listdir(staging)}  # search.csv, when anything was searched
    made.update({img.name: "png" for img in images})
    folder = ReportFolder(staging, images, keeps_images=any(f.keeps_plots for f in chosen))
    for report_format in chosen:
        before = set(os.listdir(staging))
        report_format.write(results, folder)
        made.update({name: report_format.name for name in set(os.listdir(staging)) - before})
    if not folder.keeps_images:
        for img in images:
            img.unlink()
            made.pop(img.name, None)
    return made


def write_csv(results: RunResults, folder: ReportFolder) -> None:
    """results.csv, results_by_seed.csv, timings.csv, tasks.csv, and samples.csv where text was generated."""
    tables.results_frame(results.rows).to_csv(folder.path / "results.csv", index=False)
    tables.seed_frame(results.rows_by_seed).to_csv(folder.path / "results_by_seed.csv", index=False)
    tables.timings_frame(results.rows, results.tasks).to_csv(folder.path / "timings.csv", index=False)
    tables.task_frame(results.tasks).to_csv(folder.path / "tasks.csv", index=False)
    if results.samples:
        tables.sample_frame(results.samples).to_csv(folder.path / "samples.csv", index=False)


def write_json(results: RunResults, folder: ReportFolder) -> None:
    """results.json: everything ``lmbench report`` re-renders from (:meth:`RunResults.to_json`)."""
    (folder.path / "results.json").write_text(results.to_json(), encoding="utf-8")


def write_markdown(results: RunResults, folder: ReportFolder) -> None:
    """report.md, linking the plots where they stay beside it."""
    images = folder.images if folder.keeps_images else ()
    (folder.path / "report.md").write_text(markdown_report(results, images), encoding="utf-8")


def write_html(results: RunResults, folder: ReportFolder) -> None:
    (folder.path / "report.html").write_text(html_report(results, folder.images), encoding="utf-8")


def write_latex(results: RunResults, folder: ReportFolder) -> None:
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
    """Under the lock (so no live render is staging): an interrupted swap's previous report goes back in
    place; staging folders left by interrupted renders go away."""
    from lmbench.io import glob_escape

    name = glob_escape(output_dir.name)
    olds = sorted(output_dir.parent.glob(f".{name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not output_dir.exists():  # a swap of an lmbench before manifests, cut between its renames
        olds.pop().rename(output_dir)
    for stale in [*olds, *output_dir.parent.glob(f".{name}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)
