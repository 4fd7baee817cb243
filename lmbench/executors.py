"""Where the work of ``lmbench run`` runs: one (model, seed) fit-and-score or search trial after another in this
process (``local``, the default), or as Ray tasks on a local or existing cluster (``ray``).

Both give the same results: the same seeds, the same artefacts in the runs folder, the same reuse of cached
work; results are taken in plan order whatever order the tasks finish in. A Ray task declares its resources
(``threads`` CPUs, used through ``torch.set_num_threads``; one GPU where the model's ``device`` asks for one) and
at most ``jobs`` run at once. Artefacts are written straight into the runs folder when the task's node sees it
(shared storage, or the one machine of a local cluster); otherwise the task works in a temporary folder seeded
with the run folder's files and returns what it wrote through Ray's object store, and this process writes it.
Searches (:mod:`lmbench.search.study`) submit their trials through the same executor.

A package adds an executor through an entry point in the ``lmbench.executors`` group, naming a function
``open(settings, say)`` that returns a context manager yielding an :class:`Executor` (as :func:`open_local` and
:func:`open_ray` do); ``--executor NAME`` then chooses it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lmbench.errors import ConfigError
from lmbench.registry import PluginError, Registry

if TYPE_CHECKING:
    from lmbench.config import ExperimentConfig
    from lmbench.experiment import ModelRun

RAY_INSTALL = "pip install 'lmbench[ray]'  (or: pip install 'ray[default]')"
RUN_FILES_KEPT = ("error.log",)  # besides the training and scoring files: what a run folder holds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorSettings:
    """``--executor``, ``--address``, ``--jobs`` and ``--threads`` as given (``None``: the default)."""

    kind: str = "local"
    address: str | None = None
    jobs: int | None = None
    threads: int | None = None

    def check(self) -> None:
        """Raise :class:`ConfigError` for options that do not go together (before anything is read)."""
        if self.kind not in EXECUTORS:
            if self.kind in EXECUTORS.broken:
                EXECUTORS.lookup(
                    self.kind, where="--executor"
                )  # raises, naming the plugin that failed to load
            raise ConfigError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.kind == "local":
            if self.address is not None:
                raise ConfigError("--address needs --executor ray (the local executor uses no cluster)")
            if self.jobs not in (None, 1):
                raise ConfigError(
                    f"--jobs {self.jobs} needs --executor ray (the local executor runs one model at a time)"
                )
        for name, value in (("--jobs", self.jobs), ("--threads", self.threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{name}: expected a whole number >= 1, got {value}")


@dataclass(frozen=True)
class Resources:
    """What one task declares: CPU threads and GPUs."""

    threads: int = 1
    gpus: int = 0


class Executor:
    """One (model, seed) or trial after another, in this process (the default)."""

    kind = "local"
    jobs = 1
    threads: int | None = None  # None: leave torch's thread count as it is

    def check(self, config: ExperimentConfig) -> None:
        """Raise :class:`ConfigError` for models this executor cannot place (before training)."""

    def map_runs(
        self,
        work: Callable[..., Any],
        runs: list[ModelRun],
        shared: tuple[Any, ...],
        say: Callable[[str], None],
        broken: Callable[[ModelRun, Exception, Callable[[str], None]], Any],
    ) -> Iterator[Any]:
        """``work(run, *shared, say)`` for every run (the experiment's fit-and-score: it records a run's own
        failure in its outcome), outcomes in plan order; ``broken(run, error, say)`` stands in for the outcome
        of a task that broke outside ``work`` (a worker that died)."""
        for run in runs:
            yield work(run, *shared, say)

    def resources(self, params: dict[str, Any]) -> Resources:
        return Resources(self.threads or 1, 0)

    def share(self, value: Any) -> Any:
        """A handle to pass ``value`` to many tasks (put once into Ray's object store)."""
        return value

    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources) -> Any:
        """Start ``fn(*args)`` (here: run it now); :meth:`wait` and :meth:`result` finish it."""
        try:
            return _Done(fn(*args), None)
        except Exception as e:
            return _Done(None, e)

    def wait(self, handles: list[Any]) -> Any:
        """One finished handle of ``handles``."""
        return handles[0]

    def result(self, handle: Any) -> Any:
        """What the task returned; its own exception is raised here."""
        if handle.error is not None:
            raise handle.error
        return handle.value

    def describe(self) -> str:
        return "one at a time in this process"


@dataclass
class _Done:
    value: Any
    error: Exception | None


@contextmanager
def open_executor(settings: ExecutorSettings, say: Callable[[str], None] = log.info) -> Iterator[Executor]:
    """The executor ``settings`` ask for; a Ray cluster started here is stopped on leaving."""
    settings.check()
    with EXECUTORS[settings.kind](settings, say) as executor:
        yield executor


@contextmanager
def open_local(settings: ExecutorSettings, say: Callable[[str], None]) -> Iterator[Executor]:
    """One run after another in this process."""
    yield Executor()


@contextmanager
def open_ray(settings: ExecutorSettings, say: Callable[[str], None]) -> Iterator[Executor]:
    """Ray tasks on a local cluster started here (stopped on leaving) or on the cluster at ``--address``."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    executor = RayExecutor(ray, settings)
    try:
        executor.start(say)
        yield executor
    finally:
        executor.stop()


def _adapt(name: str, opener: Any) -> Callable[..., Any]:
    if not callable(opener):
        raise PluginError(f"expected a function open(settings, say) -> a context manager, got {opener!r}")
    return opener


EXECUTORS: Registry[Callable[[ExecutorSettings, Callable[[str], None]], Any]] = Registry(
    "executor", "lmbench.executors", adapt=_adapt
)
EXECUTORS.register("local", open_local)
EXECUTORS.register("ray", open_ray)


def set_threads(threads: int) -> None:
    """The CPU threads one task may use (torch's intra-op pool; OpenMP/MKL pools follow the environment)."""
    import torch

    torch.set_num_threads(threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class RayExecutor(Executor):
    """Runs and trials as Ray tasks: ``jobs`` at a time, each declaring ``threads`` CPUs and a GPU where asked."""

    kind = "ray"

    def __init__(self, ray: Any, settings: ExecutorSettings):
        self.ray = ray
        self.settings = settings
        self.started_here = False
        self.gpus_in_cluster = 0.0
        # whether tasks write straight into the runs folder: None = where they see it (always on a local
        # cluster); False = always through a temporary copy and the object store (what a node without
        # shared storage does; tests force it)
        self.shared_runs: bool | None = None
        self._shared: dict[int, Any] = {}

    def start(self, say: Callable[[str], None]) -> None:
        ray, s = self.ray, self.settings
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report home from this process's cluster
        package_root = str(Path(__file__).resolve().parent.parent)
        if s.address is None:  # a local cluster of this machine's cores, reachable on loopback only
            cores = _cores()
            threads = s.threads or max(1, cores // (s.jobs or cores))
            jobs = s.jobs or max(1, cores // threads)
            pythonpath = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
            for attempt in (1, 2, 3):  # a machine starved of CPU can miss Ray's 30 s start-up deadline
                try:
                    ray.init(
                        address="local",  # never join a cluster named by RAY_ADDRESS when none was asked for
                        num_cpus=max(cores, jobs * threads),
                        include_dashboard=False,
                        _node_ip_address="127.0.0.1",
                        logging_level=logging.ERROR,
                        log_to_driver=False,
                        # workers import the same lmbench as this process (a checkout on PYTHONPATH included)
                        runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                    )
                    break
                except Exception as e:
                    self.stop()
                    if attempt == 3:
                        raise ConfigError(
                            f"--executor ray: cannot start a local Ray cluster ({_first(e)})"
                        ) from None
                    say(f"ray: the local cluster did not start ({_first(e)}); trying once more")
            self.started_here = True
            where = "a local Ray cluster"
        else:
            try:
                ray.init(address=s.address, logging_level=logging.ERROR, log_to_driver=False)
            except Exception as e:
                raise ConfigError(
                    f"--address {s.address}: cannot join the Ray cluster ({_first(e)})"
                ) from None
            nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
            largest = int(max((n.get("CPU", 0) for n in nodes), default=0))
            total = int(sum(n.get("CPU", 0) for n in nodes))
            jobs = s.jobs or max(1, total // (s.threads or 1))
            threads = s.threads or max(1, min(largest, total // jobs))
            if threads > largest:
                self.stop()
                raise ConfigError(
                    f"--threads {threads}: no node of the Ray cluster at {s.address} has that many CPUs "
                    f"(the largest has {largest})"
                )
            where = f"the Ray cluster at {s.address}"
        self.jobs, self.threads = jobs, threads
        self.gpus_in_cluster = float(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 0))
        gpus = f", {self.gpus_in_cluster:g} GPUs" if self.gpus_in_cluster else ""
        say(f"ray: {where} ({cpus} CPUs{gpus}): {self.describe()}")
        self._remote = ray.remote(_task)

    def stop(self) -> None:
        if self.ray.is_initialized():
            self.ray.shutdown()

    def describe(self) -> str:
        tasks = "1 task" if self.jobs == 1 else f"{self.jobs} tasks"
        threads = "1 thread" if self.threads == 1 else f"{self.threads} threads"
        return f"{tasks} at a time, {threads} each"

    def resources(self, params: dict[str, Any]) -> Resources:
        """A GPU for ``device = "cuda"``, and for ``"auto"`` where the cluster has one (as ``auto`` picks the
        GPU in a sequential run on a GPU machine)."""
        device = params.get("device")
        wants_gpu = isinstance(device, str) and (
            device.startswith("cuda") or (device == "auto" and self.gpus_in_cluster > 0)
        )
        return Resources(self.threads or 1, 1 if wants_gpu else 0)

    def check(self, config: ExperimentConfig) -> None:
        for spec in config.models:
            device = spec.params.get("device")
            if isinstance(device, str) and device.startswith("cuda:"):
                raise ConfigError(
                    f"{config.source}: model '{spec.name}': device = {device!r} names one GPU; under "
                    '--executor ray write device = "cuda" (Ray gives each task its own GPU)'
                )
            if isinstance(device, str) and device == "cuda" and self.gpus_in_cluster == 0:
                raise ConfigError(
                    f"{config.source}: model '{spec.name}': device = \"cuda\" but the Ray cluster has no GPU"
                )

    def share(self, value: Any) -> Any:
        key = id(value)
        if key not in self._shared:
            self._shared[key] = (value, self.ray.put(value))
        return self._shared[key][1]

    def submit(self, fn: Callable[..., Any], *args: Any, resources: Resources) -> Any:
        options = {"num_cpus": resources.threads, "num_gpus": resources.gpus, "max_retries": 0}
        return self._remote.options(**options).remote(fn, resources.threads, *args)

    def wait(self, handles: list[Any]) -> Any:
        ready, _ = self.ray.wait(list(handles), num_returns=1)
        return ready[0]

    def result(self, handle: Any) -> Any:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, Exception):  # the task's own exception, as a sequential run raises it
                raise cause from None
            raise

    def map_runs(
        self,
        work: Callable[..., Any],
        runs: list[ModelRun],
        shared: tuple[Any, ...],
        say: Callable[[str], None],
        broken: Callable[[ModelRun, Exception, Callable[[str], None]], Any],
    ) -> Iterator[Any]:
        """Every run as a task (``jobs`` in flight); each finished run's lines are said as it finishes, and the
        outcomes come back in plan order. ``shared`` (config, data) goes into the object store once."""
        if not runs:
            return
        handles = tuple(self.share(value) for value in shared)
        runs_dir = _common_parent([run.folder.path.absolute() for run in runs])
        runs_dir.mkdir(parents=True, exist_ok=True)
        import secrets

        marker = runs_dir / f".ray-{secrets.token_hex(8)}"  # a task that sees it shares our runs folder
        marker.touch()
        outcomes: dict[int, Any] = {}
        pending: dict[Any, int] = {}
        queue = list(enumerate(runs))
        try:
            while queue or pending:
                while queue and len(pending) < self.jobs:
                    i, run = queue.pop(0)
                    copy = self.shared_runs is False or (self.shared_runs is None and not self.started_here)
                    files = self.ray.put(_read_folder(run.folder.path)) if copy else None
                    seen = None if self.shared_runs is False else str(marker)
                    job = RunJob(run, work, seen, run.folder.path.absolute())
                    handle = self.submit(
                        _run_task, job, [files], *handles, resources=self.resources(run.params)
                    )
                    pending[handle] = i
                handle = self.wait(list(pending))
                i = pending.pop(handle)
                run = runs[i]
                try:
                    outcome, lines, files = self.result(handle)
                except Exception as e:  # the task itself broke (a worker died, an unpicklable result)
                    outcomes[i] = broken(run, e, say)
                    continue
                if files is not None:
                    _write_folder(run.folder.path, files)
                for line in lines:
                    say(line)
                outcomes[i] = outcome
        finally:
            marker.unlink(missing_ok=True)
        for i in range(len(runs)):
            yield outcomes[i]


@dataclass
class RunJob:
    """One (model, seed) as a task sees it: the run, the work to do on it, and how to tell whether the runs
    folder is shared (``marker`` exists on the task's node) and where it is."""

    run: ModelRun
    work: Callable[..., Any]  # work(run, *shared, say) -> an outcome with ``run`` and ``model`` attributes
    marker: str | None  # None: work in a temporary copy whatever the task sees
    folder: Path  # the run folder, absolute


def _task(fn: Callable[..., Any], threads: int, *args: Any) -> Any:
    """The one Ray task: ``fn(*args)`` with ``threads`` CPU threads."""
    set_threads(threads)
    return fn(*args)


def _run_task(
    job: RunJob, files_ref: list[Any], *shared: Any
) -> tuple[Any, list[str], dict[str, bytes] | None]:
    """Do one run's work where the task landed: in the shared runs folder, or in a temporary copy of the run
    folder whose files go back to the driver. Messages name the run folder as the driver knows it; the fitted
    model stays behind (the driver reads it from the run folder where it needs it)."""
    from lmbench.runs import RunFolder

    lines: list[str] = []
    shown = str(job.run.folder.path)
    if job.marker is not None and Path(job.marker).exists():
        outcome = job.work(replace(job.run, folder=RunFolder(job.folder)), *shared, lines.append)
        files, where = None, str(job.folder)
    else:
        import ray

        if files_ref[0] is None:
            import socket

            raise RuntimeError(f"{socket.gethostname()} does not see the runs folder {job.folder.parent}")
        with tempfile.TemporaryDirectory(prefix="lmbench-run-") as tmp:
            folder = Path(tmp) / "run"
            _write_folder(folder, ray.get(files_ref[0]))
            outcome = job.work(replace(job.run, folder=RunFolder(folder)), *shared, lines.append)
            files, where = _read_folder(folder), str(folder)
    outcome.run, outcome.model = job.run, None
    return outcome, [line.replace(where, shown) for line in lines], files


def _read_folder(path: Path) -> dict[str, bytes]:
    """The run folder's own files (name -> bytes); empty when it does not exist yet."""
    if not path.is_dir():
        return {}
    return {
        f.name: f.read_bytes() for f in sorted(path.iterdir()) if f.is_file() and not f.name.startswith(".")
    }


def _write_folder(path: Path, files: dict[str, bytes]) -> None:
    """Make the run folder hold what the task left: its files written, lmbench's files it removed removed."""
    from lmbench.io import atomic_write_bytes
    from lmbench.runs import SCORING_FILES, TRAINING_FILES

    path.mkdir(parents=True, exist_ok=True)
    for name in TRAINING_FILES + SCORING_FILES + RUN_FILES_KEPT:
        if name not in files and (path / name).is_file():
            (path / name).unlink()
    for name, data in files.items():
        atomic_write_bytes(path / name, data)


def _common_parent(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def _first(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
