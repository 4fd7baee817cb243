"""Comparison plots (matplotlib, PNG): the headline figure, quality against cost, learning curves,
minimal pairs by distance, perplexity by word frequency, and a Transformer's attention example.

One colour per model across every plot (:func:`model_colours`); tick labels are plain numbers (``200``, not
``2×10²``). The entropy floor is drawn where the corpus is synthetic.

Figures are ``matplotlib.figure.Figure`` objects drawn on the Agg canvas (:func:`new_figure`), never pyplot:
importing this module leaves the process's matplotlib backend alone and no figure is registered globally."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lmbench.results import CombinedRow, RunResults, main_view


def new_figure(*grid: int, figsize: tuple[float, float], **subplots: Any) -> tuple[Figure, Any]:
    """A figure on the Agg (PNG) canvas and its axes, as ``pyplot.subplots(*grid, **subplots)`` would give,
    without pyplot's global state or backend switch."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*grid, **subplots)


def model_colours(results: RunResults) -> dict[str, Any]:
    """One colour per model, in the order of the results rows, shared by every plot of a report."""
    names = list(dict.fromkeys(r.model for r in results.rows))
    names += [n for n in results.curves if n not in names]
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _plain(value: float, _pos: Any = None) -> str:
    """Plain tick labels: 200, 0.5, 5000, 20k, 3.5M (never 2×10²)."""
    for unit, size, start in (("G", 1e9, 1e9), ("M", 1e6, 1e6), ("k", 1e3, 1e4)):
        if abs(value) >= start:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _plain_axis(ax, which: str = "both") -> None:
    """Plain number labels on log or linear axes (log axes get ticks at 1, 2, 5 x 10^k)."""
    for name in ("x", "y") if which == "both" else (which,):
        axis = getattr(ax, f"{name}axis")
        if getattr(ax, f"get_{name}scale")() == "log":
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_minor_formatter(NullFormatter())
        axis.set_major_formatter(FuncFormatter(_plain))


def _main_rows(results: RunResults) -> list[CombinedRow]:
    """Test rows (else valid) of the first context mode, finite perplexities only."""
    split, context = main_view(results.rows)
    return [
        r for r in results.rows
        if r.split == split and r.context == context and r.perplexity is not None and math.isfinite(r.perplexity)
    ]  # fmt: skip


def _left_out(results: RunResults) -> list[str]:
    """Models of the main split and context whose perplexity cannot be drawn, with the reason."""
    split, context = main_view(results.rows)
    out = []
    for r in results.rows:
        if r.split != split or r.context != context:
            continue
        ppl = r.perplexity
        if ppl is None or (isinstance(ppl, float) and math.isnan(ppl)):
            out.append(f"{r.model} (no perplexity: its scores are not probabilities)")
        elif math.isinf(ppl):
            out.append(f"{r.model} (infinite perplexity: a test token has probability 0)")
    return out


def _caption(fig, notes: list[str]) -> None:
    """A line under the plot naming what was left out and why (a plot never drops a model silently)."""
    if notes:
        text = "Not drawn: " + "; ".join(notes)
        fig.text(0.01, 0.005, text if len(text) < 160 else text[:157] + "...", fontsize=6.5, color="#555")
        fig.subplots_adjust(bottom=0.18)


def _floor(ax, results: RunResults) -> None:
    floor = results.entropy_floor
    if floor:
        ax.axhline(
            floor.perplexity, color="grey", linestyle="--", label=f"true source ({floor.perplexity:.2f})"
        )


def _save(fig, path: Path, notes: list[str] | None = None) -> Path:
    fig.tight_layout(rect=(0, 0.05 if notes else 0, 1, 1))
    _caption(fig, notes or [])
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    return path


def _scatter(
    results: RunResults, x: Callable[[CombinedRow], Any], xlabel: str, path: Path, *, logx: bool
) -> Path | None:
    """Perplexity (main split and context) against ``x`` of each row, where ``x`` is positive."""
    rows = [r for r in _main_rows(results) if x(r) and x(r) > 0]
    if not rows:
        return None
    colours = model_colours(results)
    notes = _left_out(results)
    fig, ax = new_figure(figsize=(6.4, 4.2))
    for r in rows:
        err = [
            [max(r.perplexity - _finite(r.perplexity_low, r.perplexity), 0)],
            [max(_finite(r.perplexity_high, r.perplexity) - r.perplexity, 0)],
        ]
        ax.errorbar([x(r)], [r.perplexity], yerr=err, fmt="o", capsize=3, color=colours[r.model],
                    label=r.model)  # fmt: skip
        ax.annotate(r.model, (x(r), r.perplexity), fontsize=7, xytext=(3, 3), textcoords="offset points")
    _floor(ax, results)
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{rows[0].split} perplexity ({rows[0].context})")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path, notes)


def _finite(value: Any, default: float | None) -> float | None:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else default


def headline(results: RunResults, path: Path) -> Path | None:
    """Test perplexity of each model (config order) with its 95% interval, and the entropy floor; titled as a
    ladder only where the models form one."""
    split, context = main_view(results.rows)
    steps = [r for r in results.rows if r.split == split and r.context == context]
    finite = [
        r.perplexity for r in steps if isinstance(r.perplexity, (int, float)) and math.isfinite(r.perplexity)
    ]
    if not finite:
        return None
    colours = model_colours(results)
    notes = [n for n in _left_out(results) if "no perplexity" in n]  # infinite ones are drawn as ∞
    top = max(finite) * 1.6
    fig, ax = new_figure(figsize=(max(6.4, 0.8 * len(steps) + 1.5), 4.2))
    for i, r in enumerate(steps):
        ppl = r.perplexity
        if not isinstance(ppl, (int, float)) or math.isnan(ppl):
            continue  # scores that are not probabilities have no perplexity
        if math.isinf(ppl):
            ax.plot([i], [top], marker="^", color=colours[r.model], markersize=9)
            ax.annotate("∞", (i, top), xytext=(0, -16), textcoords="offset points", ha="center")
            continue
        err = [
            [max(ppl - _finite(r.perplexity_low, ppl), 0)],
            [max(_finite(r.perplexity_high, ppl) - ppl, 0)],
        ]
        ax.errorbar([i], [ppl], yerr=err, fmt="o", color=colours[r.model], markersize=9, capsize=5,
                    elinewidth=2)  # fmt: skip
        ax.annotate(
            f"{ppl:.1f}", (i, ppl), xytext=(10, 0), textcoords="offset points", va="center", fontsize=8
        )
    _floor(ax, results)
    ax.set_xlim(-0.5, len(steps) - 0.3)
    ax.set_xticks(range(len(steps)), [r.model for r in steps], rotation=30, ha="right")
    ax.set_yscale("log")
    floor = results.entropy_floor
    ax.set_ylim(min(finite + [floor.perplexity if floor else min(finite)]) * 0.7, top * 1.15)
    _plain_axis(ax, "y")
    ax.set_ylabel(f"{split} perplexity ({context} context)")
    from lmbench.reporting.narrative import forms_ladder

    ax.set_title(
        "Each step of the ladder: lower is better" if forms_ladder(results) else "Each model: lower is better"
    )
    if floor:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, notes)


def learning_curves(results: RunResults, path: Path) -> Path | None:
    """Validation perplexity (solid) and training perplexity exp(train loss) (dashed) against training tokens
    (left) and training FLOPs (right, models that record their FLOPs), with the n-gram baseline's validation
    perplexity (same split and context as the curves) as a horizontal line on both."""
    from lmbench.reporting.crossover import curve_baseline, flops_per_token

    curves, notes = {}, []
    for name, points in results.curves.items():
        pts = [p for p in points if _finite(p.valid_perplexity, None) is not None]
        if len(pts) < len(points):
            notes.append(f"{name}: {len(points) - len(pts)} point(s) without a finite validation perplexity")
        if pts:
            curves[name] = (pts, [p for p in points if _finite(p.train_loss, None) is not None])
    if not curves:
        return None
    colours = model_colours(results)
    fig, axes = new_figure(1, 2, figsize=(11.5, 4.4), sharey=True)
    base = curve_baseline(results)
    floor = results.entropy_floor
    for ax, scale, xlabel in ((axes[0], None, "training tokens seen"), (axes[1], "flops", "training FLOPs")):
        for name, (valid, train) in curves.items():
            per = 1.0 if scale is None else flops_per_token(results, name)
            if per is None:
                continue
            colour = colours.get(name)
            ax.plot([p.tokens * per for p in valid], [p.valid_perplexity for p in valid], marker=".",
                    color=colour, label=f"{name} validation")  # fmt: skip
            if train:
                ax.plot([p.tokens * per for p in train], [math.exp(min(p.train_loss, 50)) for p in train],
                        linestyle="--", color=colour, alpha=0.8, label=f"{name} training")  # fmt: skip
        if base:
            ax.axhline(base.perplexity, color="black", linestyle="-.", linewidth=1.2,
                       label=f"{base.model} (n-gram baseline, {base.split}, {base.context})")  # fmt: skip
        if floor:
            valid = floor.valid_perplexity if floor.valid_perplexity is not None else floor.perplexity
            ax.axhline(valid, color="grey", linestyle=":",
                       label="true source")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_yscale("log")
        ax.set_xscale("log" if scale else "linear")
        _plain_axis(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("perplexity (validation; training: exp of the loss)")
    axes[0].legend(fontsize=7, ncol=2)
    if not axes[1].lines:
        axes[1].text(
            0.5, 0.5, "no model records its training FLOPs", ha="center", transform=axes[1].transAxes
        )
    return _save(fig, path, notes)


def minimal_pairs_by_distance(results: RunResults, path: Path) -> Path | None:
    rows = [
        r
        for r in results.tasks
        if r.task == "minimal-pairs" and r.corruption == "swap" and r.distance is not None
    ]
    if not rows:
        return None
    colours = model_colours(results)
    fig, ax = new_figure(figsize=(6.4, 4.2))
    for name in dict.fromkeys(r.model for r in rows):
        sel = sorted((r for r in rows if r.model == name), key=lambda r: r.distance)
        d = [r.distance for r in sel]
        line = ax.plot(d, [r.value for r in sel], marker="o", label=name, color=colours.get(name))[0]
        tied = [r for r in sel if r.ties and r.n and r.ties > 0.5 * r.n]
        if tied:  # mostly ties: the 0.5 there is no judgement; mark it hollow
            ax.plot([r.distance for r in tied], [r.value for r in tied], linestyle="none", marker="o",
                    markersize=10, markerfacecolor="none", markeredgecolor=line.get_color())  # fmt: skip
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(_plain))
    ax.set_xlabel("distance between the swapped words")
    ax.set_ylabel("accuracy (real sentence preferred; tie = ½)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def frequency_buckets(results: RunResults, path: Path) -> Path | None:
    buckets, notes = {}, []
    for name, rows in results.word_buckets.items():
        if any(_finite(b.perplexity, None) is not None for b in rows):
            buckets[name] = rows
        else:
            notes.append(f"{name} (no finite perplexity in any bucket)")
    if not buckets:
        return None
    labels = list(dict.fromkeys(b.bucket for v in buckets.values() for b in v))
    fig, ax = new_figure(figsize=(7.2, 4.2))
    width = 0.8 / max(len(buckets), 1)
    for i, (name, rows) in enumerate(buckets.items()):
        values = {b.bucket: b.perplexity for b in rows}
        xs = [
            j + i * width
            for j, label in enumerate(labels)
            if label in values and math.isfinite(values[label])
        ]
        ys = [values[label] for label in labels if label in values and math.isfinite(values[label])]
        ax.bar(xs, ys, width=width, label=name, color=model_colours(results).get(name))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels)
    ax.set_yscale("log")
    _plain_axis(ax, "y")
    ax.set_xlabel("training frequency of the predicted word")
    ax.set_ylabel("test perplexity of those tokens")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, notes)


def attention_figure(results: RunResults, path: Path) -> Path | None:
    """The attention example (:mod:`lmbench.reporting.attention`) of the last attention model: the chosen
    head's map with the row predicting the last word and the column of the first word marked, the formula
    beside it."""
    from lmbench.reporting.attention import FORMULA_TEX

    if not results.attention:
        return None
    name, ex = list(results.attention.items())[-1]
    weights = np.asarray(ex.weights)
    tokens = ex.tokens
    T = len(tokens)
    fig, (ax, side) = new_figure(1, 2, figsize=(10, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    ax.imshow(np.where(np.tri(T, dtype=bool), weights, np.nan), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(T), tokens, rotation=60, fontsize=8)
    ax.set_yticks(
        range(T), [f"{t} → {tokens[i + 1]}" if i + 1 < T else t for i, t in enumerate(tokens)], fontsize=8
    )
    ax.set_xlabel("looks at (key position)")
    ax.set_ylabel("position (→ the token it predicts)")
    q, k = ex.query, ex.key
    ax.add_patch(Rectangle((k - 0.5, q - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2.5))
    ax.set_title(f"{name}: layer {ex.layer}, head {ex.head}", fontsize=10)
    side.axis("off")
    distance = q - k + 1
    side.text(0, 0.92, FORMULA_TEX, fontsize=12, transform=side.transAxes)
    side.text(
        0, 0.78,
        f"The position predicting '{tokens[q + 1]}' puts {ex.weight:.0%} of\n"
        f"its attention on '{tokens[k]}', {distance} tokens back\n"
        f"(an even spread would give {ex.uniform_weight:.0%}).\n\n"
        f"An n-gram sees only n - 1 words back: it would\nneed order {distance + 1} to see '{tokens[k]}' here.",
        fontsize=9, va="top", transform=side.transAxes,
    )  # fmt: skip
    return _save(fig, path)


def write_plots(results: RunResults, out_dir: Path) -> list[Path]:
    """Every plot whose data is present, as PNG files in ``out_dir`` (the headline figure first)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [
        headline(results, out_dir / "headline.png"),
        _scatter(
            results, lambda r: r.parameters, "parameters", out_dir / "perplexity_vs_parameters.png", logx=True
        ),
        _scatter(
            results,
            lambda r: r.train_seconds,
            "training time (s)",
            out_dir / "perplexity_vs_time.png",
            logx=True,
        ),
        learning_curves(results, out_dir / "learning_curves.png"),
        minimal_pairs_by_distance(results, out_dir / "minimal_pairs_by_distance.png"),
        frequency_buckets(results, out_dir / "perplexity_by_frequency.png"),
        attention_figure(results, out_dir / "attention.png"),
    ]
    return [p for p in made if p is not None]
