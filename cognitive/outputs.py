"""Output directories that are never left half-written: build in `<out>.partial`, then swap it in whole.

    tmp = staging_dir(out)          # empty <out>.partial (a leftover from an interrupted run is cleared)
    ... write everything under tmp ...
    publish_dir(tmp, out)           # <out> now holds the complete result; a previous <out> is replaced

An interrupted run leaves only `<out>.partial`; `<out>` is either the previous complete result or the new one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def staging_dir(out: str | Path) -> Path:
    out = Path(out)
    tmp = out.with_name(out.name + PARTIAL_SUFFIX)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish_dir(tmp: Path, out: str | Path) -> Path:
    """Rename `tmp` to `out`; an existing `out` is moved aside first and deleted after the swap."""
    out = Path(out)
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out
