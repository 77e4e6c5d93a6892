"""pick_datasets: explicit path, then $CAMVID_DIR, then data/CamVid, then synthetic."""

from __future__ import annotations

import os

import pytest
import torch

from seglib.data import CLASSES, PALETTE, DataChoice, pick_datasets


def tiny_camvid(make_camvid, root=None):
    root = make_camvid("segnet", split="train", n=3, size=(24, 32), root=root)
    make_camvid("segnet", split="val", n=2, size=(24, 32), root=root)
    return root


def test_explicit_root_wins_over_env(no_camvid, make_camvid, monkeypatch, tmp_path, capsys):
    root = tiny_camvid(make_camvid)
    monkeypatch.setenv("CAMVID_DIR", str(tmp_path / "elsewhere"))
    choice = pick_datasets(root, crop=(16, 16))
    assert isinstance(choice, DataChoice)
    assert choice.name == "camvid" and choice.root == root
    assert (len(choice.train), len(choice.val)) == (3, 2)
    assert choice.num_classes == 11 and choice.classes == list(CLASSES)
    assert (choice.palette == PALETTE).all()
    assert choice.train[0][0].shape == (3, 16, 16)  # crop reaches the train pipeline
    assert choice.val[0][0].shape == (3, 24, 32)  # val untouched
    out = capsys.readouterr().out.strip().splitlines()
    # the folder as a path relative to the working directory: the same on every machine
    assert len(out) == 1 and "CamVid" in out[0] and f"from {os.path.relpath(root)} " in out[0]


def test_env_variable_then_cwd_data_folder(no_camvid, make_camvid, monkeypatch, capsys):
    root = tiny_camvid(make_camvid)
    monkeypatch.setenv("CAMVID_DIR", str(root))
    assert pick_datasets().root == root
    assert "$CAMVID_DIR" in capsys.readouterr().out
    monkeypatch.delenv("CAMVID_DIR")
    local = tiny_camvid(make_camvid, root=no_camvid / "data" / "CamVid")
    choice = pick_datasets(verbose=False)
    assert choice.name == "camvid" and choice.root.resolve() == local.resolve()
    assert capsys.readouterr().out == ""


def test_root_found_by_ensure_camvid_keeps_its_reason(no_camvid, make_camvid, monkeypatch,
                                                      capsys):
    """Notebooks pass ensure_camvid()'s folder on: it is reported as $CAMVID_DIR's or
    data/CamVid's, not as a path the learner typed."""
    root = tiny_camvid(make_camvid)
    monkeypatch.setenv("CAMVID_DIR", str(root))
    pick_datasets(os.path.relpath(root))
    assert "($CAMVID_DIR)" in capsys.readouterr().out
    monkeypatch.delenv("CAMVID_DIR")
    local = tiny_camvid(make_camvid, root=no_camvid / "data" / "CamVid")
    pick_datasets(local)
    assert "(data/CamVid)" in capsys.readouterr().out
    pick_datasets(root)
    assert "(given path)" in capsys.readouterr().out


def test_repository_data_folder(no_camvid, make_camvid, tmp_path):
    local = tiny_camvid(make_camvid, root=tmp_path / "repo" / "data" / "CamVid")
    assert pick_datasets(verbose=False).root == local


def test_falls_back_to_synthetic_and_says_so(no_camvid, capsys):
    choice = pick_datasets(train_size=4, val_size=2, synthetic_size=(48, 64), seed=1)
    assert choice.name == "synthetic" and choice.root is None
    assert (len(choice.train), len(choice.val)) == (4, 2)
    assert choice.classes == list(CLASSES) and choice.num_classes == 11
    x, y = choice.val[0]
    assert x.shape == (3, 48, 64) and y.dtype == torch.int64
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "synthetic" in out[0] and "no CamVid" in out[0]
    # the crop is the scene size when no synthetic_size is given
    alias = pick_datasets(source="synthetic", train_size=3, val_size=1, crop=(40, 56))
    assert (len(alias.train), len(alias.val)) == (3, 1)
    assert alias.val[0][0].shape == (3, 40, 56)


def test_synthetic_source_ignores_camvid(no_camvid, make_camvid, monkeypatch):
    monkeypatch.setenv("CAMVID_DIR", str(tiny_camvid(make_camvid)))
    choice = pick_datasets(source="synthetic", train_size=2, val_size=1, verbose=False)
    assert choice.name == "synthetic"


def test_camvid_source_without_data_is_an_error(no_camvid):
    with pytest.raises(FileNotFoundError, match=r"seglib\.data\.download_camvid"):
        pick_datasets(source="camvid", verbose=False)


def test_explicit_bad_root_is_an_error_not_a_fallback(no_camvid, tmp_path):
    with pytest.raises(FileNotFoundError, match="download"):
        pick_datasets(tmp_path / "typo", verbose=False)


def test_bad_arguments(no_camvid):
    with pytest.raises(ValueError, match="source"):
        pick_datasets(source="kitti")
    with pytest.raises(ValueError, match="split"):
        pick_datasets(split="train")
