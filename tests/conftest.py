"""Shared fixtures: small self-written corpora, and real corpora from ../shared (skipped where absent)."""

from __future__ import annotations

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


def require_shared(*parts: str):
    """Path under the shared data folder, or skip the test with the reason."""
    path = shared_path(*parts)
    if path is None:
        pytest.skip(
            f"shared data {'/'.join(parts)} not found (set {ENV_VAR} or put ../shared beside the repo)"
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
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
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
