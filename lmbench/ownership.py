"""Which files in a report or runs folder lmbench wrote: a marker with a manifest, so that lmbench replaces
or removes only its own files and never a user's.

A folder lmbench creates (or finds empty) gets ``.lmbench-manifest.json``: what kind of folder it is and the
names of the files lmbench wrote there. A later command replaces or removes only names in that manifest; a
folder lmbench did not make and that holds anything is refused before any work, unless ``--force`` is given,
and even then lmbench only adds its files beside the others: a name it would write that is already taken by a
file it did not write is refused, never replaced. Report folders written by earlier versions (they hold a
``results.json`` and no manifest) are adopted: their files with the names lmbench writes become its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lmbench.errors import ConfigError
from lmbench.io import atomic_write_text

MANIFEST = ".lmbench-manifest.json"
FORCE_FLAG = "--force"

# the files lmbench's report formats write, with the format writing each: files of an earlier version's report
# (no manifest) with these names are adopted, and a foreign file with one of them is refused before any work
# (a format added later records its own files in the manifest as it writes them)
REPORT_FILES = {
    "report.md": "md",
    "report.html": "html",
    "tables.tex": "latex",
    "results.json": "json",
    "results.csv": "csv",
    "results_by_seed.csv": "csv",
    "timings.csv": "csv",
    "tasks.csv": "csv",
    "samples.csv": "csv",
    "search.csv": "csv",
    "headline.png": "png",
    "perplexity_vs_parameters.png": "png",
    "perplexity_vs_time.png": "png",
    "learning_curves.png": "png",
    "minimal_pairs_by_distance.png": "png",
    "perplexity_by_frequency.png": "png",
    "attention.png": "png",
    "search_trials.png": "png",
    "search_sensitivity.png": "png",
}


@dataclass
class Manifest:
    """A folder's ownership record: its kind (``report`` or ``runs``) and the files lmbench wrote there, each
    with the report format that wrote it (so a re-render of that format may replace or remove it)."""

    kind: str
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"lmbench": self.kind, "files": dict(sorted(self.files.items()))}, indent=1) + "\n"


def read_manifest(folder: str | Path) -> Manifest | None:
    """The manifest in ``folder``, or None when there is none (or it is not one lmbench wrote)."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("lmbench"), str):
        return None
    files = data.get("files")
    if isinstance(files, list):
        files = {name: REPORT_FILES.get(name, "") for name in files if isinstance(name, str)}
    if not isinstance(files, dict):
        files = {}
    owned = {k: v if isinstance(v, str) else "" for k, v in files.items() if isinstance(k, str) and _plain(k)}
    return Manifest(data["lmbench"], owned)


def write_manifest(folder: str | Path, manifest: Manifest) -> None:
    atomic_write_text(Path(folder) / MANIFEST, manifest.to_json())


def _plain(name: str) -> bool:
    """A manifest names files directly in its folder: nothing with a separator or a ``..`` is ever touched."""
    return (
        bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    )


def _entries(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"{folder}: cannot list the folder ({e.strerror})") from None


def _refuse_foreign(folder: Path, what: str, foreign: list[str], option: str) -> ConfigError:
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    return ConfigError(
        f"{folder}: the {what} holds files lmbench did not write ({shown}); pick a new or empty folder with "
        f"{option}, or pass {FORCE_FLAG} to write lmbench's files beside them (nothing of yours is replaced "
        "or removed)"
    )


def claim_report_folder(folder: str | Path, *, force: bool = False, option: str = "--output") -> Manifest:
    """Before any work: may lmbench write a report into ``folder``? Returns the files it owns there.

    A new or empty folder, one with lmbench's manifest, or an earlier version's report (``results.json``, no
    manifest) is accepted; any other non-empty folder only with ``force``. In every case a file lmbench does
    not own that has a name a report uses is refused (named), never replaced. Raises :class:`ConfigError`."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: the report folder exists and is a file, expected a folder")
    entries = _entries(folder)
    manifest = read_manifest(folder)
    if manifest is not None and manifest.kind != "report":
        raise ConfigError(
            f"{folder}: this is an lmbench {manifest.kind} folder, not a report folder; pick another {option}"
        )
    if manifest is None:
        manifest = Manifest("report")
        if "results.json" in entries:  # a report of an lmbench without manifests: its report files are ours
            manifest.files = {name: REPORT_FILES[name] for name in entries if name in REPORT_FILES}
        elif entries and not force:
            raise _refuse_foreign(folder, "report folder", entries, option)
    taken = [name for name in entries if name in REPORT_FILES and name not in manifest.files]
    if taken:
        raise ConfigError(
            f"{folder}: {taken[0]} is not a file lmbench wrote and a report writes that name; move it or write "
            "the report to another folder (lmbench never replaces files it did not write)"
        )
    return manifest


def looks_like_runs_folder(entries: Iterable[str], folder: Path) -> bool:
    """A runs folder of an lmbench without manifests: every entry is a model's folder holding the records an
    lmbench run writes first (``identity.json``, ``metrics.json``, a search's ``search.db``), not just any
    ``model.bin``."""
    known = {"identity.json", "metrics.json", "search.db"}  # the files that say a run is lmbench's
    found = False
    for name in entries:
        sub = folder / name
        if not sub.is_dir():
            return False
        inner = set(_entries(sub))
        seeds = [s for s in inner if s.startswith("seed-") and (sub / s).is_dir()]
        for s in seeds:
            inner |= set(_entries(sub / s))
        found |= bool(inner & known)
    return found


def claim_runs_folder(
    folder: str | Path, *, force: bool = False, option: str = "--runs-dir", models: Iterable[str] = ()
) -> bool:
    """Before any work: may lmbench keep its runs in ``folder``? True when it is (or will be) lmbench's own
    (new, empty, marked, or an earlier version's runs); a non-empty folder of anything else is refused unless
    ``force``, and then lmbench writes only inside per-model folders (``models``) that do not exist yet or are
    its own runs. Raises :class:`ConfigError`."""
    folder = Path(folder)
    entries = [e for e in _entries(folder) if e != MANIFEST]
    manifest = read_manifest(folder)
    if manifest is not None:
        if manifest.kind != "runs":
            raise ConfigError(
                f"{folder}: this is an lmbench {manifest.kind} folder, not a runs folder; pick another {option}"
            )
        return True
    if not entries or looks_like_runs_folder(entries, folder):
        return True
    if not force:
        raise _refuse_foreign(folder, "runs folder", entries, option)
    for model in models:
        sub = folder / model
        if sub.exists() and not looks_like_runs_folder([model], folder) and _entries(sub):
            raise ConfigError(
                f"{sub}: holds files lmbench did not write and model '{model}' would keep its run there; move "
                f"them or pick another {option} (lmbench never replaces files it did not write)"
            )
    return False


def mark_runs_folder(folder: str | Path) -> None:
    """Mark a runs folder lmbench made (once it exists), so later commands know it is lmbench's."""
    folder = Path(folder)
    if folder.is_dir() and read_manifest(folder) is None:
        write_manifest(folder, Manifest("runs"))
