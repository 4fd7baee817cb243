"""One way to extend lmbench: a :class:`Registry` per kind of extension, filled by lmbench's own modules and by
installed packages through Python entry points, so that a package can add a model family, a smoother, a task, a
report format, a tracker or an executor without editing lmbench (pytest's and Optuna's model).

| registry | defined in | entry-point group |
| --- | --- | --- |
| model families | `lmbench.models.family.FAMILIES` | `lmbench.families` |
| n-gram smoothers | `lmbench.models.ngram.smoothing.SMOOTHERS` | `lmbench.smoothers` |
| tasks | `lmbench.tasks.TASKS` | `lmbench.tasks` |
| report formats | `lmbench.reporting.formats.FORMATS` | `lmbench.report_formats` |
| trackers | `lmbench.reporting.trackers.TRACKERS` | `lmbench.trackers` |
| executors | `lmbench.executors.EXECUTORS` | `lmbench.executors` |

A registry is read lazily: its built-in modules are imported and its entry points loaded the first time it is
consulted, never at ``import lmbench``. A plugin that fails to load (an import error, an object of the wrong
shape, a name already taken) costs one warning line naming its entry point and is left out; lmbench goes on.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from lmbench.errors import ConfigError, first_line

if TYPE_CHECKING:  # importlib.metadata costs start-up time; imported when entry points are first read
    from importlib.metadata import EntryPoint

T = TypeVar("T")

log = logging.getLogger(__name__)
log.setLevel(logging.WARNING)  # a broken plugin is said even where the CLI silences other library logs


class PluginError(ValueError):
    """An object offered to a registry has the wrong shape (raised by a registry's ``adapt``)."""


class Registry(MutableMapping[str, T], Generic[T]):
    """Name -> object for one kind of extension.

    Args:
        kind: what one entry is, for messages (``"model family"``).
        group: the entry-point group installed packages add to (``"lmbench.families"``).
        builtins: a package whose modules are imported on first use, each contributing what ``collect``
            finds in it (so an in-tree addition is one new file there), or ``None``.
        collect: module -> {name: object} for the ``builtins`` package's modules.
        adapt: (name, object) -> the entry to store: checks an object's shape (raising :class:`PluginError` or
            ``TypeError``/``ValueError``) and may turn a shorthand (a class, a function) into the full record.
        order: sort key of the built-in objects (default: module name, then place in the module).

    ``register`` refuses a name already taken; item assignment replaces (tests swap entries that way).
    Iteration is in registration order: lmbench's own entries first, then plugins in name order.
    """

    def __init__(
        self,
        kind: str,
        group: str,
        *,
        builtins: str | None = None,
        collect: Callable[[Any], dict[str, Any]] | None = None,
        adapt: Callable[[str, Any], T] | None = None,
        order: Callable[[Any], Any] | None = None,
    ):
        self.kind = kind
        self.group = group
        self.builtins = builtins
        self.collect = collect
        self.adapt = adapt or (lambda name, obj: obj)
        self.order = order
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._loading = False
        self.broken: dict[str, str] = {}  # entry-point name -> why it was left out
        self.plugins: dict[str, str] = {}  # name -> the entry point it came from

    # ------------------------------------------------------------------------------------------ registering
    def register(self, name: str, obj: Any = None) -> Any:
        """Add ``obj`` under ``name`` (or, without ``obj``, return a decorator that does). A name that is
        already taken is refused with a ``ValueError``."""
        if obj is None:

            def decorator(target: Any) -> Any:
                self.register(name, target)
                return target

            return decorator
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered ({_origin(self._entries[name])})")
        self._entries[name] = self.adapt(name, obj)
        return self._entries[name]

    def __setitem__(self, name: str, obj: Any) -> None:
        self._load()
        self._entries[name] = self.adapt(name, obj)

    def __delitem__(self, name: str) -> None:
        self._load()
        del self._entries[name]

    # ------------------------------------------------------------------------------------------ reading
    def __getitem__(self, name: str) -> T:
        self._load()
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.group!r}: {', '.join(self._entries) or 'not loaded'})"

    def registered(self) -> dict[str, T]:
        """The entries registered so far, loading nothing (for checks made while registering)."""
        return dict(self._entries)

    def lookup(self, name: Any, *, where: str | None = None) -> T:
        """The entry called ``name``, or a one-line :class:`ConfigError` listing the known names (``where``:
        the key or file the name was read from, put in front). A plugin that failed to load says why."""
        if isinstance(name, str) and name in self:
            return self._entries[name]
        prefix = f"{where}: " if where else ""
        if isinstance(name, str) and name in self.broken:
            raise ConfigError(f"{prefix}{self.kind} {name!r} {self.broken[name]}")
        raise ConfigError(f"{prefix}unknown {self.kind} {name!r}; expected one of {', '.join(self)}")

    def forget_plugins(self) -> None:
        """Drop what entry points added and read them again on the next look-up (after ``sys.path``
        changed: a package installed while lmbench runs, a test's plugin)."""
        for name in self.plugins:
            self._entries.pop(name, None)
        self.plugins.clear()
        self.broken.clear()
        self._loaded = False

    # ------------------------------------------------------------------------------------------ loading
    def _load(self) -> None:
        """Import the built-in modules, then every entry point of the group, once."""
        if self._loaded or self._loading:
            return
        self._loading = True  # a built-in module that reads its own registry while being imported
        try:
            if self.builtins is not None:
                self._load_builtins()
            for point in sorted(_entry_points(self.group), key=lambda p: p.name):
                self._load_entry_point(point)
            self._loaded = True
        finally:
            self._loading = False

    def _load_builtins(self) -> None:
        package = importlib.import_module(self.builtins)
        found: list[tuple[str, Any]] = []
        for info in pkgutil.iter_modules(package.__path__, prefix=f"{self.builtins}."):
            module = importlib.import_module(info.name)
            found += [(name, obj) for name, obj in (self.collect(module) if self.collect else {}).items()]
        if self.order is not None:
            found.sort(key=lambda item: self.order(item[1]))
        for name, obj in found:
            if self._entries.get(name) is not obj:  # the same object imported into two modules: once
                self.register(name, obj)

    def _load_entry_point(self, point: EntryPoint) -> None:
        where = f"entry point {point.name!r} = {point.value!r} (group {self.group}{_distribution(point)})"
        try:
            obj = point.load()
            if self._entries.get(point.name) is obj:  # the plugin's module registered it while being imported
                self.plugins[point.name] = where
                return
            if point.name in self._entries:
                raise PluginError(f"the name is already taken by {_origin(self._entries[point.name])}")
            self._entries[point.name] = self.adapt(point.name, obj)
            self.plugins[point.name] = where
        except Exception as e:  # a broken plugin must never stop lmbench
            self.broken[point.name] = (
                f"comes from {where}, which failed to load ({first_line(e, with_type=True)})"
            )
            log.warning(
                "warning: %s failed to load (%s); it is left out", where, first_line(e, with_type=True)
            )


def _entry_points(group: str) -> list[EntryPoint]:
    try:
        from importlib.metadata import entry_points

        return list(entry_points(group=group))
    except Exception as e:  # unreadable metadata of some installed package
        log.warning(
            "warning: cannot read the entry points of group %s (%s)", group, first_line(e, with_type=True)
        )
        return []


def _distribution(point: EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f", from {dist.name} {dist.version}" if dist is not None else ""


def _origin(obj: Any) -> str:
    """Where an entry came from, for messages: its module, else its type."""
    module = getattr(obj, "__module__", None) or getattr(obj, "__name__", None)
    return f"{module}" if isinstance(module, str) else type(obj).__name__
