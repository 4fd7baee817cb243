"""Comparison plots (matplotlib, PNG): quality against cost, learning curves, minimal pairs by distance,
perplexity by word frequency. The entropy floor is drawn where the corpus is synthetic."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _main_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Test rows (else valid) of the first context mode, finite perplexities only."""
    rows = results.get("rows", [])
    split = "test" if any(r["split"] == "test" for r in rows) else "valid"
    contexts = [r["context"] for r in rows]
    context = contexts[0] if contexts else "sentence"
    return [
        r for r in rows
        if r["split"] == split and r["context"] == context and r.get("perplexity") is not None
        and math.isfinite(r["perplexity"])
    ]  # fmt: skip


def _left_out(results: dict[str, Any]) -> list[str]:
    """Models of the main split and context whose perplexity cannot be drawn, with the reason."""
    rows = results.get("rows", [])
    split = "test" if any(r["split"] == "test" for r in rows) else "valid"
    context = rows[0]["context"] if rows else "sentence"
    out = []
    for r in rows:
        if r["split"] != split or r["context"] != context:
            continue
        ppl = r.get("perplexity")
        if ppl is None or (isinstance(ppl, float) and math.isnan(ppl)):
            out.append(f"{r['model']} (no perplexity: its scores are not probabilities)")
        elif math.isinf(ppl):
            out.append(f"{r['model']} (infinite perplexity: a test token has probability 0)")
    return out


def _caption(fig, notes: list[str]) -> None:
    """A line under the plot naming what was left out and why (a plot never drops a model silently)."""
    if notes:
        text = "Not drawn: " + "; ".join(notes)
        fig.text(0.01, 0.005, text if len(text) < 160 else text[:157] + "...", fontsize=6.5, color="#555")
        fig.subplots_adjust(bottom=0.18)


def _floor(ax, results: dict[str, Any]) -> None:
    floor = results.get("entropy_floor")
    if floor:
        ax.axhline(
            floor["perplexity"],
            color="grey",
            linestyle="--",
            label=f"true source ({floor['perplexity']:.2f})",
        )


def _save(fig, path: Path, notes: list[str] | None = None) -> Path:
    fig.tight_layout(rect=(0, 0.05 if notes else 0, 1, 1))
    _caption(fig, notes or [])
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def _scatter(results: dict[str, Any], key: str, xlabel: str, path: Path, *, logx: bool) -> Path | None:
    rows = [r for r in _main_rows(results) if r.get(key) and r[key] > 0]
    if not rows:
        return None
    notes = _left_out(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for family in sorted({r["family"] for r in rows}):
        sel = [r for r in rows if r["family"] == family]
        x = [r[key] for r in sel]
        y = [r["perplexity"] for r in sel]
        err = [
            [max(r["perplexity"] - r.get("perplexity_low", r["perplexity"]), 0) for r in sel],
            [max(r.get("perplexity_high", r["perplexity"]) - r["perplexity"], 0) for r in sel],
        ]
        ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, label=family)
        for r in sel:
            ax.annotate(
                r["model"], (r[key], r["perplexity"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    _floor(ax, results)
    if logx:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{rows[0]['split']} perplexity ({rows[0]['context']})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, notes)


def learning_curves(results: dict[str, Any], path: Path) -> Path | None:
    curves, notes = {}, []
    for name, points in (results.get("curves") or {}).items():
        pts = [
            p for p in points or []
            if isinstance(p.get("valid_perplexity"), (int, float)) and math.isfinite(p["valid_perplexity"])
        ]  # fmt: skip
        if len(pts) < len(points or []):
            notes.append(f"{name}: {len(points) - len(pts)} point(s) without a finite validation perplexity")
        if pts:
            curves[name] = pts
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, pts in curves.items():
        ax.plot([p["tokens"] for p in pts], [p["valid_perplexity"] for p in pts], marker=".", label=name)
    floor = results.get("entropy_floor")
    if floor:
        ax.axhline(
            floor.get("valid_perplexity", floor["perplexity"]),
            color="grey",
            linestyle="--",
            label="true source",
        )
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("validation perplexity")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path, notes)


def minimal_pairs_by_distance(results: dict[str, Any], path: Path) -> Path | None:
    rows = [
        r
        for r in results.get("tasks", [])
        if r["task"] == "minimal-pairs" and r.get("corruption") == "swap" and r.get("distance") is not None
    ]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in dict.fromkeys(r["model"] for r in rows):
        sel = sorted((r for r in rows if r["model"] == name), key=lambda r: r["distance"])
        d = [r["distance"] for r in sel]
        line = ax.plot(d, [r["value"] for r in sel], marker="o", label=name)[0]
        tied = [r for r in sel if r.get("ties") and r["n"] and r["ties"] > 0.5 * r["n"]]
        if tied:  # mostly ties: the 0.5 there is no judgement; mark it hollow
            ax.plot([r["distance"] for r in tied], [r["value"] for r in tied], linestyle="none", marker="o",
                    markersize=10, markerfacecolor="none", markeredgecolor=line.get_color())  # fmt: skip
    ax.axhline(0.5, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("distance between the swapped words")
    ax.set_ylabel("accuracy (real sentence preferred; tie = ½)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def frequency_buckets(results: dict[str, Any], path: Path) -> Path | None:
    buckets, notes = {}, []
    for name, rows in (results.get("word_buckets") or {}).items():
        if any(
            isinstance(b.get("perplexity"), (int, float)) and math.isfinite(b["perplexity"]) for b in rows
        ):
            buckets[name] = rows
        else:
            notes.append(f"{name} (no finite perplexity in any bucket)")
    if not buckets:
        return None
    labels = list(dict.fromkeys(b["bucket"] for v in buckets.values() for b in v))
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    width = 0.8 / max(len(buckets), 1)
    for i, (name, rows) in enumerate(buckets.items()):
        values = {b["bucket"]: b["perplexity"] for b in rows}
        xs = [
            j + i * width
            for j, label in enumerate(labels)
            if label in values and math.isfinite(values[label])
        ]
        ys = [values[label] for label in labels if label in values and math.isfinite(values[label])]
        ax.bar(xs, ys, width=width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels)
    ax.set_yscale("log")
    ax.set_xlabel("training frequency of the predicted word")
    ax.set_ylabel("test perplexity of those tokens")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, notes)


def write_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Every plot whose data is present, as PNG files in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = [
        _scatter(results, "parameters", "parameters", out_dir / "perplexity_vs_parameters.png", logx=True),
        _scatter(
            results, "train_seconds", "training time (s)", out_dir / "perplexity_vs_time.png", logx=True
        ),
        learning_curves(results, out_dir / "learning_curves.png"),
        minimal_pairs_by_distance(results, out_dir / "minimal_pairs_by_distance.png"),
        frequency_buckets(results, out_dir / "perplexity_by_frequency.png"),
    ]
    return [p for p in made if p is not None]
