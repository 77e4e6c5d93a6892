"""benchmarks/camvid_cpu.py keeps the stored rows of runs that are not on this machine.

Run folders are never committed, so a clean clone that trains one ablation run must not
drop the rows (and curves) of the runs trained elsewhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "camvid_cpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("camvid_cpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fresh_rows_replace_stored_ones_and_others_stay(bench):
    stored = pd.DataFrame(
        [{"run": "ccnet-r2", "test_miou": 0.43}, {"run": "ccnet-r1", "test_miou": 0.30}]
    )
    fresh = [{"run": "ccnet-r1", "test_miou": 0.41}, {"run": "ccnet-r0", "test_miou": 0.38}]
    table = bench.merge_rows(fresh, stored)
    assert dict(zip(table["run"], table["test_miou"])) == {
        "ccnet-r2": 0.43, "ccnet-r1": 0.41, "ccnet-r0": 0.38,
    }  # fmt: skip
    # the order of RUNS, whatever order they were scored or stored in
    order = [name for name in bench.RUNS if name in set(table["run"])]
    assert table["run"].tolist() == order


def test_nothing_stored_and_nothing_scored(bench):
    assert bench.merge_rows([], None).empty
    only_stored = bench.merge_rows([], pd.DataFrame([{"run": "refinenet", "test_miou": 0.4}]))
    assert only_stored["run"].tolist() == ["refinenet"]
