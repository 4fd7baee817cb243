"""Shared fixtures: small self-written corpora, and real corpora from ../shared (skipped where absent).

Under ``CI=true`` nothing that CI installs or provides may be missing: :func:`require_or_fail` turns the skip of a
test whose outside tool, extra or data folder is absent into a failure, so a broken CI step cannot pass as skips.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import numpy as np
import pytest

from lmbench.data import TokenStream, Vocabulary
from lmbench.data.shared import ENV_VAR, shared_path

# A tiny self-written corpus: enough structure for every smoother, an empty line, repeated words.
TINY_TRAIN = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw a dog",
    "",
    "the mat was red and the log was brown",
    "a dog and a cat sat",
    "the cat was on the log",
]
TINY_TEST = ["the cat sat on the log", "a zebra saw the mat", "", "the dog was red"]


def in_ci() -> bool:
    """True where the environment says CI (``CI=true``, as GitHub Actions, GitLab and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def require_or_fail(available: object, reason: str) -> None:
    """Skip the test with ``reason`` when ``available`` is falsy, or fail it under ``CI=true``: CI installs
    every tool, extra and data folder the suite uses, so there a missing one is a broken CI step, not a skip."""
    if available:
        return
    if in_ci():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_tool(name: str, install: str) -> str:
    """The path of the executable ``name`` (skip, or fail under CI, naming the package that installs it)."""
    path = shutil.which(name)
    require_or_fail(path, f"{name} is not installed ({install})")
    return path  # type: ignore[return-value]


def import_or_fail(module: str, install: str) -> ModuleType:
    """``pytest.importorskip`` that fails under CI: the module, or skip/fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        require_or_fail(False, f"{module} is not installed ({install})")
        raise  # unreachable: require_or_fail skipped or failed


def require_shared(*parts: str):
    """Path under the shared data folder, or skip the test with the reason (fail it under CI)."""
    path = shared_path(*parts)
    require_or_fail(
        path, f"shared data {'/'.join(parts)} not found (set {ENV_VAR} or put ../shared beside the repo)"
    )
    return path


@pytest.fixture
def tiny_vocab() -> Vocabulary:
    return Vocabulary.build([line.split() for line in TINY_TRAIN])


@pytest.fixture
def tiny_train(tiny_vocab) -> TokenStream:
    return TokenStream.from_lines([line.split() for line in TINY_TRAIN], tiny_vocab)


@pytest.fixture
def tiny_test(tiny_vocab) -> TokenStream:
    return TokenStream.from_lines([line.split() for line in TINY_TEST], tiny_vocab)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory):
    """A tiny random GPT-2 and a byte-level BPE tokenizer trained here, saved with save_pretrained: the real
    loading path of the `pretrained` back-end, with no download."""
    import_or_fail("transformers", "the hf extra: pip install -e '.[hf]'")
    import_or_fail("tokenizers", "the hf extra: pip install -e '.[hf]'")
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    bpe = ByteLevelBPETokenizer()
    text = [*TINY_TRAIN, *TINY_TEST] * 20
    bpe.train_from_iterator(text, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
