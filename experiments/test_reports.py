"""The studies' folders hold together: the index lists every study, each study's plot is drawn from its figures.json
(and the committed PNG is small), and every driver script imports and parses its arguments from where it lives.
Their links and commands are checked with the docs (tests/unit/test_docs.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
STUDIES = sorted(p.parent.name for p in HERE.glob("*/README.md"))
REPORTS = [HERE / "README.md", *(HERE / s / "README.md" for s in STUDIES)]
DRIVERS = [
    "arithmetic_ceiling/bench_arithmetic.py",
    "grpo_cpu/bench_grpo.py",
    "grpo_defaults/run_arms.py",
    "transfer_paired/bench_transfer.py",
    "weight_interpolation/bench_interpolate.py",
    "weight_interpolation/interpolate.py",
]
MAX_PNG = 300 * 1024


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_index_lists_every_study():
    index = (HERE / "README.md").read_text()
    missing = [s for s in STUDIES if f"]({s}/)" not in index]
    assert not missing, missing
    assert len(STUDIES) >= 8


@pytest.mark.parametrize("study", STUDIES)
def test_each_report_shows_its_plot_drawn_from_its_figures(study, tmp_path):
    plot_reports = load(HERE / "plot_reports.py", "plot_reports")
    assert study in plot_reports.STUDIES, f"experiments/plot_reports.py draws no figure for {study}"
    drawn = plot_reports.draw(study, tmp_path)
    assert drawn.stat().st_size > 10_000  # a plot, not an empty canvas
    committed = HERE / study / f"{study}.png"
    assert committed.exists() and committed.stat().st_size < MAX_PNG, committed
    report = (HERE / study / "README.md").read_text()
    assert f"({study}.png)" in report and "figures.json" in report


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_driver_imports_and_parses_its_arguments(driver, monkeypatch, capsys):
    path = HERE / driver
    monkeypatch.syspath_prepend(str(path.parent))  # as `python experiments/<study>/<driver>.py` puts it first
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    module = load(path, f"driver_{path.stem}")
    with pytest.raises(SystemExit) as exit_:
        module.main()
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out
