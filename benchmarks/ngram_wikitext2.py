"""N-gram benchmark on the full WikiText-2: fit time, peak memory, test perplexity and scoring speed of
modified Kneser-Ney, beside KenLM (run side by side where lmplz/query are on PATH, else its recorded figures)
and NLTK's KneserNeyInterpolated scoring rate.

    python benchmarks/ngram_wikitext2.py [--orders 5 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from lmbench.data import Corpus, get_tokenizer, tokenize_corpus
from lmbench.data.shared import shared_path
from lmbench.evaluation import score
from lmbench.models.ngram import NgramLM

# KenLM's figures for the same work on a 2-core machine (../shared/reference/kenlm/SOURCE.md)
KENLM_RECORDED = {
    5: {"perplexity": 220.14, "fit_seconds": (3.5, 4.0), "peak_mib": 258},
    3: {"perplexity": 226.05, "fit_seconds": (1.7, 2.2), "peak_mib": 287},
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kenlm_side_by_side(train: Path, test: Path, order: int) -> dict | None:
    """Time lmplz and query where KenLM is installed (literal <unk> renamed, as KenLM refuses it)."""
    if not (shutil.which("lmplz") and shutil.which("query")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        renamed = {}
        for name, path in (("train", train), ("test", test)):
            renamed[name] = Path(tmp) / f"{name}.txt"
            renamed[name].write_text(
                path.read_text(encoding="utf-8").replace("<unk>", "UNKTOK"), encoding="utf-8"
            )
        arpa = Path(tmp) / "model.arpa"
        start = time.perf_counter()
        with open(renamed["train"], "rb") as f_in, open(arpa, "wb") as f_out:
            subprocess.run(
                ["lmplz", "-o", str(order), "-S", "1G"],
                stdin=f_in,
                stdout=f_out,
                stderr=subprocess.DEVNULL,
                check=True,
            )
        fit = time.perf_counter() - start
        with open(renamed["test"], "rb") as f_in:
            out = subprocess.run(
                ["query", "-v", "summary", str(arpa)], stdin=f_in, capture_output=True, text=True, check=True
            )
        ppl = float(
            next(x for x in out.stdout.splitlines() if x.startswith("Perplexity including")).split("\t")[-1]
        )
        return {"fit_seconds": fit, "perplexity": ppl}


def nltk_kn_rate(train_lines: list[list[str]], test_lines: list[list[str]], seconds: float = 3.0) -> float:
    """Trigrams scored per second by NLTK's KneserNeyInterpolated (trained on a slice: it is slow)."""
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    train, vocab = padded_everygram_pipeline(3, train_lines[:2000])
    model = KneserNeyInterpolated(3)
    model.fit(train, vocab)
    trigrams = [(line[i - 2 : i], line[i]) for line in test_lines for i in range(2, len(line))]
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds and done < len(trigrams):
        context, word = trigrams[done]
        model.score(word, context)
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[5, 3])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nltk-seconds", type=float, default=3.0)
    args = parser.parse_args()
    root = shared_path("corpora", "wikitext-2")
    if root is None:
        print("skipped: WikiText-2 not found (set LMBENCH_SHARED or put ../shared beside the repository)")
        return
    start = time.perf_counter()
    corpus = Corpus.from_files(root / "train.txt", root / "valid.txt", root / "test.txt", name="wikitext-2")
    data = tokenize_corpus(corpus, get_tokenizer("whitespace"))
    tokenize_seconds = time.perf_counter() - start
    print(
        f"WikiText-2: {data.train.num_predicted:,} training tokens, |V| = {len(data.vocab):,}; read+tokenize {tokenize_seconds:.2f} s"
    )
    for order in args.orders:
        fits, model = [], None
        for _ in range(args.repeats):
            model = None  # free the previous fit first, so peak RSS is one model's, not two
            start = time.perf_counter()
            model = NgramLM(order, "modified-kneser-ney").fit(data.train)
            fits.append(time.perf_counter() - start)
        scores_t = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            logprobs = model.token_logprobs(data.test, context="sentence")
            scores_t.append(time.perf_counter() - start)
        result = score(logprobs, data.test)
        rate = data.test.num_predicted / min(scores_t)
        ref = KENLM_RECORDED.get(order, {})
        print(f"\norder {order} modified Kneser-Ney (best of {args.repeats})")
        print(f"  fit              {min(fits):8.2f} s   (+ {tokenize_seconds:.2f} s read/tokenize)")
        print(f"  peak RSS         {peak_rss_mib():8.0f} MiB (whole process so far)")
        print(f"  test perplexity  {result.perplexity:8.2f}     over {result.tokens:,} tokens")
        print(f"  scoring          {rate:12,.0f} tokens/s")
        side = kenlm_side_by_side(root / "train.txt", root / "test.txt", order)
        if side:
            print(f"  KenLM (measured) fit {side['fit_seconds']:.2f} s, perplexity {side['perplexity']:.2f}")
            print(
                f"  ratios           fit {min(fits) / side['fit_seconds']:.2f}x, perplexity {result.perplexity / side['perplexity']:.5f}"
            )
        elif ref:
            lo, hi = ref["fit_seconds"]
            print(
                f"  KenLM (recorded) fit {lo}-{hi} s, {ref['peak_mib']} MiB, perplexity {ref['perplexity']}  [lmplz not on PATH]"
            )
            print(
                f"  ratios           fit {min(fits) / hi:.2f}-{min(fits) / lo:.2f}x of lmplz, perplexity {result.perplexity / ref['perplexity']:.5f} "
                f"({100 * abs(result.perplexity / ref['perplexity'] - 1):.3f}% off)"
            )
    if args.nltk_seconds > 0:
        lines = [x.split() for x in corpus.train]
        test_lines = [x.split() for x in corpus.test if x.strip()]
        nltk_rate = nltk_kn_rate(lines, test_lines, args.nltk_seconds)
        print(
            f"\nNLTK KneserNeyInterpolated(3) scoring: {nltk_rate:,.0f} trigrams/s; lmbench/NLTK = {rate / nltk_rate:,.0f}x"
        )
    print(f"\npeak RSS of the whole run: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
