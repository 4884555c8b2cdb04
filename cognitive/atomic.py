"""Outputs that are never left half-written, and never replace what this project did not write: files through a
temp file + rename, directories through a staging directory swapped in whole, each carrying a marker of its kind.

    write_text(path, text)                   # path holds the old text or the new one, never a part
    with open_atomic(path) as f: ...         # the same for a file written piece by piece
    with output_dir("results/eval", kind="evaluation", overwrite=True) as tmp:
        ... write everything under tmp ...   # tmp = results/eval.partial
    # results/eval now holds the complete result; an error on the way leaves the previous one untouched

Every output directory this project writes carries MARKER (`.cognitive-slm.json`: {"written_by": "cognitive-slm",
"kind": ...}), written into the staging directory when it is made, so it travels with the output when it is
published. The kinds (KINDS): run (recipes/sft.py, grpo.py, interpolate.py), dataset (generate_data.py), release
(merge.py), evaluation (evaluate.py), export (export.py's GGUF files). An existing output is replaced (with
--overwrite) only when it carries the marker of the same kind, or is an empty directory; anything else (a directory
of the user's own files, a symbolic link, a file, the current directory or one that holds it, an output of another
kind) is refused in one line naming it and what it holds (check_replaceable). Outputs written before the marker
existed are recognised by the files their writer always wrote (LEGACY_MARKERS), so `--overwrite` keeps working on
them.

The pieces, for outputs that outlive one call (a training run stages in `<out>.partial` and resumes there):
    claim_dir(out, kind)          a directory written into over several calls (an ablation), never replaced
    check_replaceable(out, kind, overwrite=...)   the refusals above, before any work is done
    staging_dir(out, kind=...)    a fresh `<out>.partial` with the marker (a leftover of an interrupted run is
                                  cleared first: only one this project wrote, or an empty one)
    publish_dir(tmp, out)         swap `tmp` in as `out` (checks again that `out` may be replaced)
    remove_output(path, kind)     delete an output of ours (a stale `.partial`), refuse anything else

Swapping: on Linux the new directory and the old one trade places in one atomic rename (renameat2
RENAME_EXCHANGE), so `out` always exists; elsewhere the old one is renamed aside to `<out>.old` first. Either way
the old one is then removed, and a `<out>.old` left by a process killed mid-swap is restored (when `out` is
missing) or removed by the next call; a `<out>.old` without the marker is not ours and is left alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from cognitive.errors import UserError

PARTIAL_SUFFIX = ".partial"
OLD_SUFFIX = ".old"
MARKER = ".cognitive-slm.json"
WRITER = "cognitive-slm"
KINDS = ("run", "dataset", "release", "evaluation", "export")


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


# ------------------------------------------------------------------------------------------ what wrote an output
def _json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read_head(path: Path, size: int = 4096) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read(size)
    except OSError:
        return ""


# Outputs written before MARKER existed, recognised by what their writer always wrote (a name alone is not enough:
# a checkout has a README.md, many folders a results.json):
#   run         run_config.yaml and run_info.json (cognitive/train/run.py writes both when a run starts)
#   dataset     report.json with the pipeline's "stages" and "config" (cognitive/data/build.py)
#   release     README.md that opens as our model card ("A cognitive-slm release") beside config.json
#   evaluation  results.json with "settings" and "suites" or "models" (cognitive/evaluation/report.py), or "summary"
#               (an ablation's, recipes/ablate.py)
_RESULTS = {"suites", "models", "summary"}
LEGACY_MARKERS = {
    "run": lambda d: (d / "run_config.yaml").is_file() and (d / "run_info.json").is_file(),
    "dataset": lambda d: {"stages", "config"} <= set(_json_object(d / "report.json")),
    "release": lambda d: (d / "config.json").is_file() and "A cognitive-slm release" in _read_head(d / "README.md"),
    "evaluation": lambda d: "settings" in (r := _json_object(d / "results.json")) and bool(_RESULTS & set(r)),
}


def write_marker(folder: str | Path, kind: str) -> Path:
    """Mark `folder` as an output of this project of `kind` (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r} (known: {', '.join(KINDS)})")
    marker = {"written_by": WRITER, "kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return write_text(Path(folder) / MARKER, json.dumps(marker) + "\n")


def written_as(folder: str | Path) -> str | None:
    """The kind of output this project wrote `folder` as (its marker, else the legacy files of an output written
    before markers); None for a directory this project did not write, a symbolic link or a file."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return None
    marker = _json_object(folder / MARKER)
    if marker.get("written_by") == WRITER and marker.get("kind") in KINDS:
        return marker["kind"]
    return next((kind for kind, legacy in LEGACY_MARKERS.items() if legacy(folder)), None)


def describe(folder: Path, shown: int = 3) -> str:
    """What a directory holds, for an error line: 'notes.txt, src/ and 12 more', or 'nothing'."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError as e:
        return f"unreadable: {e.strerror}"
    if not names:
        return "nothing"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and next(path.iterdir(), None) is None


def check_replaceable(
    out: str | Path, kind: str, *, overwrite: bool, exists_error: Exception | None = None, flag: str = "--overwrite"
) -> Path:
    """Refuse, before any work, an `out` that the write could not or must not replace; returns `out` as a Path.
    An existing `out` needs `overwrite` (else `exists_error`, or a UserError naming `flag`), and even then must be a
    directory this project wrote as `kind` or an empty one: a symbolic link, a file, the current directory (or one
    that holds it), another kind of output or a directory this project did not write is a one-line UserError naming
    it and what it holds."""
    out = Path(out)
    here, target = Path.cwd().resolve(), Path(os.path.abspath(out))
    if target.resolve() == here or target.resolve() in here.parents:
        what = "is the current directory" if target.resolve() == here else "holds the current directory"
        raise UserError(f"{out} {what} ({describe(target)}); refusing to write {_a(kind)} there: choose another path")
    if not os.path.lexists(out):
        return out
    if out.is_symlink():
        raise UserError(
            f"{out} is a symbolic link (to {os.readlink(out)}); refusing to replace it: give a path that is not a link"
        )
    if not out.is_dir():
        raise UserError(f"{out} is a file, not {_a(kind)} directory; refusing to replace it: choose another path")
    if not overwrite:
        raise exists_error or UserError(f"{out} exists; pass {flag} to replace it")
    found = written_as(out)
    if found == kind or _is_empty_dir(out):
        return out
    if found is not None:
        raise UserError(
            f"{out} is {_a(found)} this project wrote, not {_a(kind)}; refusing to replace it with {_a(kind)}"
        )
    raise UserError(
        f"{out} was not written by {WRITER} (it holds {describe(out)}; no {MARKER}); refusing to replace it: "
        "choose another path or move it away yourself"
    )


def remove_output(path: str | Path, kind: str | None = None) -> None:
    """Delete an output this project wrote (of `kind`, when given): a stale staging directory, a replaced output. An
    empty directory goes too; anything else is a one-line UserError and stays."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    found = written_as(path)
    if _is_empty_dir(path) or (found is not None and kind in (None, found)):
        shutil.rmtree(path)
        return
    what = f"{_a(found)} this project wrote, not {_a(kind)}" if found else f"not written by {WRITER} ({describe(path)})"
    raise UserError(f"{path} is in the way and {what}; refusing to delete it: move it away yourself")


def claim_dir(out: str | Path, kind: str) -> Path:
    """A directory this project writes into piece by piece over several calls, never replaced whole (an ablation:
    its evaluations, then its tables; a rerun resumes in it): made with the marker, or an existing one of `kind` or
    an empty one (marked now); anything else is refused as check_replaceable refuses it."""
    out = check_replaceable(out, kind, overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).is_file():
        write_marker(out, kind)
    return out


# ------------------------------------------------------------------------------------------ staging and publishing
def staging_dir(out: str | Path, *, kind: str | None = None, unique: bool = False) -> Path:
    """An empty staging directory for `out`, marked as an output of `kind` (None: no marker, for a cache entry
    that is never replaced): `<out>.partial` (a leftover is cleared first, only if this project wrote it or it is
    empty), or with unique=True a fresh `<out>.<random>.partial` (for writers that may race, e.g. two processes
    converting the same model)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    if unique:
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=PARTIAL_SUFFIX, dir=out.parent))
    else:
        tmp = partial_path(out)
        remove_output(tmp, kind)
        tmp.mkdir()
    if kind is not None:
        write_marker(tmp, kind)
    return tmp


def publish_dir(tmp: str | Path, out: str | Path, *, replace: bool = True) -> Path:
    """Make the complete directory `tmp` the output `out`. An existing `out` is replaced (replace=True: only an
    output of tmp's kind or an empty directory, check_replaceable; anything else is a UserError and `tmp` stays,
    complete) or kept, `tmp` then being discarded (replace=False: another writer finished first)."""
    tmp, out = Path(tmp), Path(out)
    recover(out)
    if not os.path.lexists(out):
        tmp.rename(out)
        return out
    if not replace:
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    try:
        check_replaceable(out, written_as(tmp) or "output", overwrite=True)
    except UserError as e:
        raise UserError(f"{e} (the new output is complete in {tmp})") from None
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
    `out` is missing (put back), else stale (removed). A `<out>.old` this project did not write is left alone."""
    out = Path(out)
    old = out.with_name(out.name + OLD_SUFFIX)
    if not old.is_dir() or old.is_symlink() or written_as(old) is None:
        return
    if os.path.lexists(out):
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.rename(out)


@contextlib.contextmanager
def output_dir(
    out: str | Path, *, kind: str, overwrite: bool = False, exists_error: Exception | None = None
) -> Iterator[Path]:
    """Stage an output directory of `kind` (KINDS): yields `<out>.partial` (marked), published as `out` when the
    block completes, removed when it raises. An existing `out` is refused as check_replaceable says (without
    overwrite: `exists_error`, an exception instance, or a UserError)."""
    out = check_replaceable(out, kind, overwrite=overwrite, exists_error=exists_error)
    tmp = staging_dir(out, kind=kind)
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
