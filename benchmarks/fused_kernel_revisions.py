"""The fused output layer (``lmbench.models.output.fused_linear_cross_entropy``) of this checkout against the
same function at another git revision: their outputs must be bit-identical, and their CPU time is compared in
interleaved rounds (so both see the same machine load), single-threaded.

    python benchmarks/fused_kernel_revisions.py --rev 5af1059 [--vocab 33278 --hidden 256 --tokens 1024]

Prints whether loss and gradients are identical (float32 and bfloat16 products; ordinary logits and logits far
above the shared shift, where vocabulary blocks are redone alone), then the median CPU milliseconds per call
of each revision. Used to check that splitting the kernel into helpers (issue 26) cost no speed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import torch

from lmbench.models import output as current

ROOT = Path(__file__).resolve().parents[1]


def module_at(rev: str) -> ModuleType:
    """``lmbench/models/output.py`` as it was at ``rev``, imported under another name."""
    source = subprocess.run(
        ["git", "show", f"{rev}:lmbench/models/output.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "output_at_rev.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("output_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="the git revision to compare with")
    parser.add_argument("--vocab", type=int, default=33278)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)
    other = module_at(args.rev)
    g = torch.Generator().manual_seed(0)
    h = torch.randn(args.tokens, args.hidden, generator=g)
    w = torch.randn(args.vocab, args.hidden, generator=g) * 0.1
    b = torch.randn(args.vocab, generator=g) * 0.1
    t = torch.randint(0, args.vocab, (args.tokens,), generator=g)
    kernels = {
        args.rev: other.fused_linear_cross_entropy,
        "this checkout": current.fused_linear_cross_entropy,
    }
    for dtype in (None, torch.bfloat16):
        for scale in (1.0, 400.0):  # 400: logits far above the shared shift, blocks redone alone
            a, c = (f(h * scale, w, b, t, -1, matmul_dtype=dtype) for f in kernels.values())
            if not all(torch.equal(x, y) for x, y in zip(a, c, strict=True)):
                sys.exit(f"outputs differ (matmul_dtype {dtype}, logit scale {scale})")
    print(
        "loss and gradients bit-identical (float32 and bfloat16 products; shared shift and blocks redone alone)"
    )
    for dtype in (None, torch.bfloat16):
        times: dict[str, list[float]] = {name: [] for name in kernels}
        for r in range(args.rounds):
            order = list(kernels.items()) if r % 2 == 0 else list(kernels.items())[::-1]
            for name, kernel in order:
                start = time.process_time()
                kernel(h, w, b, t, -1, matmul_dtype=dtype)
                times[name].append(time.process_time() - start)
        medians = ", ".join(f"{name} {statistics.median(v) * 1e3:.1f} ms" for name, v in times.items())
        label = "bfloat16" if dtype else "float32"
        print(f"V={args.vocab} H={args.hidden} N={args.tokens} {label} products: median CPU time {medians}")


if __name__ == "__main__":
    main()
