"""The tuning part of a report (``RunResults.search``, see :mod:`lmbench.search`): search.csv, the best
settings and spent budgets, "(tuned)" marks in the comparison tables, and two plots: validation perplexity
over trials per model, and validation perplexity against each searched setting (sensitivity)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from lmbench.results import RunResults, SearchSummary, SearchTrial

SEARCH_COLUMNS = [
    "model", "trial", "settings", "valid_perplexity", "state", "tokens", "seconds", "last_reported_perplexity",
    "worker", "note",
]  # fmt: skip
TUNED = " (tuned)"


def search_frame(results: RunResults) -> pd.DataFrame:
    """search.csv: one row per trial; ``settings`` as JSON, ``valid_perplexity`` empty unless complete."""
    rows = []
    for search in results.search.values():
        for trial in search.trials:
            rows.append({**trial.to_dict(), "settings": json.dumps(trial.settings, sort_keys=True)})
    return pd.DataFrame(rows, columns=SEARCH_COLUMNS)


def mark_tuned(table: list[dict[str, str]], results: RunResults) -> list[dict[str, str]]:
    """A display table with ``(tuned)`` after each model whose settings came from a search."""
    tuned = set(results.search)
    return [{**row, "model": row["model"] + TUNED} if row.get("model") in tuned else row for row in table]


def _settings(best: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best.items())


def best_table(results: RunResults) -> list[dict[str, str]]:
    """One row per searched model: best settings, their validation perplexity, the limits and what was spent."""
    out = []
    for name, s in results.search.items():
        out.append({
            "model": name,
            "best settings": _settings(s.best),
            "valid perplexity": f"{s.best_valid_perplexity:.2f}",
            "limit": s.limits,
            "trial budget": s.trial_budget,
            "spent / limit": spend_text(s),
        })  # fmt: skip
    return out


def statement(results: RunResults) -> str:
    """ "Tuned with equal budgets ..." or what differed, and which models were not tuned."""
    untuned = [name for name in results.models if name not in results.search]
    return budget_statement(results.search, untuned)


def search_markdown(results: RunResults) -> str:
    """The report's "Tuning" section (empty when nothing was searched)."""
    from lmbench.reporting.tables import render

    if not results.search:
        return ""
    return "\n".join([
        "## Tuning", "",
        statement(results), "",
        render(best_table(results)), "",
        "Every trial, pruned ones included, is in `search.csv`; the objective is validation perplexity "
        "(the test split is never seen by a search).", "",
    ])  # fmt: skip


def search_html(results: RunResults) -> str:
    import html

    from lmbench.reporting.tables import render

    if not results.search:
        return ""
    return (
        f"<h2>Tuning</h2>\n<p>{html.escape(statement(results))}</p>\n{render(best_table(results), 'html')}\n"
        "<p>Every trial is in <code>search.csv</code>; the objective is validation perplexity.</p>"
    )


def _complete(search: SearchSummary) -> list[SearchTrial]:
    return [t for t in search.trials if t.state == "complete" and math.isfinite(t.valid_perplexity)]


def _plain_log_y(ax) -> None:
    """A log y axis labelled 20, 30, 40 rather than 2 x 10^1."""
    from matplotlib.ticker import FormatStrFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)


def trials_plot(results: RunResults, path: Path) -> Path | None:
    """Validation perplexity of each complete trial and the best so far, per model, over trial numbers."""
    from lmbench.reporting.plots import new_figure

    searches = {name: s for name, s in results.search.items() if _complete(s)}
    if not searches:
        return None
    fig, ax = new_figure(figsize=(7, 4.2))
    for i, (name, s) in enumerate(searches.items()):
        colour = f"C{i}"
        done = _complete(s)
        ax.scatter([t.trial for t in done], [t.valid_perplexity for t in done], color=colour, s=18)
        best, xs, ys = math.inf, [], []
        for t in sorted(done, key=lambda t: t.trial):
            best = min(best, t.valid_perplexity)
            xs.append(t.trial)
            ys.append(best)
        ax.step(xs, ys, where="post", color=colour, label=f"{name} (best so far)")
        pruned = [t for t in s.trials if t.state == "pruned" and math.isfinite(t.last_reported_perplexity)]
        if pruned:
            ax.scatter(
                [t.trial for t in pruned], [t.last_reported_perplexity for t in pruned],
                color=colour, marker="x", s=18, alpha=0.6,
            )  # fmt: skip
    _plain_log_y(ax)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("trial")
    ax.set_ylabel("validation perplexity")
    ax.set_title("Search: validation perplexity over trials (x: pruned, at its last validation)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def sensitivity_plot(results: RunResults, path: Path) -> Path | None:
    """One panel per searched setting: validation perplexity of each complete trial against its value."""
    from lmbench.reporting.plots import new_figure

    searches = {name: s for name, s in results.search.items() if _complete(s)}
    settings = list(dict.fromkeys(k for s in searches.values() for k in s.space))
    if not settings:
        return None
    cols = min(3, len(settings))
    rows = math.ceil(len(settings) / cols)
    fig, axes = new_figure(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    colours = {name: f"C{i}" for i, name in enumerate(searches)}
    for ax, setting in zip(axes.flat, settings, strict=False):
        categories: list[Any] = []
        for name, s in searches.items():
            if setting not in s.space:
                continue
            dim = s.space[setting]  # a dimension of the search space (open-ended: range or choices)
            done = _complete(s)
            values = [t.settings.get(setting) for t in done]
            if "choices" in dim:
                categories = list(dict.fromkeys([*categories, *map(str, dim["choices"])]))
                xs = [categories.index(str(v)) for v in values]
            else:
                xs = values
                if dim.get("log"):
                    ax.set_xscale("log")
                elif dim.get("int"):
                    ax.xaxis.get_major_locator().set_params(integer=True)
            ax.scatter(xs, [t.valid_perplexity for t in done], s=16, color=colours[name], label=name)
        if categories:
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels(categories, rotation=20, fontsize=7)
        ax.set_xlabel(setting)
        ax.set_ylabel("validation perplexity")
        _plain_log_y(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(settings) :]:
        ax.axis("off")
    fig.suptitle("Sensitivity: validation perplexity against each searched setting (complete trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_search_outputs(results: RunResults, out_dir: Path, *, plots: bool) -> list[Path]:
    """search.csv (when anything was searched) and, with ``plots``, the two PNGs; returns the images."""
    if not results.search:
        return []
    search_frame(results).to_csv(out_dir / "search.csv", index=False)
    if not plots:
        return []
    made = [
        trials_plot(results, out_dir / "search_trials.png"),
        sensitivity_plot(results, out_dir / "search_sensitivity.png"),
    ]
    return [p for p in made if p is not None]


def spend_text(search: SearchSummary) -> str:
    """What a search spent against its limits, exactly: ``5 / 5 trials (1 pruned), 1,498,230 / 1,500,000 tokens,
    312 s`` (``/ limit`` only where that limit was set; results written before limits were recorded show the
    spend alone)."""
    spent, limit = search.spent, search.limit

    def of(set_to: float | None, text: str, shown: str) -> str:
        return f"{text} / {shown}" if set_to is not None else text

    parts = [
        of(limit.trials, f"{int(spent.trials)}", f"{limit.trials}") + f" trials ({int(spent.pruned)} pruned)"
    ]
    parts.append(of(limit.tokens, f"{int(spent.tokens):,}", f"{limit.tokens or 0:,}") + " tokens")
    if limit.epochs is not None:
        parts.append(f"{spent.epochs:.3f} / {limit.epochs:g} epochs")
    minutes = spent.seconds / 60
    if limit.minutes is not None:
        parts.append(f"{minutes:.2f} / {limit.minutes:g} minutes")
    else:
        parts.append(f"{spent.seconds:.0f} s")
    used = (("tokens", spent.tokens, limit.tokens), ("epochs", spent.epochs, limit.epochs),
            ("minutes", minutes, limit.minutes))  # fmt: skip
    over = [name for name, value, bound in used if bound is not None and value > bound]
    if over:  # a study reused from a version that did not keep limits, or a wall clock that ran on
        parts.append(f"OVER its {' and '.join(over)} limit (delete its search.db to search again within it)")
    return ", ".join(parts)


def budget_statement(searches: dict[str, SearchSummary], untuned: list[str]) -> str:
    """One sentence for the report: tuned with equal budgets, or what differed, and what was not tuned."""
    if not searches:
        return ""
    limits = {name: (s.limits, s.trial_budget) for name, s in searches.items()}
    spent = "; ".join(f"{name} {spend_text(s)}" for name, s in searches.items())
    if len(searches) > 1 and len(set(limits.values())) == 1:
        first = next(iter(limits.values()))
        text = f"Tuned with equal budgets: each search was limited to {first[0]} ({first[1]} a trial). Spent: {spent}."
    elif len(searches) > 1:
        each = "; ".join(f"{name}: {lim} ({tb} a trial)" for name, (lim, tb) in limits.items())
        text = f"Tuning budgets differed: {each}. Spent: {spent}."
    else:
        ((name, (lim, tb)),) = limits.items()
        text = f"{name} was tuned: {lim} ({tb} a trial). Spent: {spent}."
    if untuned:
        text += f" Not tuned (settings as written): {', '.join(untuned)}."
    parallel = {name: int(s.parallel) for name, s in searches.items() if s.parallel and s.parallel > 1}
    if parallel:  # a parallel search's proposals depend on the order its trials finished in
        each = ", ".join(f"{name} up to {n}" for name, n in parallel.items())
        text += (
            f" Trials ran in parallel ({each} at a time): the sampler proposed each trial from the trials "
            "finished by then, so another run can propose other settings."
        )
    return text
