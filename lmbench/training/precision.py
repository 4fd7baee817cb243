"""Training precision: which autocast dtype a neural model trains under, and whether the device runs it natively.

Mixed precision (Micikevicius et al. 2018) runs the network's matrix work in a 16-bit type while the master
weights, the optimiser state, the loss, every log-softmax and every scored log-probability stay float32, so
evaluation does not depend on the precision beyond training noise. bfloat16 keeps float32's exponent range and
needs no loss scaling; float16 does (a gradient scaler), and is offered on CUDA only.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from lmbench.errors import ConfigError

PrecisionName = Literal["auto", "float32", "bfloat16", "float16"]  # the setting's values
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX): there oneDNN's bf16 matrix
    products run ~3x faster than float32; elsewhere bf16 is emulated and slower than float32."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
        for line in text.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return bool(flags & {"avx512_bf16", "amx_bf16"})
        return False
    return False  # macOS/Windows: no portable way to ask; float32 is the safe choice


def native_bf16(device: torch.device) -> bool:
    """Does ``device`` run bfloat16 matrix work natively?"""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


@dataclass(frozen=True)
class Precision:
    """A resolved precision: the name a run trains in, the autocast dtype (``None``: plain float32) and why."""

    name: str
    dtype: torch.dtype | None
    reason: str

    @property
    def scaled(self) -> bool:
        """float16 needs a gradient scaler (its range underflows small gradients); bfloat16 does not."""
        return self.dtype is torch.float16

    def describe(self) -> str:
        return f"precision: {self.name} ({self.reason})"


def precision_problem(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (one line), or ``None`` when it can."""
    if precision not in PRECISIONS:
        return f"expected one of {', '.join(PRECISIONS)}, got {precision!r}"
    if precision == "float16" and device.type != "cuda":
        return f"float16 trains on CUDA only (with a gradient scaler); this model trains on {device.type}: use 'bfloat16', 'float32' or 'auto'"
    if precision == "bfloat16" and not native_bf16(device):
        where = (
            "this CPU has neither AVX512-BF16 nor AMX"
            if device.type == "cpu"
            else f"{device} has no bfloat16"
        )
        return f"bfloat16 is not native here ({where}): it would be emulated, slower than float32; use 'float32' or 'auto'"
    return None


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """``auto``: bfloat16 autocast where ``device`` runs it natively, float32 elsewhere; an explicit choice is
    checked against the device (:class:`ConfigError` when it cannot run there)."""
    problem = precision_problem(precision, device)
    if problem:
        raise ConfigError(f"precision: {problem}")
    if precision == "auto":
        if native_bf16(device):
            what = "AVX512-BF16/AMX" if device.type == "cpu" else "native bf16"
            return Precision("bfloat16", torch.bfloat16, f"auto: {device.type} has {what}")
        return Precision("float32", None, f"auto: {device.type} has no native bfloat16")
    if precision == "float32":
        return Precision("float32", None, "as configured")
    return Precision(precision, DTYPES[precision], "as configured")
