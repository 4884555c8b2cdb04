"""Staged output directories: a result appears whole or not at all, replaces the previous one whole, and replaces
(or deletes) only what this project wrote: a directory with the marker of the same kind of output."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from cognitive.atomic import (
    MARKER,
    check_replaceable,
    output_dir,
    publish_dir,
    remove_output,
    staging_dir,
    write_marker,
    write_text,
    written_as,
)
from cognitive.errors import UserError
from tests.conftest import listing, user_files


def evaluation(path: Path, files: dict[str, str]) -> Path:
    """A finished evaluation output of this project holding `files`."""
    path.mkdir()
    write_marker(path, "evaluation")
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_publish_replaces_the_previous_result_whole(tmp_path):
    out = evaluation(tmp_path / "results", {"old.json": "old"})
    leftover = staging_dir(out, kind="evaluation")  # what an interrupted run left
    (leftover / "leftover").write_text("from an interrupted run")
    tmp = staging_dir(out, kind="evaluation")
    assert tmp == tmp_path / "results.partial" and [p.name for p in tmp.iterdir()] == [MARKER]  # leftover cleared
    (tmp / "new.json").write_text("new")
    assert (out / "old.json").exists()  # untouched until the new result is complete
    publish_dir(tmp, out)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.json"] and written_as(out) == "evaluation"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_an_interrupted_write_leaves_the_previous_result(tmp_path):
    out = evaluation(tmp_path / "results", {"scores.json": "{}"})
    with pytest.raises(KeyboardInterrupt):
        tmp = staging_dir(out, kind="evaluation")
        (tmp / "scores.json").write_text('{"half": ')
        raise KeyboardInterrupt
    assert (out / "scores.json").read_text() == "{}"


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "renameat2"), reason="needs Linux renameat2")
def test_an_existing_output_is_never_missing_while_it_is_replaced(tmp_path, monkeypatch):
    """The swap leaves no moment without `out`: every rename the publish makes finds `out` in place."""
    import cognitive.atomic as atomic

    out = evaluation(tmp_path / "release", {"weights": "old"})
    tmp = staging_dir(out, kind="evaluation")
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

    out = evaluation(tmp_path / "results", {"scores.json": "old"})
    tmp = staging_dir(out, kind="evaluation")
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
    staging_dir(out, kind="evaluation")  # the next run
    assert (out / "scores.json").read_text() == "old" and not (tmp_path / "results.old").exists()


def test_output_dir_clears_a_stale_partial_and_removes_its_own_on_error(tmp_path):
    out = tmp_path / "release"
    stale = staging_dir(out, kind="release")  # a merge killed -9 mid-save left this
    (stale / "half-written.safetensors").write_text("killed -9")
    with output_dir(out, kind="release") as tmp:
        assert [p.name for p in tmp.iterdir()] == [MARKER]  # the stale scratch of a killed run is gone
        (tmp / "model.safetensors").write_text("ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    with pytest.raises(ValueError), output_dir(out, kind="release", overwrite=True) as tmp:
        (tmp / "model.safetensors").write_text("half")
        raise ValueError("the merge check failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]
    assert (out / "model.safetensors").read_text() == "ok"
    with pytest.raises(UserError, match="exists; pass --overwrite"), output_dir(out, kind="release"):
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


@pytest.mark.parametrize("kind", ["run", "dataset", "release", "evaluation", "export"])
def test_a_directory_this_project_did_not_write_is_never_replaced(kind, tmp_path, monkeypatch):
    mine = user_files(tmp_path / "mine")
    link = tmp_path / "link"
    link.symlink_to(mine)
    (tmp_path / "file.txt").write_text("a file")
    cwd = user_files(tmp_path / "cwd")
    monkeypatch.chdir(cwd)
    before = listing(tmp_path)
    refusals = {
        mine: "was not written by cognitive-slm (it holds important.txt, notes/; no .cognitive-slm.json)",
        link: f"is a symbolic link (to {mine})",
        tmp_path / "file.txt": "is a file, not a",
        Path("."): "is the current directory (important.txt, notes/)",
        Path(".."): "holds the current directory",
        tmp_path: "holds the current directory",
    }
    for out, needle in refusals.items():
        with pytest.raises(UserError, match="refusing") as refused:
            with output_dir(out, kind=kind, overwrite=True) as tmp:
                (tmp / "new").write_text("new")
        assert needle in str(refused.value) and "\n" not in str(refused.value)
    assert listing(tmp_path) == before  # nothing replaced, nothing staged beside them


def test_only_an_output_of_the_same_kind_or_an_empty_directory_is_replaced(tmp_path):
    run = staging_dir(tmp_path / "runs" / "demo", kind="run")
    publish_dir(run, tmp_path / "runs" / "demo")
    with pytest.raises(UserError, match="is a run this project wrote, not an evaluation"):
        check_replaceable(tmp_path / "runs" / "demo", "evaluation", overwrite=True)
    check_replaceable(tmp_path / "runs" / "demo", "run", overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with output_dir(empty, kind="dataset", overwrite=True) as tmp:
        (tmp / "train.jsonl").write_text("")
    assert written_as(empty) == "dataset"


@pytest.mark.parametrize(
    "kind, files",
    [
        ("run", {"run_config.yaml": "model_name_or_path: x\n", "run_info.json": "{}"}),
        ("dataset", {"report.json": '{"config": {}, "stages": {}}'}),
        ("release", {"config.json": "{}", "README.md": "---\ntags: []\n---\nA cognitive-slm release: **x**"}),
        ("evaluation", {"results.json": '{"settings": {}, "suites": {}}'}),
    ],
)
def test_outputs_written_before_the_marker_are_recognised_by_their_files(kind, files, tmp_path):
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name, text in files.items():
        (legacy / name).write_text(text)
    assert written_as(legacy) == kind
    with output_dir(legacy, kind=kind, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in legacy.iterdir()) == [MARKER, "new"]


def test_a_file_named_like_a_legacy_marker_is_not_enough(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "README.md").write_text("# my project\n")
    (checkout / "config.json").write_text("{}")
    (checkout / "results.json").write_text('{"accuracy": 1}')
    (checkout / "report.json").write_text("[]")
    assert written_as(checkout) is None
    with pytest.raises(UserError, match="was not written by cognitive-slm"):
        check_replaceable(checkout, "release", overwrite=True)


def test_a_partial_or_old_dir_this_project_did_not_write_is_left_alone(tmp_path):
    out = tmp_path / "results"
    partial = user_files(tmp_path / "results.partial")
    old = user_files(tmp_path / "results.old")
    before = listing(tmp_path)
    with pytest.raises(UserError, match=r"results\.partial is in the way and not written by cognitive-slm"):
        staging_dir(out, kind="evaluation")
    with pytest.raises(UserError, match="refusing to delete it"):
        remove_output(partial, "evaluation")
    assert listing(tmp_path) == before and not out.exists()  # .old not restored as results: not ours
    (partial / "important.txt").unlink()
    (partial / "notes" / "todo.md").unlink()
    (partial / "notes").rmdir()
    assert staging_dir(out, kind="evaluation") == partial  # an empty leftover is cleared and reused
    assert (old / "important.txt").read_text() == "mine"


def test_publish_checks_again_and_keeps_the_new_output_when_refused(tmp_path):
    out = tmp_path / "results"
    tmp = staging_dir(out, kind="evaluation")
    (tmp / "results.json").write_text("{}")
    user_files(out)  # appeared while the evaluation ran
    with pytest.raises(UserError, match=f"the new output is complete in {tmp}"):
        publish_dir(tmp, out)
    assert (out / "important.txt").read_text() == "mine" and (tmp / "results.json").exists()


def test_claim_dir_writes_into_its_own_directory_and_refuses_the_users(tmp_path):
    from cognitive.atomic import claim_dir

    out = claim_dir(tmp_path / "ablation", "evaluation")
    (out / "evals").mkdir()
    assert claim_dir(out, "evaluation") == out and (out / "evals").is_dir()  # a rerun resumes in it
    legacy = tmp_path / "old-ablation"  # written before the marker: its results.json
    legacy.mkdir()
    (legacy / "results.json").write_text('{"settings": {}, "summary": {}, "verdict": ""}')
    assert claim_dir(legacy, "evaluation") == legacy and written_as(legacy) == "evaluation"
    mine = user_files(tmp_path / "mine")
    with pytest.raises(UserError, match="was not written by cognitive-slm"):
        claim_dir(mine, "evaluation")
    assert sorted(listing(mine)) == ["important.txt", "notes", "notes/todo.md"]
