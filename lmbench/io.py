"""Writing files safely: everything lmbench writes to a regular file goes to a temporary file beside the
target and is renamed into place, so an interrupted run never leaves a half-written file.

Temporary files are named ``.<name>.lmbench-<pid>-<random>.tmp``: one removed by an exception, Ctrl-C or
SIGTERM (the CLI turns SIGTERM into an exit) disappears at once; one left by a process killed with SIGKILL is
found by its dead pid and removed the next time the same target is written. An output that is not a regular
file (``/dev/null``, a FIFO, a terminal) is written straight into, as every Unix tool does; a directory, a
block device or a socket is refused. Write errors (disk full, permission, read-only file system) raise
:class:`OutputError` naming the file and the cause.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from lmbench.errors import ConfigError, OutputError

TEMP_INFIX = ".lmbench-"  # .<name>.lmbench-<pid>-<random>.tmp
_TEMP_NAME = re.compile(r"\.lmbench-(\d+)-[^.]*\.tmp$")
_NAME_KEEP = 160  # bytes of the target's name kept in a temporary name (names are at most 255 bytes)
# errors of the system a user can act on: named with the file, not turned into tracebacks
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "a component of the path is not a folder",
    errno.EISDIR: "is a directory",
}
# what C++ writers (torch.save, pyarrow) say when the disk fills: the cause is then looked up on the disk
_STREAM_FAILURES = ("basic_ios::clear", "iostream error", "PytorchStreamWriter failed", "file write failed")


def _temp_prefix(path: Path) -> str:
    name = os.fsencode(path.name)[:_NAME_KEEP].decode("utf-8", "ignore")
    return f".{name}{TEMP_INFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's live process (or a pid no process can have)
    return True


def clean_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files that writes of ``path`` by processes no longer alive left beside it."""
    path = Path(path)
    name = os.fsencode(path.name)[:_NAME_KEEP].decode("utf-8", "ignore")
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob_escape(name)}{TEMP_INFIX}*.tmp"))
    except OSError:
        return []
    for temp in candidates:
        match = _TEMP_NAME.search(temp.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                temp.unlink()
                removed.append(temp)
            except OSError:
                pass
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def write_error(path: str | Path, error: BaseException) -> OutputError | None:
    """The :class:`OutputError` naming ``path`` and the cause for an error of writing it (None: not one)."""
    if isinstance(error, OutputError):
        return error
    if isinstance(error, OSError) and error.errno in _WRITE_ERRNOS:
        return OutputError(f"{path}: cannot write: {_WRITE_ERRNOS[error.errno]}", error.errno)
    if isinstance(error, (RuntimeError, OSError)) and any(s in str(error) for s in _STREAM_FAILURES):
        try:
            folder = Path(path).parent
            free = os.statvfs(folder if folder.exists() else ".").f_bavail
        except OSError:
            free = 1
        if free == 0:
            return OutputError(f"{path}: cannot write: {_WRITE_ERRNOS[errno.ENOSPC]}", errno.ENOSPC)
        return OutputError(
            f"{path}: cannot write: the write failed (is the disk full or going away?)", errno.EIO
        )
    return None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any exit otherwise
    (exceptions, Ctrl-C, SIGTERM under the CLI) it is removed. A symbolic link is followed: the file it names
    is replaced and the link stays. ``path`` must be a regular file or not exist (see :func:`open_output` for
    devices and FIFOs). Write errors raise :class:`OutputError` naming ``path`` and the cause."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    refuse_special(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output gets the mode any new file gets
    except OSError as e:
        raise write_error(path, e) or e from None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        named = write_error(path, e)
        if named is not None and named is not e:
            raise named from None
        raise


def refuse_special(path: Path, what: str = "output") -> None:
    """A directory, block device or socket is never written over (exit 2 naming it)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise write_error(path, e) or OutputError(f"{path}: cannot write ({e.strerror})") from None
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else None
    )
    if kind:
        raise OutputError(
            f"{path}: the {what} is {kind}; expected a file, a new path, a character device or a FIFO"
        )


def is_stream_target(path: str | Path) -> bool:
    """Is ``path`` written straight into rather than replaced: ``-`` (stdout), a character device, a FIFO?"""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


@contextmanager
def open_output(path: str | Path, what: str = "output") -> Iterator[IO[bytes]]:
    """A binary file to write ``path``: ``-`` is stdout; a character device (``/dev/null``) or a FIFO is
    opened and written straight into, as ``cat > PATH`` would; a regular file or a new path is written
    atomically (:func:`atomic_path`); a directory, block device or socket is refused."""
    if str(path) == "-":
        yield _Stream(sys.stdout.buffer)  # type: ignore[misc]
        sys.stdout.buffer.flush()
        return
    path = Path(path)
    refuse_special(path, what)
    if is_stream_target(path):
        try:
            f = open(path, "wb")  # noqa: SIM115 - closed below, errors named
        except OSError as e:
            raise write_error(path, e) or OutputError(
                f"{path}: cannot open the {what} ({e.strerror})"
            ) from None
        try:
            with f:
                yield _Stream(f)  # type: ignore[misc]
        except OSError as e:
            raise write_error(path, e) or e from None
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        yield f


class _Stream:
    """A device, FIFO or stdout as a stream that cannot seek or tell (``/dev/null`` claims position 0 after any
    write, which makes zip writers compute negative offsets): writers such as ``np.savez`` then write as to
    a pipe."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw

    def write(self, data: bytes) -> int:
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def tell(self) -> int:
        raise io.UnsupportedOperation("a stream has no position")

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("a stream cannot seek")

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def read(self, *args: object) -> bytes:  # np.savez takes a file by its having ``read``
        raise io.UnsupportedOperation("an output stream is not read")

    def readable(self) -> bool:
        return False

    def close(self) -> None:  # the owner of the stream closes it
        self.flush()

    @property
    def closed(self) -> bool:
        return self._raw.closed


def same_file(a: str | Path, b: str | Path) -> bool:
    """Do ``a`` and ``b`` name one file: the same resolved path, or the same inode (hard links, bind mounts)?"""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def check_outputs_apart(
    outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None]
) -> None:
    """Before any work: no output file is one of the command's inputs, and no two outputs are one file.

    ``outputs`` and ``inputs`` map the option or key that names a path (``--arpa``, ``corpus.train``) to
    the path. ``-`` and outputs that are written straight into (devices, FIFOs) are not compared: writing
    ``/dev/null`` never harms a file read from it. Raises :class:`ConfigError` naming both."""
    written = {k: v for k, v in outputs.items() if v is not None and not is_stream_target(v)}
    read = {k: v for k, v in inputs.items() if v is not None and str(v) != "-"}
    for out_key, out in written.items():
        for in_key, source in read.items():
            if same_file(out, source):
                raise ConfigError(
                    f"{out}: {out_key} is the same file as {in_key} ({source}); writing it would destroy the input"
                )
    keys = list(written)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if same_file(written[a], written[b]):
                raise ConfigError(f"{written[a]}: {a} and {b} name the same file; give each its own path")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def load_tensors(path: str | Path, what: str) -> object:
    """``torch.load`` with ``weights_only=True`` (no pickled code ever runs); a truncated, empty, foreign or
    malicious file raises :class:`DataError` naming the file, never advice to turn ``weights_only`` off."""
    import torch

    from lmbench.errors import DataError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: not found (expected {what})") from None
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, zipfile errors, ...
        raise DataError(f"{path}: not a readable {what} ({type(e).__name__})") from None


def check_output_dir(path: str | Path, what: str) -> None:
    """Fail now, before any work, if ``path`` cannot become a folder that lmbench writes into.

    Checks that ``path`` is not a file, that no component above it is a file or too long a name, and that the
    nearest existing folder accepts a new entry (probed with an empty temporary folder that is removed at once,
    so that the check holds for root and for read-only mounts too). Raises :class:`ConfigError` naming ``what``.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise ConfigError(
                f"{path}: {what} exists and is a file, expected a folder (move it or pick another)"
            )
        existing, missing = path.absolute(), []
        while not existing.exists() and existing.parent != existing:
            missing.append(existing.name)
            existing = existing.parent
    except OSError as e:  # a name too long for the file system, a loop of links
        raise ConfigError(f"{path}: {what} is not a usable path ({e.strerror})") from None
    if not existing.is_dir():
        raise ConfigError(f"{path}: {what} cannot be created: {existing} is a file")
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    for name in missing:
        if len(os.fsencode(name)) > limit:
            raise ConfigError(f"{path}: {what}: the name {name[:40]!r}... is longer than {limit} bytes")
    try:
        probe = tempfile.mkdtemp(dir=existing, prefix=".lmbench-write-check-")
    except OSError as e:
        raise ConfigError(f"{path}: {what} is not writable ({e.strerror}: {existing})") from None
    os.rmdir(probe)
