"""Built-in experiment configs (`lmbench demo`, `lmbench evolution`), shipped with the package."""

from __future__ import annotations

from pathlib import Path

PRESETS_DIR = Path(__file__).parent


def preset_path(name: str) -> Path:
    return PRESETS_DIR / f"{name}.toml"
