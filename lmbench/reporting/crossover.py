"""When each neural model overtakes the n-gram baseline: the point on its learning curve where its validation
perplexity first falls below the baseline's (same split, stream context, as the curves are measured), in
training tokens, FLOPs and minutes on the machine that trained it.

Between two validation points the crossing is interpolated linearly in log perplexity; a curve that never
goes below the baseline says so ("not within its budget"). Pure functions over :class:`RunResults`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lmbench.results import CurveBaseline, CurvePoint, RunResults


@dataclass
class Crossover:
    """Where ``model``'s curve crosses the baseline (``tokens`` None: it never does within its budget)."""

    model: str
    tokens: float | None
    flops: float | None
    seconds: float | None
    before_first_point: (
        bool  # already below at its first validation point: the crossing is no later than that
    )
    best: float  # the curve's lowest validation perplexity
    best_tokens: float


def curve_points(points: list[CurvePoint] | None) -> list[CurvePoint]:
    """The points of a learning curve with a finite validation perplexity, by tokens seen."""
    ok = [
        p for p in points or []
        if isinstance(p.valid_perplexity, (int, float)) and math.isfinite(p.valid_perplexity)
        and isinstance(p.tokens, (int, float))
    ]  # fmt: skip
    return sorted(ok, key=lambda p: p.tokens)


def flops_per_token(results: RunResults, name: str) -> float | None:
    """Training FLOPs per token of a model, from its fit record (``train_flops`` / ``train_tokens``)."""
    info = results.models.get(name)
    if info is None:
        return None
    flops, tokens = info.train_flops, info.train_tokens
    if isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0 and tokens:
        return flops / tokens
    return None


def crossover(name: str, points: list[CurvePoint], baseline: float, per_token: float | None) -> Crossover:
    """The first crossing of ``baseline`` by the curve ``points`` (see the module docstring)."""
    pts = curve_points(points)
    best = min(pts, key=lambda p: p.valid_perplexity)  # type: ignore[arg-type,return-value]
    for i, p in enumerate(pts):
        if p.valid_perplexity >= baseline:  # type: ignore[operator]
            continue
        if i == 0:
            tokens, seconds, early = p.tokens, p.seconds, True
        else:
            q = pts[i - 1]
            la, lb, lc = math.log(q.valid_perplexity), math.log(p.valid_perplexity), math.log(baseline)  # type: ignore[arg-type]
            f = (la - lc) / (la - lb) if la != lb else 1.0
            tokens = q.tokens + f * (p.tokens - q.tokens)
            s0, s1 = q.seconds, p.seconds
            seconds = (
                s0 + f * (s1 - s0) if isinstance(s0, (int, float)) and isinstance(s1, (int, float)) else None
            )
            early = False
        flops = tokens * per_token if per_token else None
        return Crossover(name, tokens, flops, seconds, early, best.valid_perplexity, best.tokens)  # type: ignore[arg-type]
    return Crossover(name, None, None, None, False, best.valid_perplexity, best.tokens)  # type: ignore[arg-type]


def curve_baseline(results: RunResults) -> CurveBaseline | None:
    """The n-gram baseline of the curves: the one the experiment recorded (``curve_baseline``), else, for results
    written before it did, read from the rows: an n-gram's validation perplexity in stream context, the report's
    baseline where the rows show which it is (the one model without a difference to itself), else the best."""
    if results.curve_baseline or not results.curves:
        return results.curve_baseline
    rows = [r for r in results.rows if r.split == "valid" and r.context == "stream"
            and results.family_of(r.model) == "ngram"
            and isinstance(r.perplexity, (int, float)) and math.isfinite(r.perplexity)]  # fmt: skip
    if not rows:
        return None
    compared = [r for r in results.rows if r.diff_vs_baseline is not None]
    undiffed = [r for r in rows if r.diff_vs_baseline is None] if compared else []
    if len(undiffed) == 1:
        row, why = undiffed[0], "the report's baseline"
    else:
        row, why = (
            min(rows, key=lambda r: r.perplexity),
            f"the best of the run's {len(rows)} n-gram(s) on validation",
        )
    return CurveBaseline(row.model, "valid", "stream", row.perplexity, why)


def crossovers(results: RunResults) -> list[Crossover]:
    """One per model with a learning curve, against the results' curve baseline (empty without one)."""
    base = curve_baseline(results)
    if not base:
        return []
    out = []
    for name, points in results.curves.items():
        if name != base.model and curve_points(points):
            out.append(crossover(name, points, base.perplexity, flops_per_token(results, name)))
    return out


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,.0f}"


def crossover_lines(results: RunResults) -> list[str]:
    """One sentence per model: after how many training tokens (FLOPs, minutes on this machine) its validation
    perplexity first falls below the n-gram baseline's, or that it does not within its budget."""
    base = curve_baseline(results)
    if not base:
        return []
    out = []
    for c in crossovers(results):
        if c.tokens is None:
            out.append(
                f"{c.model}: not within its budget: its best validation perplexity, {c.best:.2f} after "
                f"{_count(c.best_tokens)} tokens, stays above {base.model}'s {base.perplexity:.2f}."
            )
            continue
        when = "by its first validation point, at" if c.before_first_point else "after"
        cost = []
        if c.flops is not None:
            cost.append(f"{c.flops:.2g} FLOPs")
        if c.seconds is not None:
            info = results.models.get(c.model)
            where = (info.device if info else "") or "this machine"
            cost.append(f"{c.seconds / 60:.1f} minutes of training on {where}")
        out.append(
            f"{c.model}: below {base.model}'s {base.perplexity:.2f} {when} {_count(c.tokens)} training tokens"
            + (f" ({', '.join(cost)})" if cost else "")
            + ("" if c.before_first_point else ", interpolated between validation points")
            + "."
        )
    return out


def baseline_caption(results: RunResults) -> str:
    base = curve_baseline(results)
    if base is None:
        return ""
    return (
        f"The n-gram baseline is {base.model}: validation perplexity {base.perplexity:.2f} on the "
        f"{base.split} split in {base.context} context, as the curves are measured ({base.why})."
    )
