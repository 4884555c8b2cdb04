"""Staged output directories: a result appears whole or not at all, and replaces the previous one whole."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from cognitive.atomic import output_dir, publish_dir, staging_dir, write_text


def test_publish_replaces_the_previous_result_whole(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "old.json").write_text("old")
    (tmp_path / "results.partial").mkdir()
    (tmp_path / "results.partial" / "leftover").write_text("from an interrupted run")
    tmp = staging_dir(out)
    assert tmp == tmp_path / "results.partial" and list(tmp.iterdir()) == []  # the leftover is cleared
    (tmp / "new.json").write_text("new")
    assert (out / "old.json").exists()  # untouched until the new result is complete
    publish_dir(tmp, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_an_interrupted_write_leaves_the_previous_result(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "scores.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        tmp = staging_dir(out)
        (tmp / "scores.json").write_text('{"half": ')
        raise KeyboardInterrupt
    assert (out / "scores.json").read_text() == "{}"


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "renameat2"), reason="needs Linux renameat2")
def test_an_existing_output_is_never_missing_while_it_is_replaced(tmp_path, monkeypatch):
    """The swap leaves no moment without `out`: every rename the publish makes finds `out` in place."""
    import cognitive.atomic as atomic

    out = tmp_path / "release"
    out.mkdir()
    (out / "weights").write_text("old")
    tmp = staging_dir(out)
    (tmp / "weights").write_text("new")
    seen = []
    rename, exchange = Path.rename, atomic._exchange
    monkeypatch.setattr(Path, "rename", lambda self, target: (seen.append(out.exists()), rename(self, target))[1])
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: (seen.append(out.exists()), exchange(a, b))[1])
    publish_dir(tmp, out)
    assert seen and all(seen) and (out / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_a_swap_killed_halfway_is_undone_by_the_next_run(tmp_path, monkeypatch):
    """Without an atomic exchange (renameat2) the old output is renamed aside first; a process killed between the two
    renames leaves only `<out>.old`, which the next staging or publish puts back."""
    import cognitive.atomic as atomic

    out = tmp_path / "results"
    out.mkdir()
    (out / "scores.json").write_text("old")
    tmp = staging_dir(out)
    (tmp / "scores.json").write_text("new")
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    rename = Path.rename

    def killed_on_second_rename(self, target):
        if self == tmp:
            raise KeyboardInterrupt  # the kill, after `out` went aside
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", killed_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        publish_dir(tmp, out)
    monkeypatch.setattr(Path, "rename", rename)
    assert not out.exists() and (tmp_path / "results.old").exists()
    staging_dir(out)  # the next run
    assert (out / "scores.json").read_text() == "old" and not (tmp_path / "results.old").exists()


def test_output_dir_clears_a_stale_partial_and_removes_its_own_on_error(tmp_path):
    out = tmp_path / "release"
    (tmp_path / "release.partial").mkdir()
    (tmp_path / "release.partial" / "half-written.safetensors").write_text("killed -9")
    with output_dir(out) as tmp:
        assert list(tmp.iterdir()) == []  # the stale scratch of a killed run is gone
        (tmp / "model.safetensors").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    with pytest.raises(ValueError), output_dir(out, overwrite=True) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise ValueError("the merge check failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    assert (out / "model.safetensors").read_text() == "ok"
    with pytest.raises(FileExistsError), output_dir(out):
        pass


def test_write_text_is_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "run_info.json"
    write_text(path, "old")

    class Interrupted(Exception):
        pass

    def fail(*args):
        raise Interrupted

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(Interrupted):
        write_text(path, "new and longer")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["run_info.json"]
