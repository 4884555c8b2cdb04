"""cognitive's OpenMP defaults (cognitive/__init__.py): waiting threads asleep, with a short spin first when the
machine is idle at start; a value the user set always wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cognitive import SHORT_SPIN, others_running, thread_defaults
from tests.conftest import ROOT


@pytest.mark.parametrize(
    "cores, others, spin",
    [(2, 0, True), (2, 1, False), (1, 0, True), (8, 3, True), (8, 4, False), (16, 40, False)],
)
def test_short_spin_only_while_fewer_than_half_the_cores_are_busy(cores, others, spin):
    out = thread_defaults({}, cores, others)
    assert out["OMP_WAIT_POLICY"] == "PASSIVE"
    assert out.get("GOMP_SPINCOUNT") == (SHORT_SPIN if spin else None)


def test_settings_already_made_win():
    assert thread_defaults({"OMP_WAIT_POLICY": "ACTIVE"}, 2, 0) == {}  # spinning already, no spin count added
    assert thread_defaults({"OMP_WAIT_POLICY": "passive"}, 2, 0) == {"GOMP_SPINCOUNT": SHORT_SPIN}
    assert thread_defaults({"GOMP_SPINCOUNT": "0"}, 2, 0) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_defaults({"COGNITIVE_SLM_THREAD_DEFAULTS": "0"}, 2, 0) == {}


def test_others_running_reads_this_machine():
    assert isinstance(others_running(), int) and others_running() >= 0


def _imported_settings(env: dict) -> str:
    """OMP_WAIT_POLICY and GOMP_SPINCOUNT as a fresh `import cognitive` leaves them (before torch loads)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import os, cognitive; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_sets_the_defaults_once_before_torch_loads():
    assert _imported_settings({"GOMP_SPINCOUNT": "123"}) == "PASSIVE 123"
    assert _imported_settings({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE None"
    assert _imported_settings({"COGNITIVE_SLM_THREAD_DEFAULTS": "0"}) == "None None"
    assert _imported_settings({}) in (
        "PASSIVE None",
        f"PASSIVE {SHORT_SPIN}",
    )  # the spin depends on this machine's load
