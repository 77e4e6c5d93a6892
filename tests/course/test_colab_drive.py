"""keep_runs_on_drive (issue 14): on Colab, runs go to Google Drive and outlive the VM.

"Colab" is conftest's `fake_colab`: its `drive.mount` creates `<mount point>/MyDrive`,
with the mount point under tmp_path.
"""

from __future__ import annotations

import os
import sys

import pytest

from seglib.course import keep_runs_on_drive
from seglib.paths import runs_root


@pytest.fixture(autouse=True)
def _no_runs_override(monkeypatch):
    """Start without $SEGLIB_RUNS; monkeypatch removes what the test sets afterwards."""
    monkeypatch.delenv("SEGLIB_RUNS", raising=False)


def test_on_colab_runs_go_to_drive(fake_colab, tmp_path, capsys):
    mount = tmp_path / "content" / "drive"
    target = keep_runs_on_drive(mount_point=mount)
    assert fake_colab == [str(mount)]
    assert target == mount / "MyDrive" / "seglib" / "runs" and target.is_dir()
    assert os.environ["SEGLIB_RUNS"] == str(target)
    assert runs_root() == target  # what fit(out=runs_root() / ...) and resume read
    assert str(target) in capsys.readouterr().out
    # a second call (cell run twice) changes nothing
    assert keep_runs_on_drive(mount_point=mount) == target


def test_folder_is_relative_to_my_drive(fake_colab, tmp_path):
    target = keep_runs_on_drive("courses/seg", mount_point=tmp_path)
    assert target == tmp_path / "MyDrive" / "courses" / "seg" and target.is_dir()
    with pytest.raises(ValueError, match="relative"):
        keep_runs_on_drive("/content/runs", mount_point=tmp_path)


def test_a_failed_mount_does_not_write_runs_to_the_vm(fake_colab, tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules["google.colab"].drive, "mount", lambda *a, **k: None)
    with pytest.raises(RuntimeError, match="not mounted"):
        keep_runs_on_drive(mount_point=tmp_path / "drive")
    assert "SEGLIB_RUNS" not in os.environ
    assert not (tmp_path / "drive").exists()


def test_off_colab_nothing_changes(not_colab, capsys):
    before = runs_root()
    assert keep_runs_on_drive() is None
    assert "SEGLIB_RUNS" not in os.environ and runs_root() == before
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"Not on Colab: runs stay in {before}"]
