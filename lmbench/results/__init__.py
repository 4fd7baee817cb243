"""The typed results of a run: row records (:mod:`~lmbench.results.records`), :class:`RunResults` and its
parts (:mod:`~lmbench.results.run`), and ``results.json``, their one serialisation
(:mod:`~lmbench.results.store`).

>>> row = TaskRow("kn5", "minimal-pairs", "accuracy", 0.75, n=4, corruption="swap", distance=4)
>>> row.group()
'swap · d=4'
>>> TaskRow.from_dict({**row.to_dict(), "unknown": 1}) == row
True
>>> Sample("kn5", "A0 w01", "w02 Z0").text
'A0 w01 ⟶ w02 Z0'
>>> main_view([CombinedRow(model="a", split="valid", context="stream", perplexity=9.0),
...            CombinedRow(model="a", split="test", context="stream", perplexity=9.5)])
('test', 'stream')
>>> RunResults.from_dict(RunResults(experiment="x").to_dict()) == RunResults(experiment="x")
True
"""

from lmbench.results.records import (
    LEGACY_SAMPLE_METRIC,
    LM_EVAL_COLUMNS,
    RESULT_COLUMNS,
    SAMPLE_ARROW,
    SAMPLE_COLUMNS,
    SEED_COLUMNS,
    TASK_COLUMNS,
    TASK_TIME_COLUMNS,
    TIMING_COLUMNS,
    Record,
    ResultRow,
    Sample,
    TaskResults,
    TaskRow,
    main_view,
)
from lmbench.results.run import (
    AttentionExample,
    CombinedRow,
    CurveBaseline,
    CurvePoint,
    EntropyFloor,
    ModelInfo,
    Provenance,
    Reference,
    RunResults,
    SearchLimit,
    SearchSpent,
    SearchSummary,
    SearchTrial,
    WordBucket,
)
from lmbench.results.store import READABLE_VERSIONS, SCHEMA_VERSION, json_restore, json_safe

__all__ = [
    "LEGACY_SAMPLE_METRIC", "LM_EVAL_COLUMNS", "READABLE_VERSIONS", "RESULT_COLUMNS", "SAMPLE_ARROW",
    "SAMPLE_COLUMNS", "SCHEMA_VERSION", "SEED_COLUMNS", "TASK_COLUMNS", "TASK_TIME_COLUMNS", "TIMING_COLUMNS",
    "AttentionExample", "CombinedRow", "CurveBaseline", "CurvePoint", "EntropyFloor", "ModelInfo",
    "Provenance", "Record", "Reference", "ResultRow", "RunResults", "Sample", "SearchLimit", "SearchSpent", "SearchSummary", "SearchTrial",
    "TaskResults", "TaskRow", "WordBucket", "json_restore", "json_safe", "main_view",
]  # fmt: skip
