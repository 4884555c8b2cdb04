"""Outputs that are never left half-written: files through a temp file + rename, directories through a staging
directory swapped in whole.

    write_text(path, text)                   # path holds the old text or the new one, never a part
    with open_atomic(path) as f: ...         # the same for a file written piece by piece
    with output_dir("results/eval", overwrite=True) as tmp:
        ... write everything under tmp ...   # tmp = results/eval.partial
    # results/eval now holds the complete result; an error on the way leaves the previous one untouched

The pieces, for outputs that outlive one call (a training run stages in `<out>.partial` and resumes there):
    staging_dir(out)        a fresh `<out>.partial` (a leftover of an interrupted run is cleared first)
    publish_dir(tmp, out)   swap `tmp` in as `out`

Swapping: on Linux the new directory and the old one trade places in one atomic rename (renameat2
RENAME_EXCHANGE), so `out` always exists; elsewhere the old one is renamed aside to `<out>.old` first. Either way
the old one is then removed, and a `<out>.old` left by a process killed mid-swap is restored (when `out` is
missing) or removed by the next call.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PARTIAL_SUFFIX = ".partial"
OLD_SUFFIX = ".old"


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def open_atomic(path: str | Path) -> Iterator[IO[str]]:
    """A text file to write `path` through: a temp file in the same directory, renamed over `path` when the block
    completes, removed when it raises. Readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yield f
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with open_atomic(path) as f:
        f.write(text)
    return Path(path)


def staging_dir(out: str | Path, *, unique: bool = False) -> Path:
    """An empty staging directory for `out`: `<out>.partial` (cleared first), or with unique=True a fresh
    `<out>.<random>.partial` (for writers that may race, e.g. two processes converting the same model)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    if unique:
        return Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=PARTIAL_SUFFIX, dir=out.parent))
    tmp = partial_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def publish_dir(tmp: str | Path, out: str | Path, *, replace: bool = True) -> Path:
    """Make the complete directory `tmp` the output `out`. An existing `out` is replaced (replace=True) or kept,
    `tmp` then being discarded (replace=False: another writer finished first)."""
    tmp, out = Path(tmp), Path(out)
    recover(out)
    if not out.exists():
        tmp.rename(out)
        return out
    if not replace:
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    if _exchange(tmp, out):  # tmp now holds the old output
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    old = out.with_name(out.name + OLD_SUFFIX)
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def recover(out: str | Path) -> None:
    """Undo what a process killed in the middle of publish_dir left: a `<out>.old` is the previous output when
    `out` is missing (put back), else stale (removed)."""
    out = Path(out)
    old = out.with_name(out.name + OLD_SUFFIX)
    if old.exists():
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(out)


@contextlib.contextmanager
def output_dir(out: str | Path, *, overwrite: bool = False, exists_error=None) -> Iterator[Path]:
    """Stage an output directory: yields `<out>.partial`, published as `out` when the block completes, removed
    when it raises. An existing `out` without overwrite raises `exists_error` (an exception instance) or
    FileExistsError."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise exists_error or FileExistsError(f"{out} exists")
    tmp = staging_dir(out)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    publish_dir(tmp, out)


def make_shareable(folder: str | Path) -> None:
    """Some writers create 0600 files (temp file + rename); an output meant to be shared gets 0755 / 0644 - umask."""
    umask = _umask()
    folder = Path(folder)
    folder.chmod(0o755 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o755 if path.is_dir() else 0o644) & ~umask)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0
