"""Subword vocabularies: a byte-level BPE trained on the training split, or a pretrained ``tokenizer.json``.

``[corpus] tokenizer = "bpe"`` (with ``vocab_size``) trains a byte-level BPE with Hugging Face ``tokenizers``
on the training split only; ``tokenizer = "hf:PATH/tokenizer.json"`` reads a pretrained one (GPT-2's, say), so
n-grams, neural models and that pretrained causal LM share one vocabulary. Either way the vocabulary is the
tokenizer's whole vocabulary (``<unk>``, ``<s>``, ``</s>`` first, then its tokens in id order), so a byte-level
tokenizer has no out-of-vocabulary tokens at all. A line is still one sentence: the newline is ``</s>``, never
a subword token.

A trained BPE is cached by identity (the training text's sha256 and the settings) under
``$LMBENCH_CACHE/tokenizers`` (default ``~/.cache/lmbench/tokenizers``) with the sha256 of the file recorded
beside it; a cached file that does not match its checksum is retrained, never used.

Needs the optional extra: ``pip install -e ".[hf]"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmbench.data.tokenizers import Tokenizer, get_tokenizer
from lmbench.data.vocabulary import SPECIALS, Vocabulary
from lmbench.errors import ConfigError
from lmbench.io import atomic_write_text

BPE = "bpe"
HF_PREFIX = "hf:"
CACHE_ENV = "LMBENCH_CACHE"
DEFAULT_VOCAB_SIZE = 8000
MIN_BPE_VOCAB = 260
BATCH_LINES = 4096  # lines tokenized by one call into the Rust library


def is_subword(spec: str | None) -> bool:
    """Is a ``[corpus] tokenizer`` value a subword tokenizer (``bpe`` or ``hf:PATH``)?"""
    return spec is not None and (spec == BPE or spec.startswith(HF_PREFIX))


def require_tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError("subword tokenizers need the optional extra: pip install -e '.[hf]'") from None
    return tokenizers


class SubwordTokenizer(Tokenizer):
    """A Hugging Face ``tokenizers.Tokenizer`` behind lmbench's tokenizer interface.

    ``tokenize`` gives the tokenizer's own token strings (``Ġthe`` for byte-level BPE), ``spans`` their
    character spans in the line (how a pretrained LM's scores are mapped onto them), ``detokenize`` the text.
    """

    name = "subword"
    subword = True

    def __init__(self, backend: Any, *, spec: str, source: str = ""):
        self._backend = backend
        self.spec = spec  # the [corpus] tokenizer value: "bpe" or "hf:PATH"
        self.source = source or spec  # where it came from, for messages and provenance
        self.json = backend.to_str()
        self.sha256 = hashlib.sha256(self.json.encode("utf-8")).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path, *, spec: str | None = None) -> SubwordTokenizer:
        """A ``tokenizer.json`` (as ``save_pretrained`` writes it); an unreadable one names the file."""
        path = Path(path).expanduser()
        tokenizers = require_tokenizers()
        try:
            backend = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:  # the Rust library raises a bare Exception for every kind of problem
            why = "file not found" if not path.exists() else str(e).splitlines()[0][:160] or type(e).__name__
            raise ConfigError(f"{path}: cannot read a tokenizer.json ({why})") from None
        return cls(backend, spec=spec or f"{HF_PREFIX}{path}", source=str(path))

    @classmethod
    def from_json(cls, text: str, *, spec: str, source: str = "") -> SubwordTokenizer:
        return cls(require_tokenizers().Tokenizer.from_str(text), spec=spec, source=source)

    def __repr__(self) -> str:
        return f"SubwordTokenizer({self.spec!r}, size={self._backend.get_vocab_size()})"

    @property
    def label(self) -> str:
        """A short name for tables and provenance: ``bpe-8000`` or the pretrained file's folder."""
        if self.spec == BPE:
            return f"bpe-{self._backend.get_vocab_size()}"
        return self.spec

    def tokenize(self, line: str) -> list[str]:
        return self._backend.encode(line, add_special_tokens=False).tokens

    def tokenize_lines(self, lines: Sequence[str]) -> list[list[str]]:
        """Many lines in one call (the library tokenizes them in parallel)."""
        return [e.tokens for e in self._backend.encode_batch(list(lines), add_special_tokens=False)]

    def spans(self, line: str) -> list[tuple[int, int]]:
        """Character span of each token of ``line`` (two tokens of one multi-byte character share it)."""
        return [tuple(o) for o in self._backend.encode(line, add_special_tokens=False).offsets]

    def detokenize(self, tokens: list[str]) -> str:
        ids = [self._backend.token_to_id(t) for t in tokens]
        return self._backend.decode([i for i in ids if i is not None], skip_special_tokens=False)

    def vocabulary(self) -> Vocabulary:
        """The tokenizer's whole vocabulary after lmbench's specials (its own ``<unk>``/``<s>``/``</s>``, if it
        has them, are those entries), so every token it can produce has an id."""
        tokens = list(SPECIALS)
        for i in range(self._backend.get_vocab_size(with_added_tokens=True)):
            token = self._backend.id_to_token(i)
            if token is not None and token not in SPECIALS:
                tokens.append(token)
        vocab = Vocabulary(list(dict.fromkeys(tokens)))
        vocab.tokenizer = self
        return vocab

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.json)


def cache_dir() -> Path:
    """Where trained BPE tokenizers are kept: ``$LMBENCH_CACHE/tokenizers``, else ``~/.cache/lmbench/tokenizers``."""
    root = (
        os.environ.get(CACHE_ENV)
        or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "lmbench"
    )
    return Path(root) / "tokenizers"


def train_bpe(
    lines: Sequence[str], *, vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = 2, cache: bool = True
) -> SubwordTokenizer:
    """A byte-level BPE trained on ``lines`` (the training split), from the cache when one of the same identity
    (text sha256 + settings + library version) is there and intact."""
    tokenizers = require_tokenizers()
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    identity = {"text_sha256": digest.hexdigest(), "vocab_size": vocab_size, "min_frequency": min_frequency,
                "kind": "byte-level-bpe", "tokenizers": tokenizers.__version__}  # fmt: skip
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_dir() / f"bpe-{key}.json"
    if cache:
        cached = _read_cached(path)
        if cached is not None:
            return SubwordTokenizer.from_json(cached, spec=BPE, source=str(path))
    from tokenizers import decoders, models, pre_tokenizers, trainers

    backend = tokenizers.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no text is out of vocabulary
        special_tokens=[],
        show_progress=False,
    )
    backend.train_from_iterator(lines, trainer, length=len(lines))
    tokenizer = SubwordTokenizer(backend, spec=BPE, source=str(path))
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tokenizer.save(path)
            atomic_write_text(path.with_suffix(".sha256"), tokenizer.sha256 + "\n")
        except OSError:
            pass  # a read-only cache costs a retraining next time, nothing more
    return tokenizer


def _read_cached(path: Path) -> str | None:
    """The cached tokenizer's JSON if it is there and matches the checksum written with it; else None."""
    try:
        text = path.read_text(encoding="utf-8")
        recorded = path.with_suffix(".sha256").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if hashlib.sha256(text.encode("utf-8")).hexdigest() == recorded else None


def make_subword_tokenizer(
    spec: str, train_lines: Sequence[str], *, vocab_size: int | None = None
) -> SubwordTokenizer:
    """The tokenizer a ``[corpus] tokenizer`` value names: ``bpe`` trained on ``train_lines``, or ``hf:PATH``."""
    if spec == BPE:
        return train_bpe(train_lines, vocab_size=vocab_size or DEFAULT_VOCAB_SIZE)
    return SubwordTokenizer.from_file(hf_tokenizer_path(spec), spec=spec)


def hf_tokenizer_path(spec: str, base: Path | None = None) -> Path:
    """The file of an ``hf:PATH`` value, relative paths against ``base``; a folder means its tokenizer.json."""
    path = Path(spec[len(HF_PREFIX) :]).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return path / "tokenizer.json" if path.is_dir() else path


def subword_identity(tokenizer: Tokenizer) -> dict[str, str]:
    """What a run's fingerprint records of a subword tokenizer (its file's sha256); nothing for a word one."""
    sha = getattr(tokenizer, "sha256", None)
    return {"tokenizer_sha256": sha} if sha else {}


def folder_tokenizer(folder: str | Path, recorded: str) -> Tokenizer:
    """The tokenizer a run folder's text was cut with: its own ``tokenizer.json`` (a subword run), else the
    tokenizer it recorded by name."""
    path = Path(folder) / "tokenizer.json"
    if path.is_file():
        return SubwordTokenizer.from_file(path, spec=recorded)
    return tokenizer_from_spec(recorded)


def tokenizer_from_spec(spec: str) -> Tokenizer:
    """A tokenizer by name, or a pretrained one by ``hf:PATH`` (``bpe`` needs training text: a run folder's)."""
    if spec.startswith(HF_PREFIX):
        return SubwordTokenizer.from_file(hf_tokenizer_path(spec), spec=spec)
    if spec == BPE:
        raise ConfigError(
            "tokenizer: 'bpe' is trained per run; give a run folder (its tokenizer.json) or hf:PATH"
        )
    return get_tokenizer(spec)
