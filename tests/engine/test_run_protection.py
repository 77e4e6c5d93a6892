"""seglib.engine.run_protection: a fresh run never destroys an earlier one (refused, naming
the files; `--overwrite` / `overwrite=True` replaces only the run files); and one run per
folder (issue 28): a second run into a folder a live run is training into stops at once and
names the first run's pid; a lock left by a dead run is taken over; the lock file goes when
the run ends, and a run removes the temporary files of saves that a killed run left."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from seglib import cli
from seglib import train as train_cli
from seglib.engine import TrainConfig, fit
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.run_protection import (
    LOCK_FILE,
    RunExistsError,
    RunLockedError,
    check_run_folder,
    run_lock,
)
from tests.helpers import (
    RUN_ARGS,
    TINY_CFG,
    Tiny,
    assert_one_line_error,
    copy_run,
    run_module,
    snapshot,
    tiny_loaders,
)

# a process that holds the lock of the folder argv[1] until it is killed
HOLD = """
import sys, time
from seglib.engine.run_protection import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(300)
"""


TINY = ["--data", "synthetic", "--epochs", "1", "--train-size", "4", "--val-size", "2",
        "--synthetic-size", "32x32", "--crop", "32x32", "--batch-size", "2",
        "--device", "cpu", "--workers", "0"]


CFG = TrainConfig(model="tiny", num_classes=3, epochs=1, lr=0.05, verbose=False)


def loaders():
    X = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    data = TensorDataset(X, X.argmax(1))
    return DataLoader(data, batch_size=2), DataLoader(data, batch_size=2)


@pytest.fixture
def holder(tmp_path):
    """Another process training into tmp_path/run, as far as the lock goes: (folder, pid)."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield out, proc.pid
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.mark.slow  # a second Python process (~5 s of imports on a busy core)
def test_a_second_run_into_a_busy_folder_stops_in_one_line_naming_the_first(holder, capsys):
    out, pid = holder
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: train_cli.main([*TINY, "--out", str(out)]))
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert f"pid {pid}" in lines[0] and str(out) in lines[0] and "in use" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing of the second run
    train, val = loaders()
    with pytest.raises(RunLockedError, match=f"pid {pid}"):  # notebooks too
        fit(Tiny(), train, val, CFG, out=out, animate=False)
    assert (out / LOCK_FILE).read_text().strip() == str(pid)  # the first run's lock stays


def test_the_lock_file_lives_as_long_as_the_run(tmp_path):
    out = tmp_path / "run"
    train, val = loaders()
    seen = []

    def look(row):
        seen.append((out / LOCK_FILE).read_text().strip())

    fit(Tiny(), train, val, CFG, out=out, animate=False, callback=look)
    assert seen == [str(os.getpid())]
    assert not (out / LOCK_FILE).exists()
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


def test_the_command_line_and_fit_share_one_lock(tmp_path):
    """The CLI locks before reading data, then calls fit, which locks again."""
    out = tmp_path / "run"
    train, val = loaders()
    with run_lock(out):
        fit(Tiny(), train, val, CFG, out=out, animate=False)
        assert (out / LOCK_FILE).exists()  # fit's exit did not release the outer lock
    assert not (out / LOCK_FILE).exists()


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_FILE).write_text(dead.stdout)  # what a killed run leaves
    train, val = loaders()
    hist = fit(Tiny(), train, val, CFG, out=out, animate=False)
    assert len(hist) == 1 and not (out / LOCK_FILE).exists()


def test_a_run_removes_the_half_written_saves_of_a_killed_run(tmp_path):
    out = tmp_path / "run"
    train, val = loaders()
    fit(Tiny(), train, val, CFG, out=out, animate=False)
    for name in (".last.pt.k2j4x_1.tmp", ".best.pt.abc.tmp", "notes.tmp", ".other.pt.x.tmp"):
        (out / name).write_bytes(b"PK\x03\x04 half a checkpoint")
    fit(Tiny(), train, val, CFG.replace(epochs=2), out=out, animate=False, resume=True)
    left = sorted(p.name for p in out.iterdir())
    assert left == [".other.pt.x.tmp", "best.pt", "last.pt", "metrics.csv", "notes.tmp"]


def test_a_folder_made_for_a_run_that_stops_early_is_removed(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError), run_lock(out):
        assert out.is_dir()
        raise RuntimeError("data not found")
    assert not out.exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    with run_lock(kept):
        pass
    assert kept.is_dir()  # a folder that was there before stays


def test_a_fresh_run_into_an_existing_run_is_refused_and_names_the_files(finished_run, tmp_path):
    out = copy_run(finished_run, tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(RunExistsError, match="last.pt, best.pt, metrics.csv") as info:
        train_cli.main([*RUN_ARGS, "--out", str(out)])
    assert "--resume" in str(info.value) and "--overwrite" in str(info.value)
    assert snapshot(out) == before  # metrics.csv not truncated, best.pt not replaced


@pytest.mark.slow  # a fresh Python process (~5 s of imports on a busy core)
def test_the_refusal_is_one_line_and_exit_status_2(finished_run, tmp_path):
    out = copy_run(finished_run, tmp_path / "run")
    before = snapshot(out)
    proc = run_module("seglib.train", *RUN_ARGS, "--out", str(out))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, str(out), "last.pt", "--overwrite")
    assert snapshot(out) == before


def test_fit_protects_notebook_runs_too(tmp_path):
    train, val = tiny_loaders()
    fit(Tiny(), train, val, TINY_CFG, out=tmp_path, animate=False)
    before = snapshot(tmp_path)
    with pytest.raises(RunExistsError, match="overwrite=True"):
        fit(Tiny(), train, val, TINY_CFG, out=tmp_path, animate=False)
    assert snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="exclude each other"):
        fit(Tiny(), train, val, TINY_CFG, out=tmp_path, animate=False, resume=True, overwrite=True)


def test_overwrite_replaces_only_the_run_files(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"an old, better model")
    (tmp_path / "last.pt").write_bytes(b"an old checkpoint")
    (tmp_path / "metrics.csv").write_text("epoch,val_miou\n1,0.9\n2,0.95\n")
    (tmp_path / "notes.txt").write_text("mine")
    train, val = tiny_loaders()
    fit(Tiny(), train, val, TINY_CFG, out=tmp_path, animate=False, overwrite=True)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not a run file: untouched


def test_a_header_only_metrics_file_holds_nothing_to_lose(tmp_path):
    """What a run stopped in its first epoch leaves: no rows, so no refusal."""
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n")
    check_run_folder(tmp_path)  # no error
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(RunExistsError, match="metrics.csv"):
        check_run_folder(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders: see the os.access test above")
def test_out_in_a_really_read_only_folder(tmp_path):  # pragma: no cover - not as root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="no write permission"):
            check_run_folder(ro / "run")
    finally:
        ro.chmod(0o755)
