"""Staged output directories: a result appears whole or not at all, and replaces the previous one whole."""

from __future__ import annotations

import pytest

from cognitive.atomic import publish_dir, staging_dir


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
