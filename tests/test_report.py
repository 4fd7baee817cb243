"""Reports: atomic folders, markdown/HTML/LaTeX content, the narrative, and the HTML page in a real browser."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from lmbench.reporting import load_results, render_report
from lmbench.reporting.narrative import ladder_narrative
from lmbench.results import CurvePoint, RunResults
from tests.conftest import require_tool


def results(**overrides) -> RunResults:
    """The fixture run (samples stored the way versions before typed samples did), read as :class:`RunResults`."""
    return RunResults.from_dict(results_dict(**overrides))


def results_dict(**overrides) -> dict:
    base = {
        "experiment": "ladder",
        "rows": [
            {
                "model": "bigram-mle",
                "family": "ngram",
                "split": "test",
                "context": "sentence",
                "tokens": 1000,
                "oov": 0,
                "perplexity": math.inf,
                "perplexity_low": math.inf,
                "perplexity_high": math.inf,
                "bits_per_char": math.inf,
                "parameters": 500,
                "train_seconds": 0.1,
                "zero_prob_tokens": 37,
            },
            {
                "model": "kn3",
                "family": "ngram",
                "split": "test",
                "context": "sentence",
                "tokens": 1000,
                "oov": 0,
                "perplexity": 14.0,
                "perplexity_low": 13.5,
                "perplexity_high": 14.5,
                "bits_per_char": 1.1,
                "parameters": 5000,
                "train_seconds": 0.2,
                "zero_prob_tokens": 0,
            },
            {
                "model": "kn5",
                "family": "ngram",
                "split": "test",
                "context": "sentence",
                "tokens": 1000,
                "oov": 0,
                "perplexity": 14.1,
                "perplexity_low": 13.6,
                "perplexity_high": 14.6,
                "bits_per_char": 1.1,
                "parameters": 9000,
                "train_seconds": 0.3,
                "zero_prob_tokens": 0,
            },
            {
                "model": "lstm",
                "family": "lstm",
                "split": "test",
                "context": "sentence",
                "tokens": 1000,
                "oov": 0,
                "perplexity": 9.1,
                "perplexity_low": 8.9,
                "perplexity_high": 9.3,
                "bits_per_char": 0.9,
                "parameters": 90000,
                "train_seconds": 45.0,
                "zero_prob_tokens": 0,
            },
        ],
        "models": {
            "bigram-mle": {"family": "ngram", "config": {"family": "ngram", "order": 2, "smoothing": "mle"}},
            "kn3": {"family": "ngram", "config": {"family": "ngram", "order": 3, "smoothing": "kneser-ney"}},
            "kn5": {
                "family": "ngram",
                "config": {"family": "ngram", "order": 5, "smoothing": "modified-kneser-ney"},
            },
            "lstm": {
                "family": "lstm",
                "config": {"family": "rnn", "cell": "lstm", "layers": 1, "hidden_size": 128},
            },
        },
        "tasks": [
            {
                "model": "kn3",
                "task": "minimal-pairs",
                "metric": "accuracy",
                "value": 0.52,
                "low": 0.45,
                "high": 0.6,
                "n": 100,
                "corruption": "swap",
                "distance": 8,
                "ties": 3,
            },
            {
                "model": "lstm",
                "task": "minimal-pairs",
                "metric": "accuracy",
                "value": 0.97,
                "low": 0.94,
                "high": 0.99,
                "n": 100,
                "corruption": "swap",
                "distance": 8,
                "ties": 0,
            },
            {
                "model": "kn3",
                "task": "minimal-pairs",
                "metric": "accuracy",
                "value": 0.9,
                "low": 0.86,
                "high": 0.93,
                "n": 300,
                "corruption": "last-word",
                "ties": 0,
            },
            {
                "model": "kn3",
                "task": "generate",
                "metric": "sample",
                "value": math.nan,
                "low": math.nan,
                "high": math.nan,
                "n": 1,
                "detail": "A0 w01 ⟶ w02 Z0",
            },
        ],
        "curves": {
            "lstm": [{"tokens": 1000, "valid_perplexity": 12.0}, {"tokens": 2000, "valid_perplexity": 9.5}]
        },
        "entropy_floor": {"perplexity": 8.7, "bits_per_token": 3.12, "entropy_rate_perplexity": 8.54},
        "word_buckets": {"kn3": [{"bucket": "1", "tokens": 10, "share": 0.01, "perplexity": 900.0}]},
        "failures": [],
        "provenance": {
            "seed": 0,
            "corpus": "synthetic",
            "tokenizer": "whitespace",
            "vocab_size": 71,
            "contexts": ["sentence"],
        },
    }
    base.update(overrides)
    return base


def test_narrative_is_generated_from_the_figures():
    steps = {s.model: s.text for s in ladder_narrative(results())}
    assert "37 of 1,000 test tokens" in steps["bigram-mle"] and "infinite" in steps["bigram-mle"]
    assert "finite again" in steps["kn3"]
    assert "intervals overlap" in steps["kn5"] and "higher than kn3" in steps["kn5"]
    assert "35.5% lower than kn5's" in steps["lstm"] and "do not overlap" in steps["lstm"]
    assert "4.6% above the true source's floor of 8.70" in steps["lstm"]
    assert "8 apart" in steps["kn3"] and "beyond its 3-word window" in steps["kn3"]
    assert (
        "replaced by another sentence's, it still prefers the real one 90% of the time (95% interval 86–93%)"
        in steps["kn3"]
    )
    assert (
        "replaced by another sentence's, it still prefers the real one 90% of the time (95% interval 86–93%)"
        in steps["kn3"]
    )


def test_narrative_never_explains_a_result_that_is_ties(tmp_path):
    tied = results()
    for row in tied.tasks:
        if row.model == "kn3" and row.corruption:
            row.value, row.low, row.high, row.ties = 0.5, 0.5, 0.5, row.n
    text = {s.model: s.text for s in ladder_narrative(tied)}["kn3"]
    assert "100 of 100 pairs tie" in text and "300 of 300 pairs tie" in text and "measures nothing" in text
    assert "beyond its" not in text and "prefers the real" not in text
    md = (render_report(tied, tmp_path / "report", ["md", "csv", "json"]) / "report.md").read_text()
    assert "- **warning: kn3 on corruption swap at distance 8: 100 of 100 pairs tie" in md
    assert (
        "accuracy counts a tie (two totals equal within `tie_tolerance`, 1e-9 relative by default) as half"
        in md
    )


def test_render_writes_every_format_and_round_trips_infinities(tmp_path):
    out = render_report(results(), tmp_path / "report", ["md", "csv", "json", "html", "latex", "png"])
    names = {p.name for p in out.iterdir()}
    assert {"results.csv", "tasks.csv", "results.json", "report.md", "report.html", "tables.tex"} <= names
    assert {"perplexity_vs_parameters.png", "learning_curves.png", "minimal_pairs_by_distance.png"} <= names
    back = load_results(out)
    assert back.rows[0].perplexity == math.inf and back == results()  # samples moved out of the task rows
    md = (out / "report.md").read_text()
    assert "14.00 ± 0.50" in md and "| ∞ " in md and "Entropy floor" in md and "A0 w01" in md
    assert "\\toprule" in (out / "tables.tex").read_text()
    assert not list(tmp_path.glob(".report*"))  # no staging folders left behind


def test_an_interrupted_render_leaves_the_old_report_intact(tmp_path, monkeypatch):
    out = render_report(results(), tmp_path / "report", ["md", "csv", "json"])
    before = (out / "report.md").read_text()
    import lmbench.reporting.report as report

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "html_report", boom)
    with pytest.raises(KeyboardInterrupt):
        render_report(results(experiment="changed"), tmp_path / "report", ["md", "html"])
    assert (out / "report.md").read_text() == before
    assert not list(tmp_path.glob(".report*"))


def test_html_report_renders_in_headless_chromium(tmp_path):
    require_tool("chromium", "Debian's chromium; .ci/run installs it")
    out = render_report(results(), tmp_path / "report", ["html", "png"])
    page = (out / "report.html").resolve()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]  # fmt: skip
    # the DOM after rendering; a small script outside the page reports what the browser actually decoded
    dump = subprocess.run(["chromium", *flags, "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert dump.returncode == 0, dump.stderr[-2000:]
    dom = dump.stdout
    html = page.read_text()
    assert dom.count("<table") == html.count("<table") >= 2
    assert dom.count("<img") == html.count("<img") >= 4
    assert "Uncaught" not in dump.stderr and "CONSOLE" not in dump.stderr.upper().replace("CONSOLE_", "")
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", *flags, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=60)  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 20_000  # tables and plots were painted, not a blank page
    import numpy as np
    from PIL import Image

    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB").resize((200, 500))).reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    assert colours > 50  # plots and text, not a blank page


def _with_baseline_diff(**overrides) -> RunResults:
    res = results_dict(**overrides)
    res["provenance"]["bootstrap"] = 1000
    kn3 = next(r for r in res["rows"] if r["model"] == "kn3")
    kn3.update(diff_vs_baseline=-0.1, diff_low=-0.3, diff_high=0.1, p_value=0.001)  # at the resolution
    lstm = next(r for r in res["rows"] if r["model"] == "lstm")
    lstm.update(diff_vs_baseline=-5.0, diff_low=-5.4, diff_high=-4.6, p_value=0.024)
    res["rows"][0]["model"] = "bigram_mle & co"  # LaTeX specials in a name
    res["models"]["bigram_mle & co"] = res["models"].pop("bigram-mle")
    return RunResults.from_dict(res)


def test_latex_tables_are_table_environments_with_math_symbols(tmp_path):
    out = render_report(_with_baseline_diff(), tmp_path / "report", ["latex"])
    tex = (out / "tables.tex").read_text()
    assert tex.count("\\begin{table}") == 2 and tex.count("\\caption{") == 2  # test split + tasks
    assert "\\label{tab:ladder-test}" in tex and "\\label{tab:ladder-tasks}" in tex
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    header = next(line for line in tex.splitlines() if line.startswith("model & family"))
    columns = [c.strip() for c in header.removesuffix("\\\\").split(" & ")]
    spec = "".join("l" if c in ("model", "family", "context", "budget") else "r" for c in columns)
    assert f"\\begin{{tabular}}{{{spec}}}" in tex and spec.startswith("lllr")  # text left, numbers right
    assert "$14.00 \\pm 0.50$" in tex and "$\\infty$" in tex and "$\\Delta$" in tex
    assert "($p < 0.001$)" in tex and "($p = 0.024$)" in tex
    assert "bigram\\_mle \\& co" in tex
    assert not any(
        ord(ch) > 127 for ch in tex.replace(tex.splitlines()[0], "")
    )  # no raw Unicode for pdflatex


def test_p_values_at_the_bootstrap_resolution_read_as_upper_bounds():
    from lmbench.reporting.tables import display_table, format_p

    assert format_p(0.001, 1000) == "p<0.001" and format_p(0.02, 50) == "p<0.02"
    assert format_p(0.002, 1000) == "p=0.002" and format_p(float("nan"), 1000) == ""
    table = display_table(_with_baseline_diff().rows, bootstrap=1000)
    assert "(p<0.001)" in table[1]["Δ vs baseline (p)"] and "(p=0.024)" in table[3]["Δ vs baseline (p)"]


COMMITTED_REPORTS = sorted(
    p.parent for p in (Path(__file__).parent.parent / "reports").glob("*/results.json")
)


@pytest.mark.parametrize("source", ["fixture", *(folder.name for folder in COMMITTED_REPORTS)])
def test_every_latex_output_compiles_with_pdflatex(tmp_path, source):
    """The fixture (∞, Δ, p at the resolution, LaTeX specials in names) and every committed report's results."""
    require_tool("pdflatex", "texlive-latex-base; .ci/run installs it")
    folder = {f.name: f for f in COMMITTED_REPORTS}.get(source)
    res = _with_baseline_diff() if folder is None else load_results(folder)
    out = render_report(res, tmp_path / "report", ["latex"])
    doc = tmp_path / "paper.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[margin=1cm]{geometry}\n"
        f"\\begin{{document}}\n\\input{{{(out / 'tables.tex').as_posix()}}}\n\\end{{document}}\n"
    )
    run = subprocess.run(["pdflatex", "-halt-on-error", "-interaction=nonstopmode", doc.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip
    log = (tmp_path / "paper.log").read_text(errors="replace")
    assert run.returncode == 0 and "\n! " not in log, run.stdout[-3000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000


def test_report_leads_with_the_headline_then_one_main_table_and_step_cards(tmp_path):
    out = render_report(_with_baseline_diff(), tmp_path / "report", ["md", "html", "png"])
    md = (out / "report.md").read_text()
    assert md.index("![headline](headline.png)") < md.index("## Test perplexity (sentence context)")
    main = md.split("## Test perplexity (sentence context)")[1].split("##")[0]
    assert "| split" not in main and "14.00 ± 0.50" in main  # test only, one context
    assert md.index("## The ladder, step by step") < md.index("## Appendix")
    steps = md.split("## The ladder, step by step")[1].split("## ")[0]
    assert [line.split("**")[1] for line in steps.splitlines() if line.startswith("**")] == [
        "1. bigram_mle & co", "2. kn3", "3. kn5", "4. lstm"
    ]  # fmt: skip
    assert "Counting stops here" in steps and "one counting pass" in steps
    assert "did not pay off" in steps.split("**3. kn5**")[1].split("**4.")[0]  # kn5 is worse than kn3
    assert "### test split, every context" in md.split("## Appendix")[1]
    html = (out / "report.html").read_text()
    assert html.count('class="card"') == 4 and html.index('alt="headline"') < html.index("<table")
    assert "{{" not in html and "{%" not in html  # every template field filled


def test_prose_about_the_synthetic_corpus_stays_on_it_and_ratios_read_naturally():
    from lmbench.reporting.narrative import compare_words, forms_ladder, ladder_steps

    synthetic = " ".join(s.why for s in ladder_steps(results()))
    assert "opener" in synthetic  # the construction a recurrent state targets, named where it exists
    real = results(entropy_floor=None, provenance={"corpus": "wikitext-2", "contexts": ["sentence"]})
    words = " ".join(s.why + s.changed for s in ladder_steps(real))
    words += " ".join(s.text for s in ladder_narrative(real))
    assert not any(w in words for w in ("opener", "filler", "closer")), words
    assert compare_words(10.0, 29.8, "kn3") == "2.98x kn3's 10.00"
    assert compare_words(10.0, 11.0, "kn3") == "10.0% higher than kn3's 10.00"
    assert compare_words(10.0, 8.0, "kn3") == "20.0% lower than kn3's 10.00"
    assert forms_ladder(results())  # n-grams of rising order, then an LSTM
    shuffled = results()
    shuffled.rows = sorted(shuffled.rows, key=lambda r: r.model != "lstm")  # the LSTM first
    assert not forms_ladder(shuffled)


def test_one_colour_per_model_and_plain_tick_labels():
    from lmbench.reporting.plots import _plain, model_colours

    colours = model_colours(results())
    assert list(colours) == ["bigram-mle", "kn3", "kn5", "lstm"] and len(set(colours.values())) == 4
    assert [_plain(v) for v in (200, 0.5, 5000, 20000, 3.5e6)] == ["200", "0.5", "5000", "20k", "3.5M"]


def test_attention_example_reaches_from_the_closer_back_to_the_opener():
    import numpy as np

    from lmbench.data import TokenStream, Vocabulary
    from lmbench.reporting.attention import attention_example

    line = "A3 w1 w2 w3 w4 w5 w6 w7 Z3".split()
    vocab = Vocabulary.build([line])
    stream = TokenStream.from_lines([line[:4], line], vocab)

    class LooksAtTheOpener:  # one layer, two heads; head 1 at the row predicting Z3 looks at A3
        def attention_maps(self, ids):
            T = len(ids)
            maps = np.tril(np.ones((1, 2, T, T)))
            maps[0, 1, T - 2] = 0.0
            maps[0, 1, T - 2, 1] = 1.0
            return maps / maps.sum(-1, keepdims=True)

    ex = attention_example(LooksAtTheOpener(), stream)
    assert ex.tokens == ["<s>", *line] and ex.tokens[ex.key] == "A3"
    assert ex.tokens[ex.query + 1] == "Z3" and (ex.layer, ex.head, ex.weight) == (0, 1, 1.0)
    assert attention_example(object(), stream) is None


def test_attention_example_skips_headings_and_markup_and_says_why_its_sentence_was_chosen():
    import numpy as np

    from lmbench.data import TokenStream, Vocabulary
    from lmbench.reporting.attention import attention_example

    heading = "= = = 2000 – 2005 = = =".split()
    markup = "the 1 @-@ 2 @-@ 3 @-@ 4 @-@ 5 @-@ 6".split()
    sentence = "the river flows north past the old mill into the lake .".split()
    vocab = Vocabulary.build([heading, markup, sentence])
    stream = TokenStream.from_lines([heading, markup, sentence], vocab)

    class Uniform:
        def attention_maps(self, ids):
            T = len(ids)
            maps = np.tril(np.ones((1, 1, T, T)))
            return maps / maps.sum(-1, keepdims=True)

    ex = attention_example(Uniform(), stream)
    assert ex.tokens[1:] == sentence
    assert ex.tokens[ex.query + 1] == "lake"  # the last word, not the full stop
    assert "ordinary sentence" in ex.reason and "2 earlier line(s)" in ex.reason


def test_step_cards_say_what_changed_and_why_from_the_figures():
    from lmbench.reporting.narrative import ladder_steps

    base = results_dict()
    rows = {r["model"]: {**r, "train_tokens_per_second": 1000.0} for r in base["rows"]}
    steps = ladder_steps(results(rows=[rows["kn3"], rows["bigram-mle"], rows["lstm"]]))
    assert [s.model for s in steps] == ["kn3", "bigram-mle", "lstm"]
    assert steps[0].description.startswith("A trigram model") and "reference point" in steps[0].why
    assert "did not pay off: a test word never seen after its context gets probability 0" in steps[1].why
    assert steps[1].figure == "An infinite perplexity on the test split"
    assert steps[0].figure == "Perplexity 14.00 (95% interval 13.50–14.50) on the test split"
    assert steps[2].tokens == "45,000 training tokens seen"  # 1000 tokens/s x 45 s
    assert steps[2].compute == "≈ 2.4e+10 FLOPs (6 · parameters · tokens)" and "Gates" not in steps[2].why
    assert "one counting pass" in steps[0].compute


def test_crossover_with_the_ngram_baseline_is_interpolated_and_stated(tmp_path):
    import math

    from lmbench.reporting.crossover import crossover, crossover_lines

    points = [
        CurvePoint(tokens=1000, seconds=60.0, valid_perplexity=40.0),
        CurvePoint(tokens=2000, seconds=120.0, valid_perplexity=10.0),
    ]
    c = crossover("lstm", points, 20.0, per_token=6e3)
    # linear in log perplexity: log 40 -> log 10 passes log 20 halfway
    assert (
        math.isclose(c.tokens, 1500) and math.isclose(c.seconds, 90.0) and math.isclose(c.flops, 1500 * 6e3)
    )
    never = crossover("rnn", points, 5.0, per_token=None)
    assert never.tokens is None and never.best == 10.0
    res = results(
        curves={
            "lstm": [p.to_dict() for p in points],
            "rnn": [{**p.to_dict(), "valid_perplexity": p.valid_perplexity * 3} for p in points],
        },
        curve_baseline={
            "model": "kn3",
            "split": "valid",
            "context": "stream",
            "perplexity": 20.0,
            "why": "test",
        },
    )
    res.models["lstm"].train_flops, res.models["lstm"].train_tokens = 6e3 * 2000, 2000
    lines = crossover_lines(res)
    assert lines[0].startswith(
        "lstm: below kn3's 20.00 after 1,500 training tokens (9e+06 FLOPs, 1.5 minutes"
    )
    assert lines[1].startswith("rnn: not within its budget: its best validation perplexity, 30.00")
    out = render_report(res, tmp_path / "report", ["md", "html", "png"])
    md = (out / "report.md").read_text()
    assert (
        "## Learning curves against the n-gram baseline" in md
        and "validation perplexity 20.00 on the valid" in md
    )
    assert "1,500 training tokens" in (out / "report.html").read_text()


def test_results_written_before_curve_baseline_read_it_from_the_rows():
    import dataclasses

    from lmbench.reporting.crossover import curve_baseline

    res = results(curves={"lstm": [{"tokens": 1000, "valid_perplexity": 12.0}]})
    assert curve_baseline(res) is None  # no validation rows in stream context: nothing to read
    valid = [dataclasses.replace(r, split="valid", context="stream", perplexity=p) for r, p in
             zip([r for r in res.rows if r.model in ("kn3", "kn5")], (15.0, 14.0), strict=True)]  # fmt: skip
    res.rows += valid
    base = curve_baseline(res)
    assert base.model == "kn5" and base.perplexity == 14.0 and base.context == "stream"


def test_the_same_results_render_to_the_same_bytes(tmp_path):
    """Reproducible figures: every file of a report (tables, JSON, HTML, LaTeX and the PNG plots) is a function of
    the results alone, byte for byte, with no date, path or random state inside."""
    formats = ["md", "csv", "json", "html", "latex", "png"]
    one = render_report(_with_baseline_diff(), tmp_path / "one", formats)
    two = render_report(_with_baseline_diff(), tmp_path / "two", formats)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert any(f.suffix == ".png" for f in files) and any(f.suffix == ".html" for f in files)
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_compact_figures_never_read_1000_of_a_unit():
    from lmbench.reporting.tables import _compact

    assert [_compact(n) for n in (999, 999.96, 999_870, 999_950, 1_000_000, 2_088_628, 212.0e12)] == [
        "999", "1.0k", "999.9k", "1.0M", "1.0M", "2.1M", "212.0T",
    ]  # fmt: skip
