"""seglib.engine.checkpoint: atomic writes, RNG state round-trips, unreadable and
incompatible checkpoints."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import torch

import seglib.engine.checkpoint as ckpt_mod
from seglib.engine.checkpoint import (
    FORMAT,
    atomic_save,
    check_compatible,
    load_checkpoint,
    rng_state,
    set_rng_state,
)


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    good = {"format": FORMAT, "epoch": 1, "w": torch.arange(1000.0)}
    atomic_save(good, path)
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # write real bytes...
        f.truncate(100)  # ...leave a partial file behind...
        raise OSError("disk full")  # ...and die

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"format": FORMAT, "epoch": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    back = load_checkpoint(path)
    assert back["epoch"] == 1 and torch.equal(back["w"], good["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_interrupt_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"format": FORMAT, "epoch": 1}, path)

    def interrupted(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"format": FORMAT, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert len(list(tmp_path.iterdir())) == 1


def test_load_rejects_foreign_files(tmp_path):
    torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a seglib checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip_through_a_file(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)  # noqa: NPY002 - the global RNG is what the trainer restores
    random.seed(1)
    atomic_save({"format": FORMAT, "rng": rng_state()}, tmp_path / "r.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    torch.manual_seed(99)
    np.random.seed(99)  # noqa: NPY002
    random.seed(99)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]


@pytest.mark.skipif(not hasattr(__import__("os"), "fchmod"), reason="POSIX file modes")
def test_atomic_save_gives_the_umask_mode_without_touching_the_umask(tmp_path, monkeypatch):
    import os
    import stat

    old = os.umask(0o027)  # an unusual umask for this test, restored below
    try:
        assert ckpt_mod._read_umask() == 0o027
        monkeypatch.setattr(ckpt_mod, "_UMASK", 0o027)

        def no_umask(*args):  # changing the process umask would race with other threads
            raise AssertionError("atomic_save must not call os.umask")

        with monkeypatch.context() as m:
            m.setattr(os, "umask", no_umask)
            path = atomic_save({"format": FORMAT}, tmp_path / "m.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_a_full_disk_is_named_and_the_last_good_checkpoint_stays(tmp_path, monkeypatch):
    """The save goes to /dev/full, where every write fails with the OS's ENOSPC."""
    path = tmp_path / "best.pt"
    atomic_save({"format": FORMAT, "epoch": 1}, path)
    real_mkstemp = tempfile.mkstemp

    def onto_a_full_disk(*args, **kwargs):
        fd, tmp = real_mkstemp(*args, **kwargs)  # the temp file exists, as on a full disk
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), tmp

    monkeypatch.setattr(ckpt_mod.tempfile, "mkstemp", onto_a_full_disk)
    with pytest.raises(OSError, match=f"no space left on device writing {path}") as info:
        atomic_save({"format": FORMAT, "epoch": 2, "w": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left


# saves a checkpoint whose torch.save writes part of it, then hangs until a signal
SLOW_SAVE = """
import sys, time
import seglib.engine.checkpoint as ckpt
from seglib import cli

def stuck(obj, f):
    f.write(b"PK\\x03\\x04" + bytes(1000))
    f.flush()
    print("saving", flush=True)
    time.sleep(300)

ckpt.torch.save = stuck
cli.run(lambda: ckpt.atomic_save({"epoch": 2}, sys.argv[1]))
"""


@pytest.mark.slow  # a second Python process (~5 s of imports on a busy core)
def test_sigterm_while_saving_leaves_no_temp_file(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"format": FORMAT, "epoch": 1}, path)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saving"
        assert len(list(tmp_path.glob(".last.pt.*.tmp"))) == 1  # half written
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == ["interrupted (SIGTERM)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert load_checkpoint(path)["epoch"] == 1


def test_truncated_file_is_called_truncated(finished_run, tmp_path):
    data = (finished_run / "last.pt").read_bytes()
    path = tmp_path / "last.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"last.pt: it is truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ({"model": "refinenet", "features": 64}, {"model": "refinenet", "features": 32},
         "features"),
        ({"model": "ccnet", "backbone": "resnet18"}, {"model": "ccnet", "backbone": "resnet34"},
         "backbone"),
        ({"model": "ccnet", "num_classes": 11}, {"model": "ccnet", "num_classes": 5},
         "num_classes"),
        ({"model": "ccnet", "output_stride": 8}, {"model": "ccnet", "output_stride": 16},
         "output_stride"),
    ],
)
def test_check_compatible_names_every_model_shaping_option(old, new, key):
    ckpt = {"model_class": "X", "config": old}
    with pytest.raises(ValueError, match=f"{key}: checkpoint"):
        check_compatible(ckpt, "X", new, "last.pt")
    # an option the model does not use is not a difference: RefineNet has no recurrence
    check_compatible({"model_class": "X", "config": {"model": "refinenet", "recurrence": 2}},
                     "X", {"model": "refinenet", "recurrence": 1})


def test_rng_state_for_rank_picks_this_ranks_state():
    from seglib.engine.checkpoint import rng_state_for_rank

    single = {"torch": torch.zeros(1)}
    assert rng_state_for_rank(single, 3) is single  # a checkpoint from a non-DDP run
    states = [{"torch": torch.full((1,), float(r))} for r in range(2)]
    assert rng_state_for_rank(states, 1) is states[1]
    assert rng_state_for_rank(states, 5) is states[0]  # more ranks than stored: rank 0's
    with pytest.raises(ValueError, match="empty list"):
        rng_state_for_rank([], 0)
