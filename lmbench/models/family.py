"""Model families: the name a config's ``family`` key uses, the class behind it, and how reports and the explorer
describe it. Every family - lmbench's own and those of installed packages - is one :class:`Family` in
:data:`FAMILIES`.

lmbench's families are declared in the modules of :mod:`lmbench.models.families` (a new module there is found
without editing anything else); a package adds one through the ``lmbench.families`` entry-point group, naming a
:class:`Family` or simply its :class:`~lmbench.models.base.LanguageModel` subclass. A family record is cheap to
import: its class is named ``"module:Class"`` and imported only when a model is built, so listing the families
(config checks, ``--help``) loads no torch.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lmbench.models.base import LanguageModel
from lmbench.registry import PluginError, Registry

STEP_OF_SIZE = "The change is one of size or training, not of kind"  # why, for two models of one family


@dataclass(frozen=True)
class Family:
    """One model family and its words. A subclass overrides the methods where a family says more than its
    fields (the n-gram family reads order and smoothing from the settings).

    Everything but ``name`` and ``model`` is optional: a family without words is described by its name."""

    name: str
    model: str | type[LanguageModel]  # the class, or "module:Class" imported on first use
    preset: Mapping[str, Any] = field(default_factory=dict)  # settings the name fixes (lstm: cell = "lstm")
    generation: int | None = None  # place in the order model generations were invented (n-grams first)
    ladder: bool = True  # a model of it can be a step of a report's ladder of generations (with a generation)
    adds: str = ""  # what it brings over the step before it (a sentence)
    from_counts: str = ""  # said before ``adds`` where the step before is a counting family
    why: str = ""  # why that should lower perplexity, for any corpus (a clause, no full stop)
    synthetic: str = ""  # the same reason in terms of the synthetic corpus's construction (appended there)
    counts: bool = False  # trained by counting the data once, not by gradient steps
    without_budget: str = (
        ""  # how it trains where no budget is given (", trained on N tokens (counted once)")
    )
    compute: str = ""  # its training compute where no FLOPs are recorded

    def model_class(self) -> type[LanguageModel]:
        """The class that implements the family (imported now where it was named by a string)."""
        if not isinstance(self.model, str):
            return self.model
        module, _, name = self.model.partition(":")
        return getattr(importlib.import_module(module), name)

    def describe(self, name: str, config: Mapping[str, Any]) -> str:
        """A short noun phrase for a model of this family with settings ``config`` (``name``: the model's)."""
        return f"a {self.name} model"

    def changes(self, before: Mapping[str, Any], config: Mapping[str, Any]) -> str:
        """What changed from a model of this family with settings ``before`` to one with ``config``."""
        return "Same family as the previous model, with other settings."

    def why_change(self, before: Mapping[str, Any], config: Mapping[str, Any]) -> str:
        """Why the change from ``before`` to ``config`` (both of this family) should help."""
        return STEP_OF_SIZE

    def adds_after(self, before: Family) -> str:
        """What a model of this family adds over one of family ``before``."""
        if not self.adds:
            return f"The family changes from {before.name} to {self.name}."
        return f"{self.from_counts} {self.adds}" if before.counts and self.from_counts else self.adds

    def why_text(self, *, synthetic: bool) -> str:
        """Why a step to this family should help: the corpus-neutral reason, and on the synthetic corpus the
        construction it targets."""
        if not self.why:
            return STEP_OF_SIZE
        return f"{self.why} ({self.synthetic})" if synthetic and self.synthetic else self.why

    def window(self, config: Mapping[str, Any]) -> int | None:
        """How many words a model with settings ``config`` sees at most (n-grams: the order); None: no
        fixed limit that the reports should name."""
        return None


def _adapt(name: str, obj: Any) -> Family:
    """A registry entry: a :class:`Family`, a LanguageModel subclass (a family without words), or the
    ``("module:Class", preset)`` pair older code and tests register."""
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str):
        return Family(name, obj[0], dict(obj[1]))
    if isinstance(obj, type) and issubclass(obj, LanguageModel):
        return Family(name, obj)
    if not isinstance(obj, Family):
        raise PluginError(f"expected a Family or a LanguageModel subclass, got {type(obj).__name__}")
    if obj.name != name:
        raise PluginError(f"the family is named {obj.name!r}, not {name!r}")
    return obj


def _collect(module: Any) -> dict[str, Family]:
    return {f.name: f for f in vars(module).values() if isinstance(f, Family)}


FAMILIES: Registry[Family] = Registry(
    "model family",
    "lmbench.families",
    builtins="lmbench.models.families",
    collect=_collect,
    adapt=_adapt,
    order=lambda f: f.generation if f.generation is not None else math.inf,  # the ladder's order
)


def family_named(name: str | None) -> Family:
    """The registered family ``name``, or a family with no words of its own (results of a family whose
    package is not installed here still render)."""
    if name in FAMILIES:
        return FAMILIES[name]
    return Family(str(name), "")


def ladder_rank(name: str | None) -> int | None:
    """Where family ``name`` stands among the model generations (None: not a step of a ladder)."""
    family = family_named(name)
    return family.generation if family.ladder else None
