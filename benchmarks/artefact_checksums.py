"""What recording and verifying an artefact's sha256 costs: writing a file of each size through
``lmbench.io.atomic_path`` (no record) and through ``lmbench.checksums.recorded_path`` (record), and verifying it,
in seconds and MiB/s. A training checkpoint is written every ``checkpoint_seconds`` (120 s by default) and verified
once per resume; a model file once when written and once per reuse.

    python benchmarks/artefact_checksums.py [--sizes 16 256 1024] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from lmbench import checksums
from lmbench.io import atomic_path


def best_of(repeat: int, work) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 256, 1024], help="file sizes in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'MiB':>6} {'write s':>9} {'write+record s':>15} {'verify s':>9} {'verify MiB/s':>13}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.bin"
        for size in args.sizes:
            data = os.urandom(size << 20)

            def plain(data: bytes = data) -> None:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)

            def recorded(data: bytes = data) -> None:
                with checksums.recorded_path(path) as tmp:
                    tmp.write_bytes(data)

            write = best_of(args.repeat, plain)
            write_record = best_of(args.repeat, recorded)
            verify = best_of(args.repeat, lambda: checksums.verify(path))
            print(f"{size:>6} {write:>9.3f} {write_record:>15.3f} {verify:>9.3f} {size / verify:>13.0f}")


if __name__ == "__main__":
    main()
