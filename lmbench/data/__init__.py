"""Corpus loading, tokenizers, the vocabulary and token streams."""

from lmbench.data.corpus import Corpus, TokenizedCorpus, TokenStream, read_text, tokenize_corpus
from lmbench.data.tokenizers import Tokenizer, get_tokenizer
from lmbench.data.vocabulary import BOS, EOS, UNK, Vocabulary

__all__ = [
    "BOS",
    "EOS",
    "UNK",
    "Corpus",
    "TokenStream",
    "TokenizedCorpus",
    "Tokenizer",
    "Vocabulary",
    "get_tokenizer",
    "read_text",
    "tokenize_corpus",
]
