"""lmbench outside its source checkout: what it reads at run time (corpus cards, presets, the report template)
is a real file inside the package, and data is found from the environment and the current directory, never
from where the package happens to be installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lmbench
from lmbench.data import cards
from lmbench.presets import preset_path
from tests.conftest import require_or_fail, require_tool

# building and installing a wheel takes minutes on a loaded machine (320 s seen on a shared 2-core one): a hang
# is still cut, later than the suite's 10-minute default
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(lmbench.__file__).resolve().parent
CARD_NAMES = ["ptb", "tinyshakespeare", "wikitext-103", "wikitext-2"]


def test_cards_and_presets_are_real_files_inside_the_package():
    """A symlink out of the package (the presets once pointed into examples/) is lost from a wheel."""
    card_files = cards.card_files()
    assert sorted(card_files) == CARD_NAMES
    for path in [*card_files.values(), preset_path("demo"), preset_path("evolution")]:
        assert path.is_file() and not path.is_symlink(), path
        assert path.resolve().is_relative_to(PACKAGE), path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No data folder set in the environment; the working directory is ``<tmp>/work/project``."""
    monkeypatch.delenv(cards.DATA_ENV, raising=False)
    monkeypatch.delenv("LMBENCH_SHARED", raising=False)
    project = tmp_path / "work" / "project"
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    return project


def test_data_dir_comes_from_the_flag_then_the_environment_then_the_current_directory(clean_env, monkeypatch):
    shared = clean_env.parent / "shared" / "corpora"
    assert cards.data_dir() == Path("data")  # nothing set, no ../shared: where `corpora fetch` puts copies
    shared.mkdir(parents=True)
    assert cards.data_dir().resolve() == shared.resolve()  # ../shared from here, not from the package
    monkeypatch.setenv(cards.DATA_ENV, str(clean_env / "env"))
    assert cards.data_dir() == clean_env / "env"
    assert cards.data_dir(clean_env / "flag") == clean_env / "flag"


def test_a_missing_card_copy_names_the_folder_it_looked_in(clean_env):
    from lmbench.errors import DataError

    with pytest.raises(DataError, match=r"no local copy found in data/ptb; run `lmbench corpora fetch ptb`"):
        cards.load_card_corpus("ptb")


# ------------------------------------------------------------------------------------ an installed wheel
TINY_CONFIG = """
name = "tiny"
[corpus]
name = "synthetic"
train_lines = 40
valid_lines = 10
test_lines = 10
[[model]]
name = "kn2"
family = "ngram"
order = 2
[evaluate]
bootstrap = 0
[report]
formats = ["md", "html"]
"""


def _can_build_offline() -> str | None:
    """Why a wheel cannot be built here without the network (None if it can)."""
    try:
        import setuptools
    except ImportError:
        return "setuptools is not installed (the build backend of pyproject.toml)"
    if int(setuptools.__version__.split(".")[0]) < 77:
        return f"setuptools {setuptools.__version__} is older than the >= 77 pyproject.toml requires"
    return None


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """lmbench built into a wheel from a copy of the package (symlinks kept as they are, so one pointing out
    of the package would dangle) and installed into a folder of its own."""
    reason = _can_build_offline()
    if reason:
        pytest.skip(f"cannot build a wheel offline: {reason}")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(PACKAGE, src / "lmbench", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp / "dist")]
    done = subprocess.run([*build, str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp / "dist").glob("lmbench-*.whl")
    site = tmp / "site"
    install = [*pip, "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return site


def _lmbench(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m lmbench.cli ARGS`` importing lmbench from ``site`` only, with no data folder set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LMBENCH_") and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "lmbench.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_an_installed_wheel_finds_its_cards_presets_template_and_data(installed, tmp_path):
    """Run from a folder outside the repository: the import is the installed copy, the cards list, a preset
    loads, a run renders its HTML report, and card copies are found in ../shared/corpora of the current
    directory (where tinyshakespeare is a stand-in, so its checksum differs)."""
    project = tmp_path / "project"
    project.mkdir()
    stand_in = tmp_path / "shared" / "corpora" / "tinyshakespeare"
    stand_in.mkdir(parents=True)
    (stand_in / "input.txt").write_text("not the real text\n")

    where = _lmbench(installed, project, "--version")
    assert where.returncode == 0, where.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(installed)}
    origin = subprocess.run(
        [sys.executable, "-c", "import lmbench; print(lmbench.__file__)"],
        cwd=project, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert Path(origin).resolve().is_relative_to(installed.resolve()), origin

    listing = _lmbench(installed, project, "corpora", "list")
    assert listing.returncode == 0, listing.stderr
    for name in CARD_NAMES:
        assert name in listing.stdout
    line = next(x for x in listing.stdout.splitlines() if x.startswith("tinyshakespeare"))
    assert "CHECKSUM MISMATCH" in line and str(stand_in.resolve()) in str(Path(line.split()[-1]).resolve())

    assert _lmbench(installed, project, "demo", "--help").returncode == 0
    check = (
        "from lmbench.config import load_config; from lmbench.presets import preset_path; "
        "print(*(load_config(preset_path(n)).name for n in ('demo', 'evolution')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert loaded.returncode == 0 and loaded.stdout.split() == ["demo", "evolution"], loaded.stderr

    (project / "exp.toml").write_text(TINY_CONFIG)
    run = _lmbench(installed, project, "run", "exp.toml")
    assert run.returncode == 0, run.stderr
    assert "kn2" in (project / "out" / "tiny" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_an_installed_copy_inside_another_git_repository_records_no_commit_of_it(installed, tmp_path):
    """Provenance's git_commit is lmbench's own checkout's; a wheel inside a project's repository has none."""
    require_tool("git", "Debian's git")
    site = tmp_path / "project" / ".venv" / "site"
    shutil.copytree(installed, site, symlinks=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path / "project")]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "a project"], check=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    code = "import lmbench.experiment as e; print(e.__file__); print(e.git_commit())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    where, commit = out.stdout.split()
    assert Path(where).resolve().is_relative_to(site.resolve()) and commit == "None"


def test_a_source_checkout_records_its_commit():
    from lmbench.experiment import git_commit

    require_tool("git", "Debian's git")
    require_or_fail((ROOT / ".git").exists(), "not a git checkout (CI runs on a clone)")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE, capture_output=True, text=True).stdout
    assert git_commit() == head.strip()
