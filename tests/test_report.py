"""Reports: atomic folders, markdown/HTML/LaTeX content, the narrative, and the HTML page in a real browser."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest

from lmbench.reporting import load_results, render_report
from lmbench.reporting.narrative import ladder_narrative


def results(**overrides):
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
    steps = {s["model"]: s["text"] for s in ladder_narrative(results())}
    assert "37 of 1,000 test tokens" in steps["bigram-mle"] and "infinite" in steps["bigram-mle"]
    assert "finite again" in steps["kn3"]
    assert "intervals overlap" in steps["kn5"] and "worse" in steps["kn5"]
    assert "35.5% better" in steps["lstm"] and "do not overlap" in steps["lstm"]
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
    for row in tied["tasks"]:
        if row["model"] == "kn3" and row.get("corruption"):
            row.update(value=0.5, low=0.5, high=0.5, ties=row["n"])
    text = {s["model"]: s["text"] for s in ladder_narrative(tied)}["kn3"]
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
    assert back["rows"][0]["perplexity"] == math.inf
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


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_html_report_renders_in_headless_chromium(tmp_path):
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
