"""Back-ends by name: configs and the CLI create models through here. A new family is one line below."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from lmbench.errors import ConfigError
from lmbench.models.base import LanguageModel

# name -> ("module:Class", preset hyper-parameters); imported lazily so the n-gram family needs no torch.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "ngram": ("lmbench.models.ngram.model:NgramLM", {}),
    "rnn": ("lmbench.models.rnn:RecurrentLM", {"cell": "rnn"}),
    "gru": ("lmbench.models.rnn:RecurrentLM", {"cell": "gru"}),
    "lstm": ("lmbench.models.rnn:RecurrentLM", {"cell": "lstm"}),
    "transformer": ("lmbench.models.transformer:TransformerLM", {}),
    "pretrained": ("lmbench.models.pretrained:PretrainedLM", {}),
}


def model_class(name: str) -> type[LanguageModel]:
    """The class registered under ``name``."""
    try:
        module_name, class_name = MODELS[name][0].split(":")
    except KeyError:
        raise ConfigError(
            f"unknown model family {name!r}; expected one of {', '.join(sorted(MODELS))}"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def create_model(name: str, **params: Any) -> LanguageModel:
    """Create an unfitted model of family ``name`` with hyper-parameters ``params``.

    Unknown or bad hyper-parameters raise :class:`ConfigError` naming the key.
    """
    cls = model_class(name)
    signature = inspect.signature(cls.__init__)
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        allowed = [p for p in signature.parameters if p != "self"]
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key {key!r} for family {name!r}; expected some of {', '.join(allowed)}"
                )
    for key, value in MODELS[name][1].items():  # e.g. "lstm" is the recurrent class with cell = "lstm"
        if key in params and params[key] != value:
            raise ConfigError(f"{key}: family {name!r} means {key} = {value!r}, got {params[key]!r}")
    try:
        return cls(**{**MODELS[name][1], **params})
    except TypeError as e:
        raise ConfigError(f"model {name!r}: {e}") from None


def check_settings(name: str, params: dict[str, Any]) -> None:
    """Check ``params`` as the class registered under ``name`` does (unknown keys, its preset, each value's
    range), raising :class:`ConfigError` naming the key. Nothing is kept or fitted: a constructor only stores
    and checks its settings (scikit-learn's rule), so the instance made here is cheap and dropped at once."""
    create_model(name, **params)


def available_models() -> list[str]:
    return sorted(MODELS)
