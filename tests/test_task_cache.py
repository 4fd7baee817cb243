"""Task results are cached by identity like scores: a re-run reuses them (and writes the same tasks.csv byte for
byte), and a changed task option or input file recomputes exactly the items it touches, saying why."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from lmbench.cli import main
from tests.test_classify_vocabulary import _write, spam_ham

CONFIG = """name = "cached"
[corpus]
name = "synthetic"
[[model]]
name = "kn2"
family = "ngram"
order = 2
[[model]]
name = "kn3"
family = "ngram"
order = 3
[evaluate]
bootstrap = 20
[tasks.next-word]
max_tokens = 300
[tasks.classify]
train = "train.csv"
test = "test.csv"
text_column = "message"
label_column = "category"
{extra}
[tasks.generate]
samples = 2
max_tokens = 5
reference = "kn3"
[report]
formats = ["md", "csv", "json"]
"""


def _project(root: Path, extra: str = "") -> None:
    train, test = spam_ham(n_train=300, n_test=100)
    _write(root / "train.csv", train)
    _write(root / "test.csv", test)
    (root / "exp.toml").write_text(CONFIG.format(extra=extra))


def _run(root: Path) -> list[str]:
    old = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(main, ["run", "exp.toml", "-o", "out"], catch_exceptions=False)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return [
        line
        for line in result.output.splitlines()
        if " · " in line and (": reused" in line or ": computed" in line)
    ]


def test_a_rerun_reuses_every_task_item_and_writes_the_same_tasks_csv(tmp_path):
    _project(tmp_path)
    first = _run(tmp_path)
    items = {"next-word · kn2", "next-word · kn3", "classify · baselines", "classify · kn2", "classify · kn3",
             "generate · kn2", "generate · kn3"}  # fmt: skip
    assert {line.split(":")[0] for line in first} == items and all("computed (first run)" in x for x in first)
    tasks_csv = (tmp_path / "out" / "tasks.csv").read_bytes()
    assert b"train_seconds" not in tasks_csv.splitlines()[0]  # machine times go to timings.csv
    assert b"classify" in (tmp_path / "out" / "timings.csv").read_bytes()
    again = _run(tmp_path)
    assert {line.split(":")[0] for line in again} == items and all(": reused" in x for x in again)
    assert (tmp_path / "out" / "tasks.csv").read_bytes() == tasks_csv


def test_a_changed_option_or_file_recomputes_what_it_touches(tmp_path):
    _project(tmp_path)
    _run(tmp_path)
    (tmp_path / "exp.toml").write_text(CONFIG.format(extra="max_test = 50"))
    lines = dict(line.split(": ", 1) for line in _run(tmp_path))
    for item in ("classify · baselines", "classify · kn2", "classify · kn3"):
        assert lines[item].startswith("computed (max_test none -> 50)"), lines[item]
    assert all(lines[i].startswith("reused") for i in ("next-word · kn2", "generate · kn3"))
    rows = (tmp_path / "train.csv").read_text().splitlines()
    (tmp_path / "train.csv").write_text("\n".join(rows[:-5]) + "\n")  # the training file changes
    lines = dict(line.split(": ", 1) for line in _run(tmp_path))
    assert lines["classify · kn2"].startswith("computed (train.csv changed)"), lines["classify · kn2"]
    assert lines["next-word · kn3"].startswith("reused")
    # the reference model joins generate's identity: kn2's samples are scored under kn3
    (tmp_path / "exp.toml").write_text(
        CONFIG.format(extra="max_test = 50").replace('reference = "kn3"', 'reference = "kn2"')
    )
    lines = dict(line.split(": ", 1) for line in _run(tmp_path))
    assert lines["generate · kn3"].startswith("computed ("), lines["generate · kn3"]


def _count_opens(monkeypatch, paths: list[Path]) -> dict[str, int]:
    """How often each of ``paths`` is opened from now on (``open``, ``io.open``: what Path.read_* use too)."""
    import builtins
    import io

    real = io.open
    watched = {str(p.resolve()): p.name for p in paths}
    counts = dict.fromkeys(watched.values(), 0)

    def counting(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and str(Path(file).resolve()) in watched:
            counts[watched[str(Path(file).resolve())]] += 1
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting)
    monkeypatch.setattr(io, "open", counting)
    return counts


def test_each_task_file_is_read_once_per_run_and_identified_by_the_bytes_read(tmp_path, monkeypatch):
    """A task's input files are read once, when the config is checked before any training: every model's item
    and the cache's identity use that reading (two models, a labelled train and test file and a pair file)."""
    from lmbench.tasks import validate_tasks
    from lmbench.tasks.cache import file_sha256

    _project(tmp_path)
    (tmp_path / "pairs.jsonl").write_text('{"good": "win cash now", "bad": "now cash win"}\n' * 3)
    config = (tmp_path / "exp.toml").read_text()
    (tmp_path / "exp.toml").write_text(
        config + '[tasks.minimal-pairs]\nsentences = 5\nfiles = ["pairs.jsonl"]\n'
    )
    files = [tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "pairs.jsonl"]
    counts = _count_opens(monkeypatch, files)
    first = _run(tmp_path)
    assert counts == {"train.csv": 1, "test.csv": 1, "pairs.jsonl": 1}
    assert any(line.startswith("minimal-pairs · kn3: computed") for line in first)
    again = _run(tmp_path)  # the cache's identity is the sha256 of what was read: the same as the file's
    assert counts == {"train.csv": 2, "test.csv": 2, "pairs.jsonl": 2}
    assert again and all(": reused" in line for line in again)
    monkeypatch.undo()
    inputs = validate_tasks({"minimal-pairs": {"files": [str(files[2])]}}, ["kn2"])["minimal-pairs"]
    assert inputs[str(files[2])].sha256 == file_sha256(files[2])
