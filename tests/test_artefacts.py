"""Artefacts verified on read: every file a run folder caches is recorded with its sha256 when written, and a
damaged one (a flipped byte anywhere, a truncation, a NaN in any tensor or score) is named in one line and
rebuilt, giving the figures of a clean run. Each test here failed before the records existed: a model.bin with
one NaN weight scored next-word accuracy 1.000, a NaN checkpoint resumed into a permanent "diverged", a
metrics.json holding NaN was reused."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

from lmbench import checksums
from lmbench.checksums import Damaged, recorded_path
from lmbench.config import load_config
from lmbench.experiment import run_experiment
from lmbench.models.base import Budget
from lmbench.models.registry import create_model
from lmbench.training.loop import Trainer

from .conftest import require_tool

TRAIN = "\n".join(
    ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "the dog and the cat"] * 8
)
CONFIG = """name = "art"
[corpus]
train = "train.txt"
valid = "valid.txt"
test = "test.txt"
[budget]
tokens = 400
[[model]]
name = "kn2"
family = "ngram"
order = 2
[[model]]
name = "gru"
family = "gru"
emb_size = 8
hidden_size = 8
layers = 1
batch_size = 4
seq_len = 6
warmup_steps = 2
eval_every = 5
[evaluate]
context = ["sentence", "stream"]
bootstrap = 20
"""
FOLDERS = {"kn2": "kn2", "gru": "gru/seed-0"}
ARTEFACTS = [
    (model, name)
    for model in FOLDERS
    for name in ("model.bin", "fit.json", "metrics.json", "logprobs.npz", "identity.json")
] + [("gru", "checkpoint.pt")]
VOLATILE = ("train_seconds", "train_tokens_per_second", "score_tokens_per_second", "peak_rss_mb")


def _project(root):
    for name, text in (
        ("train.txt", TRAIN + "\n"),
        ("valid.txt", "the cat sat on the log\na dog saw the cat\n"),
        ("test.txt", "a dog sat on the mat\nthe cat saw the dog\n"),
    ):
        (root / name).write_text(text)
    (root / "exp.toml").write_text(CONFIG)
    return load_config(root / "exp.toml")


def _run(root, runs):
    said: list[str] = []
    results = run_experiment(_project(root), runs, progress=said.append)
    assert not results.failures, results.failures
    return _figures(results), said


def _figures(results):
    return [{k: v for k, v in row.to_dict().items() if k not in VOLATILE} for row in results.rows_by_seed]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    figures, _ = _run(root, root / "runs")
    return root, figures


def _copy(clean, tmp_path):
    root, figures = clean
    shutil.copytree(root / "runs", tmp_path / "runs")
    return tmp_path / "runs", figures


def _same(a, b):
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN equal to NaN


def test_every_artefact_is_recorded_and_verifies(clean):
    root, _ = clean
    for model, name in ARTEFACTS:
        path = root / "runs" / FOLDERS[model] / name
        assert checksums.verify(path), path  # the record exists and matches
        digest = checksums.record_path(path).read_text().split()[0]
        assert digest == checksums.sha256_of(path)


def test_an_unchanged_rerun_reuses_everything(clean, tmp_path):
    runs, figures = _copy(clean, tmp_path)
    again, said = _run(tmp_path, runs)
    assert _same(again, figures)
    assert all("skipped" in line for line in said if line.startswith(("kn2", "gru")))


@pytest.mark.parametrize("model, name", ARTEFACTS)
@pytest.mark.parametrize("damage", ["flip-start", "flip-middle", "flip-end", "truncate", "empty"])
def test_a_damaged_artefact_is_named_and_rebuilt_to_the_clean_figures(clean, tmp_path, model, name, damage):
    runs, figures = _copy(clean, tmp_path)
    path = runs / FOLDERS[model] / name
    data = bytearray(path.read_bytes())
    if damage.startswith("flip"):
        at = {"flip-start": 0, "flip-middle": len(data) // 2, "flip-end": len(data) - 1}[damage]
        data[at] ^= 0x01
    else:
        data = data[: len(data) // 2] if damage == "truncate" else bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(Damaged, match="checksum mismatch"):
        checksums.verify(path)
    again, said = _run(tmp_path, runs)
    assert _same(again, figures)
    if name not in ("identity.json", "checkpoint.pt"):  # read only when a run is unfinished
        lines = [line for line in said if str(path) in line]
        assert lines and "checksum mismatch" in lines[0], said
    for model_name in FOLDERS:
        for artefact in ("model.bin", "fit.json", "metrics.json", "logprobs.npz"):
            assert checksums.verify(runs / FOLDERS[model_name] / artefact)


def _nan_in_model(path):
    if any(name.endswith("data.pkl") for name in zipfile.ZipFile(path).namelist()):  # a neural model
        payload = torch.load(path, weights_only=True)
        first = next(iter(payload["state_dict"]))
        payload["state_dict"][first].view(-1)[0] = float("nan")
        torch.save(payload, path)
        return
    with np.load(path, allow_pickle=False) as data:  # an n-gram model
        arrays = {k: data[k].copy() for k in data.files}
    arrays["log10prob2"][len(arrays["log10prob2"]) // 2] = np.nan
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _nan_in_logprobs(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k].copy() for k in data.files}
    key = sorted(arrays)[-1]
    arrays[key][-1] = np.nan
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _nan_in_metrics(path):
    payload = json.loads(path.read_text())
    payload["rows"][0]["perplexity"] = float("nan")
    path.write_text(json.dumps(payload))


def _figure_in_metrics(path):
    payload = json.loads(path.read_text())
    payload["rows"][-1]["log_prob"] *= 0.5  # a plausible but wrong figure
    path.write_text(json.dumps(payload))


@pytest.mark.parametrize(
    "model, name, damage, words",
    [
        ("kn2", "model.bin", _nan_in_model, "log10prob2 holds 1 NaN"),
        ("gru", "model.bin", _nan_in_model, "non-finite weight"),
        ("kn2", "logprobs.npz", _nan_in_logprobs, "NaN or +inf"),
        ("gru", "logprobs.npz", _nan_in_logprobs, "NaN or +inf"),
        ("kn2", "metrics.json", _nan_in_metrics, "perplexity is nan"),
        ("gru", "metrics.json", _figure_in_metrics, "log_prob is"),
    ],
)
@pytest.mark.parametrize("record", ["re-recorded", "no record"])
def test_non_finite_weights_and_scores_are_named_even_where_the_checksum_matches(
    clean, tmp_path, model, name, damage, words, record
):
    """A file whose record was rewritten with it (or that predates records) is still checked for what it holds."""
    runs, figures = _copy(clean, tmp_path)
    path = runs / FOLDERS[model] / name
    damage(path)
    if record == "re-recorded":
        checksums.record(path)
    else:
        checksums.record_path(path).unlink()
    again, said = _run(tmp_path, runs)
    assert _same(again, figures)
    lines = [line for line in said if str(path) in line]
    assert lines and words in lines[0], said
    assert "\n" not in lines[0]


def test_a_model_file_with_a_nan_weight_never_loads(clean, tmp_path):
    runs, _ = _copy(clean, tmp_path)
    for model in FOLDERS:
        path = runs / FOLDERS[model] / "model.bin"
        _nan_in_model(path)
        family = "ngram" if model == "kn2" else "gru"
        from lmbench.models.registry import model_class

        with pytest.raises(Damaged, match=str(path)):
            model_class(family).load(path)


# ------------------------------------------------------------------------------------- checkpoints
def _data():
    from lmbench.data import Corpus, get_tokenizer, tokenize_corpus

    return tokenize_corpus(
        Corpus.from_texts("t", TRAIN, "the cat sat", "a dog sat"), get_tokenizer("whitespace")
    )


PARAMS = {"emb_size": 8, "hidden_size": 8, "layers": 1, "batch_size": 4, "seq_len": 6, "warmup_steps": 1}


def _interrupted(data, run_dir, steps=3):
    model = create_model("gru", **PARAMS)
    original = Trainer.__init__

    def stop_early(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.stop_after_steps = steps

    Trainer.__init__ = stop_early
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(data.train, data.valid, budget=Budget(tokens=1500), run_dir=run_dir)
    finally:
        Trainer.__init__ = original


def _nan_weight(path):
    payload = torch.load(path, weights_only=True)
    payload["model"][next(iter(payload["model"]))].view(-1)[0] = float("nan")
    torch.save(payload, path)
    checksums.record(path)  # only the content check can tell


def _nan_moment(path):
    payload = torch.load(path, weights_only=True)
    state = next(iter(payload["optimizer"]["state"].values()))
    state["exp_avg"].view(-1)[-1] = float("inf")
    torch.save(payload, path)
    checksums.record(path)


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(data))


def _older_format(path):
    """A checkpoint whose payload lacks a field this version reads last (as one from an older lmbench would):
    it fails after the RNG state was already restored, so a fresh start must seed the RNG again."""
    payload = torch.load(path, weights_only=True)
    del payload["plateau_scale"]
    torch.save(payload, path)
    checksums.record(path)


@pytest.mark.parametrize(
    "damage, words",
    [
        (_nan_weight, "non-finite"),
        (_nan_moment, "non-finite"),
        (_flip, "checksum mismatch"),
        (_older_format, "does not fit this model"),
    ],
)
def test_a_damaged_checkpoint_trains_again_from_the_start_never_diverged(tmp_path, damage, words):
    data = _data()
    clean = create_model("gru", **PARAMS).fit(
        data.train, data.valid, budget=Budget(tokens=1500), run_dir=tmp_path / "clean"
    )
    run_dir = tmp_path / "run"
    _interrupted(data, run_dir)
    damage(run_dir / "checkpoint.pt")
    resumed = create_model("gru", **PARAMS).fit(
        data.train, data.valid, budget=Budget(tokens=1500), run_dir=run_dir
    )
    assert any(words in note and "training from the start" in note for note in resumed.notes_), resumed.notes_
    for a, b in zip(clean.net_.state_dict().values(), resumed.net_.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert checksums.verify(run_dir / "checkpoint.pt")


def test_a_good_checkpoint_still_resumes_bit_identically(tmp_path):
    data = _data()
    clean = create_model("gru", **PARAMS).fit(
        data.train, data.valid, budget=Budget(tokens=1500), run_dir=tmp_path / "clean"
    )
    _interrupted(data, tmp_path / "run")
    resumed = create_model("gru", **PARAMS).fit(
        data.train, data.valid, budget=Budget(tokens=1500), run_dir=tmp_path / "run"
    )
    assert not resumed.notes_
    for a, b in zip(clean.net_.state_dict().values(), resumed.net_.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------- the record itself
def test_a_kill_between_the_artefact_and_its_record_never_reads_as_damage(tmp_path, monkeypatch):
    """The record lists old and new digests while the rename is pending: either file on disk verifies."""
    path = tmp_path / "a.bin"
    with recorded_path(path) as tmp:
        tmp.write_bytes(b"old")
    real_replace = __import__("os").replace

    def killed(src, dst):
        if str(dst) == str(path):
            raise KeyboardInterrupt  # the process dies just before the artefact's rename
        real_replace(src, dst)

    monkeypatch.setattr("os.replace", killed)
    with pytest.raises(KeyboardInterrupt), recorded_path(path) as tmp:
        tmp.write_bytes(b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old" and checksums.verify(path)
    assert len(checksums.recorded_digests(path)) == 2
    with recorded_path(path) as tmp:
        tmp.write_bytes(b"new")
    assert checksums.recorded_digests(path)[0] == checksums.sha256_of(path)
    path.write_bytes(b"neu")  # bytes lmbench never wrote: damage
    with pytest.raises(Damaged):
        checksums.verify(path)


def test_two_processes_writing_one_artefact_at_once_leave_a_file_that_verifies(tmp_path):
    """Concurrent runs of one experiment write the same run folder: whoever renames last, the file matches."""
    import threading

    path = tmp_path / "metrics.json"
    failures = []

    def writer(tag):
        for i in range(40):
            with recorded_path(path) as tmp:
                tmp.write_text(f"{tag} {i}" * 100)
            try:
                checksums.verify(path)
            except Damaged as e:  # another writer may be between its rename and its record: look again
                failures.append(str(e))

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert checksums.verify(path)  # once both are done, always


@pytest.mark.parametrize("record", [b"", b"xyz\n", b"\xff\xfe", b"0" * 64 + b"  other.bin\n"])
def test_a_damaged_record_is_damage_too(tmp_path, record):
    path = tmp_path / "a.bin"
    with recorded_path(path) as tmp:
        tmp.write_bytes(b"payload")
    checksums.record_path(path).write_bytes(record)
    with pytest.raises(Damaged, match="a.bin.sha256"):
        checksums.verify(path)
    with recorded_path(path) as tmp:  # writing again repairs it
        tmp.write_bytes(b"payload")
    assert checksums.verify(path)


def test_sha256sum_reads_the_records(tmp_path):
    import subprocess

    require_tool("sha256sum", "coreutils")
    path = tmp_path / "model.bin"
    with recorded_path(path) as tmp:
        tmp.write_bytes(b"weights")
    done = subprocess.run(["sha256sum", "-c", "model.bin.sha256"], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0


# ------------------------------------------------------------------------------------- fuzz
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(__import__("os").environ.get("LMBENCH_FUZZ_EXAMPLES", "10"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    target=st.sampled_from(ARTEFACTS),
    how=st.sampled_from(["xor", "truncate", "append", "nan"]),
    where=st.floats(0, 1, exclude_max=True),
    byte=st.integers(1, 255),
    rerecord=st.booleans(),
)
def test_any_damage_to_any_artefact_rebuilds_the_clean_figures(
    clean, tmp_path_factory, target, how, where, byte, rerecord
):
    """Any byte changed, any truncation or extension, a NaN anywhere in any tensor or array: the rerun names
    the file and ends with the figures of a clean run."""
    runs, figures = _copy(clean, tmp_path_factory.mktemp("fuzz"))
    model, name = target
    path = runs / FOLDERS[model] / name
    data = bytearray(path.read_bytes())
    at = int(where * len(data))
    if how == "xor":
        data[at] ^= byte
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(bytes(data[:at]))
    elif how == "append":
        path.write_bytes(bytes(data) + bytes([byte]))
    elif not _nan_somewhere(path, where):
        return  # a JSON record holds no tensor
    if rerecord and how == "nan":  # the record rewritten with the NaN: only the content checks can tell
        checksums.record(path)
    again, said = _run(runs.parent, runs)
    assert _same(again, figures)
    if name not in ("identity.json", "checkpoint.pt"):
        assert any(str(path) in line for line in said), said


def _nan_somewhere(path, where):
    """Put a NaN into one element of one floating tensor or array of ``path`` (chosen by ``where``)."""
    if path.suffix == ".json":
        return False
    if path.name == "logprobs.npz" or not any(
        n.endswith("data.pkl") for n in zipfile.ZipFile(path).namelist()
    ):
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k].copy() for k in data.files}
        floats = [k for k, v in arrays.items() if v.dtype.kind == "f" and v.size]
        key = floats[int(where * len(floats))]
        arrays[key].reshape(-1)[int(where * arrays[key].size)] = np.nan
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return True
    payload = torch.load(path, weights_only=True)
    tensors = []

    def walk(value):
        if isinstance(value, dict):
            for sub in value.values():
                walk(sub)
        elif isinstance(value, (list, tuple)):
            for sub in value:
                walk(sub)
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            tensors.append(value)

    walk(payload)
    tensor = tensors[int(where * len(tensors))]
    tensor.view(-1)[int(where * tensor.numel())] = float("nan")
    torch.save(payload, path)
    return True
