"""benchmarks/attention.py: the ratio columns of its table."""

from __future__ import annotations

import math
import sys

import pytest

from tests.helpers import ROOT, load_script


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports its sibling _memory
    try:
        yield load_script("benchmarks/attention.py", "attention_bench")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def row(method: str, peak_mb: float, best_ms: float) -> dict:
    return {"method": method, "H": 8, "time_ms": best_ms, "best_ms": best_ms,
            "peak_mb": peak_mb, "rss_mb": peak_mb, "saved_mb": 1.0}


def test_ratios_against_the_baseline_and_dense(bench):
    base, ours, dense = bench._table([row("baseline", 4.0, 10.0), row("lean", 2.0, 5.0),
                                      row("dense", 8.0, 40.0)])
    assert ours["best_vs_baseline"] == pytest.approx(0.5)
    assert ours["peak_vs_baseline"] == pytest.approx(0.5)
    assert ours["dense_over_best"] == pytest.approx(8.0)
    assert ours["dense_over_peak"] == pytest.approx(4.0)


def test_a_peak_below_the_counters_resolution_gives_nan_not_a_crash(bench):
    # --sizes 8: the baseline's RSS peak can read 0 MB
    base, ours, dense = bench._table([row("baseline", 0.0, 1.0), row("lean", 0.0, 1.0),
                                      row("dense", 0.0, 2.0)])
    assert math.isnan(ours["peak_vs_baseline"]) and math.isnan(ours["dense_over_peak"])
    assert ours["dense_over_best"] == pytest.approx(2.0)
