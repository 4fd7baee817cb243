"""The built-in synthetic corpus: generated from a seeded source whose true entropy rate is known exactly.

Each line is ``A_k f_1 .. f_L Z_k``: an opener for topic k (uniform over K topics), L filler words
(L uniform on [min_len, max_len]) from a topic-specific first-order Markov chain, and the closer that matches
the opener. The closer depends on a word L + 1 >= 7 positions back, which no n-gram of order <= 5 (with
min_len >= 6) can see; the topic also shapes every filler transition.

Since the text determines (k, L, fillers) uniquely, the probability of a line is exact:
``p = (1/K) (1/#L) pi_k(f_1) prod P_k(f_i | f_{i-1})``, and so is the expected entropy of a line,
``log K + log #L + E[H(pi_k) + sum_i mu_{k,i} . h_k]`` with mu the chain's state marginals (matrix powers)
and h_k its row entropies. The entropy rate per predicted token is that divided by E[L] + 3 (opener, fillers,
closer, ``</s>``). Lines are independent, so the floor is the same in sentence and stream mode.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from lmbench.data.corpus import Corpus
from lmbench.errors import ConfigError


@dataclass(frozen=True)
class SyntheticConfig:
    """Shape of the synthetic language (the seed picks one language of that shape)."""

    topics: int = 4
    fillers: int = 60
    min_len: int = 6
    max_len: int = 14
    concentration: float = 0.1  # Dirichlet parameter of the transition rows: smaller = more predictable
    seed: int = 0
    train_lines: int = 12000
    valid_lines: int = 1000
    test_lines: int = 1000

    def __post_init__(self) -> None:
        checks = {
            "topics": self.topics >= 1,
            "fillers": self.fillers >= 2,
            "min_len": self.min_len >= 1,
            "max_len": self.max_len >= self.min_len,
            "concentration": self.concentration > 0,
            "train_lines": self.train_lines >= 1,
            "valid_lines": self.valid_lines >= 1,
            "test_lines": self.test_lines >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"corpus.{key}: invalid value {getattr(self, key)!r} for the synthetic corpus"
                )


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)


class SyntheticSource:
    """A seeded random language with an exactly known entropy rate."""

    def __init__(self, config: SyntheticConfig | None = None):
        self.config = config or SyntheticConfig()
        c = self.config
        rng = np.random.default_rng(c.seed)
        self.openers = [f"A{k}" for k in range(c.topics)]
        self.closers = [f"Z{k}" for k in range(c.topics)]
        self.filler_words = [f"w{i:02d}" for i in range(c.fillers)]
        # topic-specific initial distributions and transition matrices
        self.initial = rng.dirichlet(np.full(c.fillers, c.concentration * 5), size=c.topics)  # [K, F]
        self.transition = rng.dirichlet(
            np.full(c.fillers, c.concentration), size=(c.topics, c.fillers)
        )  # [K, F, F]
        self.lengths = np.arange(c.min_len, c.max_len + 1)
        self._index = {w: i for i, w in enumerate(self.filler_words)}

    # ------------------------------------------------------------------------------------- exact figures
    def expected_line_entropy(self) -> float:
        """E[-ln p(line)] in nats, exactly (no sampling)."""
        c = self.config
        h_rows = _entropy_rows(self.transition)  # [K, F]
        per_topic = []
        for k in range(c.topics):
            mu = self.initial[k]
            step_entropy = []  # entropy of filler i+1 given filler i, for i = 1..max_len-1
            for _ in range(c.max_len - 1):
                step_entropy.append(float(mu @ h_rows[k]))
                mu = mu @ self.transition[k]
            cumulative = np.concatenate(
                [[0.0], np.cumsum(step_entropy)]
            )  # cumulative[L-1] = sum of L-1 steps
            h_initial = float(_entropy_rows(self.initial[k]))
            per_topic.append(np.mean([h_initial + cumulative[L - 1] for L in self.lengths]))
        return math.log(c.topics) + math.log(len(self.lengths)) + float(np.mean(per_topic))

    def expected_tokens_per_line(self) -> float:
        """Predicted tokens per line: opener + fillers + closer + ``</s>``."""
        return float(self.lengths.mean()) + 3.0

    def entropy_rate_nats(self) -> float:
        """The true entropy per predicted token (nats): the best any model can do on average."""
        return self.expected_line_entropy() / self.expected_tokens_per_line()

    def log_prob(self, line: str) -> float:
        """Exact natural-log probability of one line (``-inf`` if the source cannot produce it)."""
        words = line.split()
        if len(words) < 2 or words[0] not in self.openers:
            return -math.inf
        k = self.openers.index(words[0])
        fillers = words[1:-1]
        if words[-1] != self.closers[k] or not self.config.min_len <= len(fillers) <= self.config.max_len:
            return -math.inf
        try:
            ids = [self._index[w] for w in fillers]
        except KeyError:
            return -math.inf
        lp = -math.log(self.config.topics) - math.log(len(self.lengths)) + math.log(self.initial[k, ids[0]])
        for a, b in zip(ids[:-1], ids[1:], strict=True):
            lp += math.log(self.transition[k, a, b])
        return lp

    def floor(self, lines: list[str]) -> dict[str, float]:
        """The true source's perplexity and bits per token on given lines: the floor for any model there."""
        total = sum(self.log_prob(line) for line in lines)
        tokens = sum(len(line.split()) + 1 for line in lines)
        return {
            "perplexity": math.exp(-total / tokens),
            "bits_per_token": -total / tokens / math.log(2),
            "entropy_rate_perplexity": math.exp(self.entropy_rate_nats()),
            "entropy_rate_bits": self.entropy_rate_nats() / math.log(2),
        }

    # ------------------------------------------------------------------------------------- sampling
    def sample_lines(self, n: int, seed: int) -> list[str]:
        """``n`` independent lines; vectorised over lines, one step of the chains at a time."""
        c = self.config
        rng = np.random.default_rng(seed)
        topics = rng.integers(0, c.topics, size=n)
        lengths = rng.choice(self.lengths, size=n)
        words = np.empty((n, c.max_len), dtype=np.int64)
        cdf_initial = np.cumsum(self.initial, axis=1)
        words[:, 0] = (rng.random(n)[:, None] > cdf_initial[topics]).sum(axis=1)
        cdf_transition = np.cumsum(self.transition, axis=2)
        for i in range(1, c.max_len):
            rows = cdf_transition[topics, words[:, i - 1]]
            words[:, i] = (rng.random(n)[:, None] > rows).sum(axis=1)
        words = np.minimum(words, c.fillers - 1)  # guard against cdf rounding at 1.0
        lines = []
        for t, L, row in zip(topics, lengths, words, strict=True):
            body = " ".join(self.filler_words[j] for j in row[:L])
            lines.append(f"{self.openers[t]} {body} {self.closers[t]}")
        return lines

    def corpus(self) -> Corpus:
        """Train/valid/test splits drawn with seeds derived from the source seed (one stream per split)."""
        c = self.config
        seeds = np.random.SeedSequence(c.seed).spawn(3)
        splits = {
            name: self.sample_lines(n, int(s.generate_state(1)[0]))
            for name, n, s in zip(
                ("train", "valid", "test"), (c.train_lines, c.valid_lines, c.test_lines), seeds, strict=True
            )
        }
        return Corpus.from_texts(
            "synthetic", *("\n".join(splits[x]) + "\n" for x in ("train", "valid", "test"))
        )

    def describe(self) -> dict:
        return {**asdict(self.config), "entropy_rate_nats": self.entropy_rate_nats()}


def make_synthetic_corpus(config: SyntheticConfig | None = None) -> tuple[Corpus, SyntheticSource]:
    """The corpus and the source that made it (for its floor)."""
    source = SyntheticSource(config)
    return source.corpus(), source
