"""Pretrained causal language models (Hugging Face ``transformers``) scored on the same text as every family.

A pretrained model has its own (subword) tokenizer, so it is scored on the **raw text** of each split and its
log-probabilities are mapped back onto the shared tokens: the text is cut into one segment per predicted token
— each word with the whitespace before it, and each line's ``</s>`` as the rest of the line up to and
including its newline — and every subword token's log-probability goes to the segment holding its last
character. The per-token values therefore sum to the log-probability of the whole text, perplexity over the
shared tokens is the *word-level* perplexity, and bits per character are directly comparable with every other
model. A tokenizer that drops newlines leaves ``</s>`` with probability 1 (a warning says so).

Needs the optional extra: ``pip install -e ".[hf]"``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from lmbench.data.corpus import TokenStream
from lmbench.data.vocabulary import Vocabulary
from lmbench.errors import ConfigError, DataError
from lmbench.io import atomic_write_text
from lmbench.models.base import Budget, Context, LanguageModel, check_context
from lmbench.models.neural import stream_validation
from lmbench.models.windows import rolling_logprobs
from lmbench.training.loop import TrainConfig, Trainer, pick_device, stream_batches

log = logging.getLogger(__name__)


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ConfigError("family 'pretrained' needs the optional extra: pip install -e '.[hf]'") from None
    return transformers


def load_hf(name_or_path: str, device: torch.device):
    """Model and tokenizer from a local folder or the hub; offline with no copy: one clear line."""
    transformers = _transformers()
    local = Path(name_or_path).expanduser().is_dir()
    offline = (
        local or os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, local_files_only=offline)
        model = transformers.AutoModelForCausalLM.from_pretrained(name_or_path, local_files_only=offline)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"pretrained model {name_or_path!r} not found locally and the hub is unreachable "
            f"({textwrap.shorten(str(e).splitlines()[0] if str(e) else type(e).__name__, 160)}); download it where there is network and pass "
            "name_or_path = '/path/to/folder' (a save_pretrained folder), or set HF_HOME to a cache that has it"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"pretrained model {name_or_path!r}: a fast tokenizer (with offsets) is required")
    model.to(device).eval()
    return model, tokenizer


def word_spans(line: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Character span of each shared token in ``line`` (found left to right; a token the tokenizer rewrote,
    e.g. Treebank quotes, gets an empty span where the search stands)."""
    spans, pos = [], 0
    for word in words:
        found = line.find(word, pos) if word else -1
        if found < 0:
            spans.append((pos, pos))
            continue
        spans.append((found, found + len(word)))
        pos = found + len(word)
    return spans


class PretrainedLM(LanguageModel):
    """A Hugging Face causal LM behind the LanguageModel protocol (registered as ``pretrained``).

    Args:
        name_or_path: a hub name (e.g. ``gpt2``) or a ``save_pretrained`` folder.
        window: tokens per forward pass (at most the model's context length); stream mode slides it by
            ``stride`` (default window/2), so every token has at least half a window of context.
        finetune: continue training on the training split through lmbench's training loop and budget.
        batch_size: sequences per forward pass when scoring.
    """

    backend: ClassVar[str] = "pretrained"

    def __init__(self, name_or_path: str = "gpt2", *, window: int = 512, stride: int | None = None, finetune: bool = False,
                 batch_size: int = 8, device: str = "auto", seed: int = 0, lr: float = 5e-5, seq_len: int = 128,
                 train_batch_size: int = 8, warmup_steps: int = 50):  # fmt: skip
        if not isinstance(name_or_path, str) or not name_or_path:
            raise ConfigError(f"name_or_path: expected a model name or folder, got {name_or_path!r}")
        if not isinstance(window, int) or window < 2:
            raise ConfigError(f"window: expected an integer >= 2, got {window!r}")
        if stride is not None and not (isinstance(stride, int) and 1 <= stride <= window // 2):
            raise ConfigError(
                f"stride: expected an integer from 1 to window/2 = {window // 2}, got {stride!r}"
            )
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.name_or_path, self.window, self.stride, self.finetune = name_or_path, window, stride, finetune
        self.batch_size, self.device, self.seed = batch_size, device, seed
        self.train_config = TrainConfig(lr=lr, seq_len=seq_len, batch_size=train_batch_size, warmup_steps=warmup_steps,
                                        device=device, seed=seed, weight_decay=0.0, patience=0)  # fmt: skip

    def config(self) -> dict[str, Any]:
        t = self.train_config
        return {"backend": self.backend, "name_or_path": self.name_or_path, "window": self.window, "stride": self.stride,
                "finetune": self.finetune, "batch_size": self.batch_size, "device": self.device, "seed": self.seed,
                "lr": t.lr, "seq_len": t.seq_len, "train_batch_size": t.batch_size, "warmup_steps": t.warmup_steps}  # fmt: skip

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.config().items() if k != "backend"}

    @property
    def stochastic(self) -> bool:
        """Only fine-tuning draws random numbers; scoring published weights is deterministic."""
        return self.finetune

    def default_budget(self) -> Budget | None:
        return Budget(epochs=self.train_config.epochs) if self.finetune else None

    # ------------------------------------------------------------------------------------------ fitting
    def _setup(self, vocab: Vocabulary) -> None:
        self.device_ = pick_device(self.device)
        self.hf_model_, self.tokenizer_ = load_hf(self.name_or_path, self.device_)
        limit = getattr(self.hf_model_.config, "n_positions", None) or getattr(
            self.hf_model_.config, "max_position_embeddings", None
        )
        self.window_ = min(self.window, limit) if limit else self.window
        self.vocab_ = vocab
        words = [t for t in vocab.tokens[3:]]
        self.joiner_ = (
            "" if words and all(len(w) == 1 for w in words) else " "
        )  # character-level vocabularies
        self.begin_id_ = (
            self.tokenizer_.bos_token_id
            if self.tokenizer_.bos_token_id is not None
            else self.tokenizer_.eos_token_id
        )
        if self.begin_id_ is None:
            raise ConfigError(
                f"pretrained model {self.name_or_path!r}: its tokenizer has neither a bos nor an eos token"
            )

    def fit(
        self,
        train: TokenStream,
        valid: TokenStream | None = None,
        *,
        budget: Budget | None = None,
        run_dir: str | Path | None = None,
    ) -> PretrainedLM:
        """Adopt the shared vocabulary; with ``finetune``, train on the raw training text (same loop and budget)."""
        self._setup(train.vocab)
        self.learning_curve_ = []
        if not self.finetune:
            return self
        text = self._text(train)
        ids = np.asarray(self.tokenizer_(text)["input_ids"], dtype=np.int64)
        ids = np.concatenate([[self.begin_id_], ids])
        c = self.train_config

        def batches(epoch: int):
            return stream_batches(ids, c.batch_size, c.seq_len, epoch=epoch, seed=c.seed, bos_id=-1)

        def loss_fn(module, batch, carry):
            x, y = batch.inputs.to(self.device_), batch.targets.to(self.device_)
            logits = module(input_ids=x).logits  # (B, T, V_hf)
            return (
                F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="sum"),
                y.numel(),
                None,
            )

        identity = {"params": self.get_params(), "budget": budget.to_dict() if budget else None,
                    "train": hashlib.sha256(ids.tobytes()).hexdigest()}  # fmt: skip
        state = Trainer(c, budget, run_dir, identity=identity).fit(
            self.hf_model_,
            batches,
            loss_fn,
            stream_validation(self, valid),
            epoch_tokens=len(ids),
            device=self.device_,
        )
        self.learning_curve_ = state.curve
        self.tokens_seen_ = state.tokens
        self.hf_model_.eval()
        return self

    # ------------------------------------------------------------------------------------------ scoring
    def _lines(self, data: TokenStream) -> list[str]:
        if data.raw_lines is not None:
            return list(data.raw_lines)
        if data.vocab.tokenizer is not None:  # subword tokens: their tokenizer knows the text
            return [data.vocab.tokenizer.detokenize(data.vocab.decode(line)) for line in data.lines()]
        return [self.joiner_.join(data.vocab.decode(line)) for line in data.lines()]

    def _text(self, data: TokenStream) -> str:
        return "".join(line + "\n" for line in self._lines(data))

    @torch.no_grad()
    def _token_logprobs_of_ids(self, ids: list[int]) -> np.ndarray:
        """log p of every token of ``[begin] + ids`` after the first: rolling windows of ``window_`` tokens
        moved by ``stride`` (default window/2), one window per forward pass."""

        def score(x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            logits = self.hf_model_(input_ids=x.to(self.device_)).logits.double()  # (B, T, V_hf)
            lp = (
                torch.log_softmax(logits, dim=-1).gather(2, y.to(self.device_)[..., None]).squeeze(2)
            )  # (B, T)
            return lp[keep.to(self.device_)]

        sequence = np.asarray([self.begin_id_, *ids], dtype=np.int64)
        return rolling_logprobs(sequence, self.window_, score, stride=self.stride, batch_size=1)[1:]

    def _map_to_segments(
        self,
        text: str,
        lines: list[str],
        line_spans: list[list[tuple[int, int]]],
        token_lp: np.ndarray,
        offsets: list[tuple[int, int]],
    ) -> np.ndarray:
        """Sum subword log-probabilities into the shared tokens' segments (see the module docstring)."""
        seg_end, base = [], 0  # exclusive end offset of each segment, in prediction order
        for line, spans in zip(lines, line_spans, strict=True):
            for _, end in spans:
                seg_end.append(base + end)
            seg_end.append(base + len(line) + 1)  # </s>: the rest of the line and its newline
            base += len(line) + 1
        seg_end = np.asarray(seg_end, dtype=np.int64)
        out = np.zeros(len(seg_end), dtype=np.float64)
        last_char = np.array([b - 1 for a, b in offsets], dtype=np.int64)
        real = np.array([b > a for a, b in offsets], dtype=bool)
        # segment i covers [seg_end[i-1], seg_end[i]); empty segments (rewritten tokens) receive nothing
        segment = np.searchsorted(seg_end, last_char, side="right")
        np.add.at(out, segment[real], token_lp[real])
        return out

    def token_logprobs(self, data: TokenStream, *, context: Context = "sentence") -> np.ndarray:
        self._check_fitted()
        check_context(context)
        lines = self._lines(data)
        subword = data.vocab.tokenizer  # shared subword tokens: their spans come from their tokenizer
        if subword is not None:
            spans = [subword.spans(line) for line in lines]
        else:
            words = [data.vocab.decode(line) for line in data.lines()]
            if data.raw_lines is not None:  # the raw words (OOVs included), as the shared tokenizer cut them
                words = [self._raw_words(line, w) for line, w in zip(lines, words, strict=True)]
            spans = [word_spans(line, w) for line, w in zip(lines, words, strict=True)]
        chunks = (
            [(lines, spans)]
            if context == "stream"
            else [([line], [w]) for line, w in zip(lines, spans, strict=True)]
        )
        out = []
        for chunk_lines, chunk_words in chunks:
            text = "".join(line + "\n" for line in chunk_lines)
            enc = self.tokenizer_(text, return_offsets_mapping=True, add_special_tokens=False)
            token_lp = self._token_logprobs_of_ids(enc["input_ids"]) if enc["input_ids"] else np.zeros(0)
            out.append(self._map_to_segments(text, chunk_lines, chunk_words, token_lp, enc["offset_mapping"]))
        result = np.concatenate(out) if out else np.zeros(0)
        if len(result) != data.num_predicted:  # pragma: no cover - guards the segment bookkeeping
            raise DataError(
                f"pretrained scoring produced {len(result)} values for {data.num_predicted} tokens"
            )
        return result

    def _raw_words(self, line: str, ids_words: list[str]) -> list[str]:
        """The line's own words where the shared ids say <unk> (the raw word, not the placeholder, is scored)."""
        raw = line.split() if self.joiner_ == " " else list(line)
        return raw if len(raw) == len(ids_words) else ids_words

    # ------------------------------------------------------------------------------------------ distributions
    def _context_text(self, context: Sequence[int]) -> str:
        """The raw text a context of shared ids stands for: words joined, ``</s>`` as a newline, ``<s>`` the
        start of a line. Text before a later ``<s>`` is kept, as stream-mode scoring keeps it (a context
        ``<s> a b </s> <s>`` is the text ``a b`` and its newline)."""
        vocab, text = self.vocab, ""
        if (
            vocab.tokenizer is not None
        ):  # subword tokens: their tokenizer joins them (spaces are in the tokens)
            lines, line = [], []
            for t in context:
                if t == vocab.eos_id:
                    lines.append(vocab.tokenizer.detokenize(vocab.decode(line)) + "\n")
                    line = []
                elif t != vocab.bos_id:
                    line.append(t)
            return "".join(lines) + vocab.tokenizer.detokenize(vocab.decode(line))
        for t in context:
            if t == vocab.bos_id:
                if text and not text.endswith("\n"):
                    text += "\n"
            elif t == vocab.eos_id:
                text += "\n"
            else:
                text += (self.joiner_ if text and not text.endswith("\n") else "") + vocab.tokens[t]
        return text

    @torch.no_grad()
    def next_token_logprobs(self, contexts: Sequence[Sequence[int]]) -> np.ndarray:
        """p(word | context) = P(the word's full token sequence follows the context text) for every vocabulary
        word (with its leading space where the context has words before it); ``</s>`` is the newline. The mass
        left over (continuations that are no vocabulary word) goes to ``<unk>``; if overlapping token sequences
        make the sum exceed 1, the row is renormalised instead. ``<s>`` gets 0. Cost: one (batched) forward
        pass per vocabulary word and context — meant for small vocabularies and tasks, not bulk scoring."""
        self._check_fitted()
        vocab = self.vocab
        shared = self._shared_ids()
        if shared is not None:
            return self._shared_next_token_logprobs(contexts, *shared)
        out = np.full((len(contexts), len(vocab)), -np.inf)
        for row, context in enumerate(contexts):
            text = self._context_text(context)
            lead = self.joiner_ if text and not text.endswith("\n") else ""
            pieces = {
                i: self.tokenizer_(lead + w, add_special_tokens=False)["input_ids"]
                for i, w in enumerate(vocab.tokens)
                if i > 2
            }
            pieces[vocab.eos_id] = self.tokenizer_("\n", add_special_tokens=False)["input_ids"]
            ctx_ids = [
                self.begin_id_,
                *(self.tokenizer_(text, add_special_tokens=False)["input_ids"] if text else []),
            ]
            # the longest context that leaves room in the window for every word's pieces
            ctx_ids = ctx_ids[-max(self.window_ - max(len(p) for p in pieces.values()), 1) :]
            logp = np.full(len(vocab), -np.inf)
            items = [(i, p) for i, p in pieces.items() if p]
            for b in range(0, len(items), 64):
                batch = items[b : b + 64]
                seqs = [ctx_ids + p for _, p in batch]
                longest = max(len(x) for x in seqs)
                x = torch.full((len(seqs), longest), self.begin_id_, dtype=torch.long)
                attn = torch.zeros((len(seqs), longest), dtype=torch.long)
                for r, seq in enumerate(seqs):  # right padding: causal attention never looks at it
                    x[r, : len(seq)] = torch.tensor(seq)
                    attn[r, : len(seq)] = 1
                logits = self.hf_model_(
                    input_ids=x.to(self.device_), attention_mask=attn.to(self.device_)
                ).logits
                lp = torch.log_softmax(logits.double(), dim=-1).cpu()  # (B, T, V_hf)
                for r, (i, p) in enumerate(batch):
                    positions = torch.arange(len(ctx_ids) - 1, len(ctx_ids) - 1 + len(p))
                    logp[i] = float(lp[r, positions, torch.tensor(p)].sum())
            total = float(np.exp(logp[np.isfinite(logp)]).sum())
            if total < 1.0:
                logp[vocab.unk_id] = np.log1p(-total)
            else:
                logp = logp - np.log(total)
            logp[vocab.bos_id] = -np.inf
            out[row] = logp
        return out

    def _shared_ids(self) -> tuple[np.ndarray, int] | None:
        """Where the shared vocabulary is this model's own tokenizer's (``[corpus] tokenizer = "hf:..."``):
        each shared id's model id (-1 for the specials and the newline token, whose mass is ``</s>``'s) and the
        newline's id; else None."""
        vocab = self.vocab
        if vocab.tokenizer is None:
            return None
        own = self.tokenizer_.get_vocab()
        ids = np.array([own.get(t, -1) for t in vocab.tokens], dtype=np.int64)
        newline = self.tokenizer_("\n", add_special_tokens=False)["input_ids"]
        if (ids[3:] < 0).any() or len(newline) != 1:
            return None
        ids[:3] = -1
        ids[ids == newline[0]] = -1
        return ids, newline[0]

    @torch.no_grad()
    def _shared_next_token_logprobs(
        self, contexts: Sequence[Sequence[int]], ids: np.ndarray, newline: int
    ) -> np.ndarray:
        """One forward pass per context: the model's own next-token distribution on the shared ids."""
        out = np.full((len(contexts), len(self.vocab)), -np.inf)
        known = ids >= 0
        for row, context in enumerate(contexts):
            text = self._context_text(context)
            ctx = [
                self.begin_id_,
                *(self.tokenizer_(text, add_special_tokens=False)["input_ids"] if text else []),
            ]
            x = torch.tensor([ctx[-self.window_ :]], dtype=torch.long, device=self.device_)
            lp = torch.log_softmax(self.hf_model_(input_ids=x).logits[0, -1].double(), dim=-1).cpu().numpy()
            out[row, known] = lp[ids[known]]
            out[row, self.vocab.eos_id] = lp[newline]
            rest = 1.0 - float(np.exp(out[row][np.isfinite(out[row])]).sum())
            if rest > 0:  # the model's own special tokens: no shared word
                out[row, self.vocab.unk_id] = np.log(rest)
        return out

    # ------------------------------------------------------------------------------------------ size, I/O
    def num_parameters(self) -> int:
        self._check_fitted()
        return sum(p.numel() for p in self.hf_model_.parameters())

    def save(self, path: str | Path) -> None:
        """``path`` (JSON: config + vocabulary) and ``path.hf/`` (save_pretrained: safetensors + tokenizer)."""
        self._check_fitted()
        path = Path(path)
        folder = path.with_name(path.name + ".hf")
        self.hf_model_.save_pretrained(folder)
        self.tokenizer_.save_pretrained(folder)
        atomic_write_text(
            path, json.dumps({"config": self.config(), "vocab": self.vocab.tokens, "weights": folder.name})
        )

    @classmethod
    def load(cls, path: str | Path) -> PretrainedLM:
        path = Path(path)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: not an lmbench pretrained-model file ({e})") from None
        # "family": the key in files written before the class attribute was named "backend"
        config = {k: v for k, v in meta["config"].items() if k not in ("backend", "family")}
        original = config["name_or_path"]
        config["name_or_path"] = str(path.with_name(meta["weights"]))
        model = cls(**config)
        model._setup(Vocabulary(meta["vocab"]))
        model.name_or_path = original
        return model
