"""Plain-language commentary on the models of a run, in their order, generated from the measured figures.

For each model (in the order of the config) two or three sentences: what changed relative to the previous
step (read from the model configs) and what the numbers show (perplexity and its interval, the cost, the gap
to the entropy floor, minimal pairs beyond an n-gram's reach). Pure functions: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lmbench.models.family import Family, family_named, ladder_rank
from lmbench.results import CombinedRow, ModelInfo, RunResults, TaskRow, main_view


def _family(info: ModelInfo) -> Family:
    """The family of a model's results entry (its own words; a bare one for a family not installed here)."""
    return family_named(info.family or info.config.get("family", "model"))


def describe_model(name: str, info: ModelInfo) -> str:
    """A short noun phrase for a model, from its family and config."""
    return _family(info).describe(name, info.config)


def _what_changed(prev: ModelInfo | None, cur: ModelInfo) -> str:
    """What this model adds over the one before it: within a family, read from the configs by the family;
    across families, the family's own description (:class:`lmbench.models.family.Family`)."""
    if prev is None:
        return "It is the first model: the reference point for the others."
    if prev.family == cur.family:
        return _family(cur).changes(prev.config, cur.config)
    return family_named(cur.family or None).adds_after(family_named(prev.family or None))


def compare_words(a: float, b: float, name: str) -> str:
    """``b`` against the previous model's ``a`` in words that read naturally: ``12.3% lower than kn3's 59.30``,
    ``8.1% higher than ...`` for small rises and ``2.98x kn3's 59.30`` for large ones."""
    if b < a:
        return f"{100 * (a - b) / a:.1f}% lower than {name}'s {a:.2f}"
    if b == a:
        return f"the same as {name}'s"
    if b >= 1.5 * a:
        return f"{b / a:.2f}x {name}'s {a:.2f}"
    return f"{100 * (b - a) / a:.1f}% higher than {name}'s {a:.2f}"


def _fmt_ppl(row: CombinedRow) -> str:
    ppl = row.perplexity
    if ppl is None or math.isnan(ppl):
        return "no perplexity (its scores are not probabilities)"
    if math.isinf(ppl):
        return "an infinite perplexity"
    low, high = row.perplexity_low, row.perplexity_high
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        return f"perplexity {ppl:.2f} (95% interval {low:.2f}–{high:.2f})"
    return f"perplexity {ppl:.2f}"


def _tokens(n: Any) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,.0f}"


def _training_words(row: CombinedRow) -> str:
    """``, trained on 2.00M tokens (budget: tokens=2,000,000) in 41.3 s``: what a figure rests on."""
    tokens, budget = row.train_tokens, row.budget or ""
    seconds = row.train_seconds
    if not isinstance(tokens, (int, float)) or not math.isfinite(tokens):
        return ""
    text = f", trained on {_tokens(tokens)} tokens"
    unbudgeted = family_named(row.family or None).without_budget
    if budget:
        text += f" (budget {budget})"
    elif unbudgeted:
        text += f" ({unbudgeted})"
    if isinstance(seconds, (int, float)) and math.isfinite(seconds):
        text += f" in {seconds:.1f} s"
    seeds = row.seeds
    if isinstance(seeds, (int, float)) and seeds > 1:
        sd = row.seed_sd
        spread = (
            f", perplexity sd {sd:.2f} across seeds" if isinstance(sd, float) and math.isfinite(sd) else ""
        )
        text += f", averaged over {int(seeds)} seeds{spread}"
    return text


def _tokens_explain_rank(prev: CombinedRow, row: CombinedRow, prev_name: str) -> str | None:
    """Under wall-clock budgets a model may rank below another only because it saw fewer tokens: say so."""
    if "minutes" not in row.budget and "minutes" not in prev.budget:
        return None
    a, b = prev.train_tokens, row.train_tokens
    pa, pb = prev.perplexity, row.perplexity
    if not all(isinstance(x, (int, float)) and math.isfinite(x) and x > 0 for x in (a, b, pa, pb)):
        return None
    if family_named(prev.family or None).counts:  # a counting model's tokens do not depend on time
        return None
    ratio = a / b
    if pb > pa and ratio >= 1.2:
        return (
            f"Its budget is wall-clock time, and in it it saw {ratio:.1f}x fewer tokens than {prev_name} "
            f"({_tokens(b)} against {_tokens(a)}): on another machine the order may differ; a token budget "
            "compares them on equal data."
        )
    if "minutes" in row.budget:
        return (
            f"Its budget is wall-clock time, so the {_tokens(b)} tokens it saw depend on this machine's speed "
            "(a token budget gives the same figure everywhere)."
        )
    return None


def _overlap(a: CombinedRow, b: CombinedRow) -> bool | None:
    bounds = (a.perplexity_low, a.perplexity_high, b.perplexity_low, b.perplexity_high)
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in bounds):
        return None
    return not (a.perplexity_high < b.perplexity_low or b.perplexity_high < a.perplexity_low)  # type: ignore[operator]


def _mostly_ties(row: TaskRow) -> bool:
    return row.ties is not None and (row.n or 0) > 0 and row.ties > 0.5 * row.n


def _ties_text(row: TaskRow, what: str) -> str:
    """A result that is ties is stated as such and never explained."""
    return (
        f"On minimal pairs that {what}, {row.ties:,} of {row.n:,} pairs tie: it gives both sentences "
        "the same probability, so its accuracy there measures nothing."
    )


def _long_distance(tasks: list[TaskRow], model: str, order: int | None) -> str | None:
    """Minimal-pair accuracy at the longest swap distance, compared with chance."""
    rows = [
        r
        for r in tasks
        if r.model == model
        and r.task == "minimal-pairs"
        and r.corruption == "swap"
        and r.distance is not None
    ]
    if not rows:
        return None
    far = max(rows, key=lambda r: r.distance)
    d = far.distance
    if _mostly_ties(far):
        return _ties_text(far, f"swap two words {d} apart")
    text = f"On minimal pairs that swap two words {d} apart it prefers the real sentence {100 * far.value:.0f}% of the time"
    if far.ties:
        text += f" (ties, {far.ties:,} of {far.n:,}, count half)"
    if order is not None and d >= order:
        text += f" — beyond its {order}-word window it can only notice the swap where the swapped words make locally odd n-grams"
    return text + "."


def _agreement(tasks: list[TaskRow], model: str) -> str | None:
    """Accuracy on pairs whose last word comes from another sentence (a long-range agreement break)."""
    row = next(
        (r for r in tasks if r.model == model and r.task == "minimal-pairs" and r.corruption == "last-word"),
        None,
    )
    if row is None:
        return None
    if _mostly_ties(row):
        return _ties_text(row, "replace the last word with another sentence's")
    return (
        f"When a sentence's last word is replaced by another sentence's, it still prefers the real one "
        f"{100 * row.value:.0f}% of the time (95% interval {100 * row.low:.0f}–{100 * row.high:.0f}%)."
    )


@dataclass
class Commentary:
    """The narrative's paragraph about one model (markdown: the model's name in bold)."""

    model: str
    text: str


@dataclass
class StepCard:
    """One model's card in the report: what it is and what changed, its figure, what its training cost, and
    why the step should help (and whether it did); ``colour``: its plots' colour, set by the HTML report."""

    model: str
    family: str
    description: str
    changed: str
    figure: str
    tokens: str
    compute: str
    why: str
    colour: str = ""


def main_rows(results: RunResults) -> tuple[str, str, dict[str, CombinedRow]]:
    """The split (test, else the first), the first context, and each model's row there, in ladder order."""
    split, context = main_view(results.rows)
    return split, context, {r.model: r for r in results.rows if r.split == split and r.context == context}


def _info(results: RunResults, row: CombinedRow) -> ModelInfo:
    """A model's record, or one made from its row (results that kept no record of the model)."""
    return results.models.get(row.model) or ModelInfo(name=row.model, family=row.family)


def ladder_narrative(results: RunResults) -> list[Commentary]:
    """One paragraph per model, in the order of the results rows."""
    split, context, main = main_rows(results)
    if not main:
        return []
    models = results.models
    floor = results.entropy_floor
    tasks = results.tasks
    out, prev_name = [], None
    for name, row in main.items():
        info = _info(results, row)
        sentences = [
            f"**{name}** is {describe_model(name, info)}. {_what_changed(models.get(prev_name) if prev_name else None, info)}"
        ]
        measured = f"It reaches {_fmt_ppl(row)} on the {split} split"
        bpc = row.bits_per_char
        if bpc is not None and math.isfinite(bpc):
            measured += f" ({bpc:.3f} bits per character)"
        if prev_name is not None:
            prev = main[prev_name]
            a, b = prev.perplexity, row.perplexity
            if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                overlap = _overlap(prev, row)
                measured += f", {compare_words(a, b, prev_name)}"
                if overlap is True:
                    measured += " (the intervals overlap, so the two are not clearly different)"
                elif overlap is False:
                    measured += " (the intervals do not overlap)"
            elif a is not None and math.isinf(a) and b is not None and math.isfinite(b):
                measured += f", finite again after {prev_name}'s infinity"
        measured += f", with {row.parameters or 0:,} parameters{_training_words(row)}."
        sentences.append(measured)
        if prev_name is not None:
            explanation = _tokens_explain_rank(main[prev_name], row, prev_name)
            if explanation:
                sentences.append(explanation)
        ppl = row.perplexity
        if ppl is not None and math.isinf(ppl):
            zero = row.zero_prob_tokens
            if zero:
                sentences.append(
                    f"{zero:,} of {row.tokens or 0:,} {split} tokens follow a context-word pair never seen in training, "
                    "so relative frequencies give them probability 0, and one zero makes the perplexity infinite: "
                    "unsmoothed counts cannot generalise."
                )
        elif floor and ppl is not None and math.isfinite(ppl):
            gap = 100 * (ppl / floor.perplexity - 1)
            sentences.append(f"That is {gap:.1f}% above the true source's floor of {floor.perplexity:.2f}.")
        window = _family(info).window(info.config)
        for text in (_long_distance(tasks, name, window), _agreement(tasks, name)):
            if text:
                sentences.append(text)
        out.append(Commentary(name, " ".join(sentences)))
        prev_name = name
    return out


def narrative_markdown(results: RunResults) -> str:
    """The narrative as markdown paragraphs (empty for a single model)."""
    steps = ladder_narrative(results)
    if len(steps) < 2:
        return ""
    return "\n\n".join(step.text for step in steps)


def _why(
    prev: ModelInfo | None,
    cur: ModelInfo,
    prev_row: CombinedRow | None,
    row: CombinedRow,
    *,
    synthetic: bool = False,
) -> str:
    """One sentence of why the model should do better than the one before it, and whether it did here; words
    about the synthetic corpus's construction only where ``synthetic``."""
    if prev is None:
        return "It is the reference point: every later model is compared with it."
    a, b = prev_row.perplexity if prev_row else None, row.perplexity
    finite = all(isinstance(x, (int, float)) and math.isfinite(x) for x in (a, b))
    if prev.family == cur.family:
        why = _family(cur).why_change(prev.config, cur.config)
    else:
        why = family_named(cur.family or None).why_text(synthetic=synthetic)
    if finite and b > a:
        return f"{why}; here it did not pay off ({compare_words(a, b, 'the previous model')})."
    if isinstance(b, (int, float)) and math.isinf(b) and not (isinstance(a, (int, float)) and math.isinf(a)):
        return f"{why}; here it did not pay off: a test word never seen after its context gets probability 0."
    return why + "."


def _compute(row: CombinedRow, info: ModelInfo) -> tuple[float | None, str]:
    """Tokens seen in training and the training compute, as the results record them (estimated where not)."""
    tokens = row.train_tokens
    if not isinstance(tokens, (int, float)) or not math.isfinite(tokens):
        tps, secs = row.train_tokens_per_second, row.train_seconds
        ok = all(isinstance(x, (int, float)) and math.isfinite(x) for x in (tps, secs))
        tokens = round(tps * secs) if ok else None
    flops = row.train_flops
    if isinstance(flops, (int, float)) and math.isfinite(flops) and flops > 0:
        return tokens, f"{flops:.2g} FLOPs"
    if _family(info).compute:
        return tokens, _family(info).compute
    params = row.parameters
    if tokens and isinstance(params, (int, float)) and params > 0:
        return tokens, f"≈ {6 * params * tokens:.2g} FLOPs (6 · parameters · tokens)"
    return tokens, ""


def is_synthetic(results: RunResults) -> bool:
    """Whether the run's corpus is the built-in synthetic one (the only corpus with a known construction)."""
    return results.provenance.corpus == "synthetic" or results.entropy_floor is not None


def is_ladder(families: list[str], configs: list[dict[str, Any]]) -> bool:
    """Whether models of these families and settings, in this order, form a ladder: three or more, each of a
    family that is a step of the ladder (:attr:`Family.generation`), the generations never going back and at
    least two of them, and within a family the window a model sees (n-grams: the order) never shrinking."""
    ranks = [ladder_rank(f) for f in families]
    if len(families) < 3 or any(r is None for r in ranks):
        return False
    if any(b < a for a, b in zip(ranks, ranks[1:], strict=False)) or len(set(ranks)) < 2:
        return False
    windows: dict[str, list[int]] = {}
    for f, config in zip(families, configs, strict=True):
        window = family_named(f).window(config)
        if window is not None:
            windows.setdefault(f, []).append(window or 0)
    return all(b >= a for w in windows.values() for a, b in zip(w, w[1:], strict=False))


def forms_ladder(results: RunResults) -> bool:
    """Whether the models, in their order, form a ladder of model generations (:func:`is_ladder`)."""
    _, _, main = main_rows(results)
    infos = [_info(results, row) for row in main.values()]
    return is_ladder([info.family for info in infos], [info.config for info in infos])


def _sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def ladder_steps(results: RunResults) -> list[StepCard]:
    """One short card per model, in ladder order: what it is, what changed, its figure, tokens seen and
    compute, and one sentence of why the step should help (and whether it did)."""
    split, context, main = main_rows(results)
    if not main:
        return []
    synthetic = is_synthetic(results)
    out, prev_name = [], None
    for name, row in main.items():
        info = _info(results, row)
        prev = results.models.get(prev_name) if prev_name else None
        tokens, compute = _compute(row, info)
        out.append(
            StepCard(
                model=name,
                family=info.family,
                description=_sentence_case(describe_model(name, info)),
                changed=_what_changed(prev, info),
                figure=_sentence_case(f"{_fmt_ppl(row)} on the {split} split"),
                tokens=f"{tokens:,.0f} training tokens seen" if tokens else "",
                compute=compute,
                why=_why(prev, info, main.get(prev_name) if prev_name else None, row, synthetic=synthetic),
            )
        )
        prev_name = name
    return out


def floor_warnings(results: RunResults) -> list[str]:
    """One line per figure below the known entropy floor (synthetic corpus), with the reason: no model of the
    text can beat its true source on average, so such a figure measures an easier text, usually one whose
    vocabulary (``min_count``, ``max_size``) maps many words to ``<unk>``."""
    floor = results.entropy_floor
    if floor is None:
        return []
    floors = {"test": floor.perplexity, "valid": floor.valid_perplexity}
    out = []
    for r in results.rows:
        bound, ppl = floors.get(r.split), r.perplexity
        if not (isinstance(bound, (int, float)) and isinstance(ppl, (int, float)) and ppl < bound):
            continue
        rate = r.oov_rate
        if isinstance(rate, (int, float)) and rate > 0:
            why = (
                f"{rate:.1%} of its {r.split} tokens are <unk> (the vocabulary's min_count / max_size): it "
                "predicts a coarser text in which those words are one, not the text the floor measures"
            )
        else:
            why = "no token is <unk>, so the figure cannot be a probability of this text: check the model's scores"
        out.append(
            f"warning: {r.model}'s {r.split} perplexity ({r.context} context) {ppl:.2f} is below the true "
            f"source's floor {bound:.2f}, which no model can beat on average: {why}"
        )
    return out
