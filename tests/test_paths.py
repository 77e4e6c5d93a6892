"""seglib.paths: where runs, data and stored results are."""

import pathlib

import seglib
import seglib.paths

PACKAGE = pathlib.Path(seglib.__file__).parent


def test_runs_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLIB_RUNS", str(tmp_path / "drive"))
    assert seglib.paths.runs_root() == tmp_path / "drive"
    monkeypatch.delenv("SEGLIB_RUNS")
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", tmp_path / "repo")
    assert seglib.paths.runs_root() == tmp_path / "repo" / "runs"
    assert seglib.paths.data_root() == tmp_path / "repo" / "data"
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", None)
    monkeypatch.chdir(tmp_path)
    assert seglib.paths.runs_root() == tmp_path / "runs"


def test_the_repository_is_found_from_a_clone():
    # the tests run from a clone: seglib/ sits beside pyproject.toml
    assert seglib.paths.REPO_ROOT == PACKAGE.parent
    assert (seglib.paths.REPO_ROOT / "pyproject.toml").is_file()


def test_stored_results_come_from_the_clone_or_from_github(monkeypatch):
    local = seglib.paths.stored_result("camvid_cpu.csv")
    assert local == PACKAGE.parent / "benchmarks" / "results" / "camvid_cpu.csv"
    assert local.is_file()  # notebook 07 reads it: it must be committed
    monkeypatch.setattr(seglib.paths, "REPO_ROOT", None)  # installed without a clone (Colab)
    monkeypatch.setattr(seglib.paths, "REPOSITORY", "https://github.com/someone/fork")
    assert seglib.paths.stored_result("camvid_cpu_metrics/ccnet-r0.csv") == (
        "https://raw.githubusercontent.com/someone/fork/main/benchmarks/results/"
        "camvid_cpu_metrics/ccnet-r0.csv"
    )
