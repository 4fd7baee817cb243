"""Back-ends by name: configs and the CLI create models through here. The families themselves live in
:data:`lmbench.models.family.FAMILIES` (a new family is one module in :mod:`lmbench.models.families`, or an
installed package's entry point in the ``lmbench.families`` group)."""

from __future__ import annotations

import inspect
from typing import Any

from lmbench.errors import ConfigError
from lmbench.models.base import LanguageModel
from lmbench.models.family import FAMILIES, Family

# the name older code and tests use; ``MODELS[name] = ("module:Class", preset)`` still registers a family
MODELS = FAMILIES


def registered_family(name: str) -> Family:
    """The family registered under ``name``, or a one-line :class:`ConfigError` listing the known ones."""
    if name in FAMILIES:
        return FAMILIES[name]
    if isinstance(name, str) and name in FAMILIES.broken:
        return FAMILIES.lookup(name)  # raises, naming the plugin that failed to load
    raise ConfigError(f"unknown model family {name!r}; expected one of {', '.join(available_models())}")


def model_class(name: str) -> type[LanguageModel]:
    """The class registered under ``name``."""
    return registered_family(name).model_class()


def create_model(name: str, **params: Any) -> LanguageModel:
    """Create an unfitted model of family ``name`` with hyper-parameters ``params``.

    Unknown or bad hyper-parameters raise :class:`ConfigError` naming the key.
    """
    preset = registered_family(name).preset
    cls = model_class(name)
    signature = inspect.signature(cls.__init__)
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        allowed = [p for p in signature.parameters if p != "self"]
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"unknown key {key!r} for family {name!r}; expected some of {', '.join(allowed)}"
                )
    for key, value in preset.items():  # e.g. "lstm" is the recurrent class with cell = "lstm"
        if key in params and params[key] != value:
            raise ConfigError(f"{key}: family {name!r} means {key} = {value!r}, got {params[key]!r}")
    try:
        return cls(**{**preset, **params})
    except TypeError as e:
        raise ConfigError(f"model {name!r}: {e}") from None


def check_settings(name: str, params: dict[str, Any]) -> None:
    """Check ``params`` as the class registered under ``name`` does (unknown keys, its preset, each value's
    range), raising :class:`ConfigError` naming the key. Nothing is kept or fitted: a constructor only stores
    and checks its settings (scikit-learn's rule), so the instance made here is cheap and dropped at once."""
    create_model(name, **params)


def available_models() -> list[str]:
    return sorted(FAMILIES)
