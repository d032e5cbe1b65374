"""File helpers: atomic writes and folders, so a user never finds a half-written file.

Every file is written under a temporary name in its own folder, flushed to disk and renamed over
its final name; a folder is built under a temporary name beside its final place and renamed (or,
over an existing folder, exchanged) into place. Temporary names end in ``.gentool-tmp`` and carry
the writer's pid, so what a killed process left behind is recognised as the toolkit's own and
removed by :func:`remove_stale_temps`, never anything else. This module is torch-free.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gentoolkit import faults

_UMASK = os.umask(0)
os.umask(_UMASK)
TEMP_SUFFIX = ".gentool-tmp"


def temp_name(path: Path) -> Path:
    """A temporary sibling of ``path``: ``.NAME.PID-RANDOM.gentool-tmp``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def _fsync_dir(folder: Path) -> None:
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The file is flushed to disk before the rename and gets the permissions a new file would
    (0644 under the usual umask), whatever the writer did to it (safetensors makes its files 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    tmp.touch(0o666 & ~_UMASK)
    try:
        yield tmp
        new_file_mode(tmp)
        _fsync_file(tmp)
        faults.point("file.written")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def new_file_mode(path: str | Path) -> None:
    """Give ``path`` the permissions a new file gets (0644 under the usual umask), whatever its writer
    chose (onnx writes external data 0600)."""
    os.chmod(path, 0o666 & ~_UMASK)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def new_temp_dir(path: Path) -> Path:
    """An empty temporary folder beside ``path``, to build ``path`` in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    tmp.mkdir(0o777 & ~_UMASK)
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # pragma: no cover - glibc before 2.28, musl
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish_dir(tmp: Path, path: Path) -> None:
    """Move the finished folder ``tmp`` to ``path``.

    ``path`` missing or an empty folder: one rename. ``path`` an existing folder: the two are
    exchanged in one step where the system can (Linux), otherwise moved aside first; the old
    contents then sit at ``tmp`` for the caller to remove (it decided that they were its own).
    """
    faults.point("dir.staged")
    _fsync_dir(tmp)
    if not path.exists():
        os.replace(tmp, path)
    elif path.is_dir() and not any(path.iterdir()):
        try:
            os.replace(tmp, path)  # POSIX renames over an empty folder in one step
        except OSError:  # pragma: no cover - Windows
            os.rmdir(path)
            os.replace(tmp, path)
    elif not _exchange(tmp, path):  # pragma: no cover - Linux exchanges
        aside = temp_name(path)
        os.replace(path, aside)
        os.replace(tmp, path)
        os.replace(aside, tmp)
    _fsync_dir(path.parent)
    faults.point("dir.published")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a new folder under a temporary name and move it into place at the end.

    ``path`` must not exist, or be an empty folder; the caller checks that first.
    """
    path = Path(path)
    tmp = new_temp_dir(path)
    try:
        yield tmp
        publish_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def remove_entry(entry: Path) -> None:
    """Remove a file, a link or a whole folder that this process made (a link is removed, never followed);
    what is already gone is no error."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()


def remove_stale_temps(folder: str | Path, *, stem: str | None = None) -> list[Path]:
    """Remove the temporary files and folders a killed gentoolkit process left in ``folder``.

    Only names this module makes (``.NAME.PID-RANDOM.gentool-tmp``) whose process is gone are
    touched; ``stem`` limits it to temporaries of one final name. Returns what was removed.
    """
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not is_temp(entry.name):
            continue
        body = entry.name[1 : -len(TEMP_SUFFIX)]
        name, _, tag = body.rpartition(".")
        pid_text = tag.partition("-")[0]
        if not pid_text.isdigit() or (stem is not None and name != stem) or _pid_alive(int(pid_text)):
            continue
        remove_entry(entry)
        removed.append(entry)
    return removed


def inside(folder: str | Path, name: Any, what: str) -> Path:
    """``folder / name`` for a relative ``name`` whose real path (symlinks followed) stays in ``folder``.

    Raises :class:`~gentoolkit.errors.GentoolError` naming ``what`` otherwise.
    """
    from gentoolkit.errors import GentoolError

    if not isinstance(name, str) or not name or "\x00" in name:
        raise GentoolError(f"{what} must be a file name inside {str(folder)!r}, got {name!r}")
    rel = Path(name)
    if rel.is_absolute() or rel.drive:
        raise GentoolError(f"{what} {name!r} is an absolute path; it must name a file inside {str(folder)!r}")
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in rel.parts):
        raise GentoolError(f"{what} {name[:40]!r}... is not a usable file name (a part longer than 255 bytes)")
    root = Path(folder).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise GentoolError(f"{what} {name!r} leads outside {str(folder)!r} (to {str(target)!r}); refusing to read it")
    return root / rel
