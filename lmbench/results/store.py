"""How ``results.json`` stores :class:`~lmbench.results.run.RunResults` (whose ``to_json`` and ``load`` are the
one place it is written and read): the schema version, inf/nan, and the layouts of earlier versions.

The file carries a ``schema_version``. Files without one (every lmbench before this schema was versioned)
are read through the same reader: their generated samples, stored then as task rows of metric ``"sample"``
with the text in ``detail``, become :class:`~lmbench.results.records.Sample` records. A file of a version
this lmbench does not know is refused with a one-line error naming the file and the versions it reads.
JSON has no inf/nan: they are stored as the strings ``"inf"``, ``"-inf"`` and ``"nan"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lmbench.errors import DataError
from lmbench.results.records import LEGACY_SAMPLE_METRIC, SAMPLE_ARROW, Sample

SCHEMA_VERSION = 1  # raise it when a field is renamed or removed or changes its meaning
READABLE_VERSIONS = (SCHEMA_VERSION,)  # and files without a version (the layout before versioning)


def read_json(path: str | Path) -> Any:
    """The JSON object stored in ``path``; a one-line :class:`~lmbench.errors.DataError` naming the file where
    it is missing, unreadable or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found (expected a report folder written by `lmbench run`)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    except (UnicodeDecodeError, OSError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def today_layout(stored: Any, source: str) -> dict[str, Any]:
    """A stored results object (as ``json.loads`` gives it) in today's layout, without its version: inf and
    nan restored, an unversioned object upgraded (see the module docstring), an unknown version refused."""
    if not isinstance(stored, dict):
        raise DataError(f"{source}: expected the results object written by `lmbench run`, got a JSON "
                        f"{type(stored).__name__}")  # fmt: skip
    stored = json_restore(stored)
    version = stored.pop("schema_version", None)
    if version is None:
        return _upgrade_unversioned(stored)
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise DataError(
            f"{source}: schema_version {version!r} is not one this lmbench ({_lmbench_version()}) reads "
            f"(it reads {readable} and files without a version); a newer lmbench wrote it: upgrade lmbench"
        )
    return stored


def stored_json(values: dict[str, Any]) -> str:
    """The text of ``results.json`` for a results object's values: its schema version, then every field."""
    return json.dumps(json_safe({"schema_version": SCHEMA_VERSION, **values}), indent=2)


def _upgrade_unversioned(stored: dict[str, Any]) -> dict[str, Any]:
    """An unversioned object in today's layout: generated samples kept among the task rows move to
    ``samples`` (after any stored there), as :class:`Sample` objects."""
    tasks = stored.get("tasks")
    if not isinstance(tasks, list):
        return stored
    legacy = [r for r in tasks if isinstance(r, dict) and r.get("metric") == LEGACY_SAMPLE_METRIC]
    if not legacy:
        return stored
    stored["tasks"] = [
        r for r in tasks if not (isinstance(r, dict) and r.get("metric") == LEGACY_SAMPLE_METRIC)
    ]
    stored["samples"] = [*(stored.get("samples") or []), *(_legacy_sample(r).to_dict() for r in legacy)]
    return stored


def _legacy_sample(row: dict[str, Any]) -> Sample:
    """A sample stored by earlier versions as a ``metric = "sample"`` task row, its text in ``detail``."""
    prompt, arrow, continuation = str(row.get("detail") or "").partition(SAMPLE_ARROW)
    if not arrow:  # no arrow: all of it is the continuation
        prompt, continuation = "", prompt
    return Sample(str(row.get("model", "")), prompt, continuation, task=row.get("task") or "generate")


def json_safe(value: Any) -> Any:
    """JSON has no inf/nan: write them as strings that :func:`json_restore` turns back into floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        return json_safe(value.item())
    return value


def json_restore(value: Any) -> Any:
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    if isinstance(value, dict):
        return {k: json_restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_restore(v) for v in value]
    return value


def _lmbench_version() -> str:
    import lmbench

    return lmbench.__version__
