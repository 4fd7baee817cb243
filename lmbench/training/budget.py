"""How much training a model gets: the one budget every family and the training loop read.

It lives with the training loop (which enforces it) rather than with the models, so that ``models`` may build on
``training`` without ``training`` importing ``models``; :mod:`lmbench.models.base` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmbench.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """How much training a model gets; the first limit reached stops it. Equal budgets make comparisons fair."""

    epochs: float | None = None
    tokens: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        for key in ("epochs", "tokens", "minutes"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
            ):
                raise ConfigError(f"{key}: expected a positive number, got {value!r}")
        if self.tokens is not None and not isinstance(self.tokens, int):
            if not float(self.tokens).is_integer():
                raise ConfigError(f"tokens: expected a whole number of tokens, got {self.tokens!r}")
            object.__setattr__(self, "tokens", int(self.tokens))

    @property
    def unlimited(self) -> bool:
        return self.epochs is None and self.tokens is None and self.minutes is None

    @property
    def kind(self) -> str:
        """``tokens``, ``epochs``, ``minutes`` (or ``+``-joined when several limits are set); ``none`` if empty."""
        kinds = [k for k in ("tokens", "epochs", "minutes") if getattr(self, k) is not None]
        return "+".join(kinds) or "none"

    @property
    def reproducible(self) -> bool:
        """True when the budget ends at the same point on any machine (no wall-clock limit)."""
        return self.minutes is None

    def describe(self) -> str:
        """``tokens=2,000,000`` / ``minutes=3`` / ``epochs=1``: how the budget appears in tables."""
        parts = []
        for key in ("tokens", "epochs", "minutes"):
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{key}={value:,}" if isinstance(value, int) else f"{key}={value:g}")
        return ", ".join(parts) or "none"

    def to_dict(self) -> dict[str, float | int | None]:
        return {"epochs": self.epochs, "tokens": self.tokens, "minutes": self.minutes}
