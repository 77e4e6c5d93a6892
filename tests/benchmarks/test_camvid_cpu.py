"""benchmarks/camvid_cpu.py keeps the stored rows of runs that are not on this machine.

Run folders are never committed, so a clean clone that trains one ablation run must not
drop the rows (and curves) of the runs trained elsewhere.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/camvid_cpu.py", "camvid_cpu_bench")


def test_fresh_rows_replace_stored_ones_and_others_stay(bench):
    stored = pd.DataFrame(
        [{"run": "ccnet-r2", "test_miou": 0.43}, {"run": "ccnet-r1", "test_miou": 0.30}]
    )
    fresh = [{"run": "ccnet-r1", "test_miou": 0.41}, {"run": "ccnet-r0", "test_miou": 0.38}]
    table = bench.merge_rows(fresh, stored)
    assert dict(zip(table["run"], table["test_miou"])) == {
        "ccnet-r2": 0.43, "ccnet-r1": 0.41, "ccnet-r0": 0.38,
    }
    # the order of RUNS, whatever order they were scored or stored in
    order = [name for name in bench.RUNS if name in set(table["run"])]
    assert table["run"].tolist() == order


def test_nothing_stored_and_nothing_scored(bench):
    assert bench.merge_rows([], None).empty
    only_stored = bench.merge_rows([], pd.DataFrame([{"run": "refinenet", "test_miou": 0.4}]))
    assert only_stored["run"].tolist() == ["refinenet"]


def test_markdown_shows_the_adjusted_score_only_where_there_is_one(bench):
    common = {"params_m": 13.0, "epochs": 30, "train_minutes": 47.0, "images_per_s": 4.6}
    table = bench.merge_rows([
        {"run": "ccnet-r2", "test_miou": 0.429, "test_miou_adjusted": 0.4655, "tau": 0.75,
         **common},
        {"run": "ccnet-r1", "test_miou": 0.431, **common},  # a stored row from before
    ], None)
    lines = bench.markdown(table).splitlines()
    r2 = next(line for line in lines if line.startswith("| ccnet-r2 "))
    r1 = next(line for line in lines if line.startswith("| ccnet-r1 "))
    assert "| 42.9 | 46.6 (0.75) | 13.0 |" in r2
    assert "| 43.1 |  | 13.0 |" in r1
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_default_runs_are_the_ablation_and_every_run_has_its_own_folder(bench):
    assert set(bench.ABLATION) <= set(bench.RUNS)
    assert {"ccnet-r2", "ccnet-r1", "ccnet-r0"} <= set(bench.ABLATION)
    folders = [bench.out_dir(name) for name in bench.RUNS]
    assert len(set(folders)) == len(folders)
    assert bench.out_dir("recipe").name == "camvid-cpu"  # make camvid-cpu's and 06's run


def _config(bench, name, monkeypatch):
    """The TrainConfig that `python -m seglib.train` builds for run `name`."""
    from seglib import train as train_cli

    monkeypatch.delenv("SEGLIB_TINY", raising=False)
    config, _ = train_cli.parse_args(["--recipe", bench.RECIPE, *bench.RUNS[name], "--out", "x"])
    return config


def test_the_ablation_differs_only_in_the_model_and_keeps_the_first_recipe(bench, monkeypatch):
    """R = 0, 1, 2 share every setting but the recurrence, whatever the recipe says
    today; the recipe run is the stored run it was adopted from."""
    r2, r1, r0 = (_config(bench, n, monkeypatch) for n in ("ccnet-r2", "ccnet-r1", "ccnet-r0"))
    assert (r2.output_stride, r2.decoder, r2.epochs) == (8, False, 30)
    assert (r2.recurrence, r1.recurrence, r0.recurrence) == (2, 1, 0)
    assert r1.replace(recurrence=2) == r2 and r0.replace(recurrence=2) == r2
    for name in ("refinenet-f128", "refinenet"):
        rn = _config(bench, name, monkeypatch)
        assert (rn.model, rn.epochs, rn.crop, rn.seed) == ("refinenet", 30, r2.crop, r2.seed)
    recipe = _config(bench, "recipe", monkeypatch)
    assert (recipe.output_stride, recipe.decoder, recipe.epochs) == (16, True, 60)
    assert _config(bench, "ccnet-r2-os16-decoder", monkeypatch) == recipe
    assert _config(bench, "recipe-r0", monkeypatch) == recipe.replace(recurrence=0)
