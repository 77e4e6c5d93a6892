"""seglib.engine.from_config: datasets and loaders built from a TrainConfig."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from seglib import train as train_cli
from seglib.data import (
    train_transform,
)
from seglib.engine.config import TrainConfig, recipe
from seglib.engine.from_config import build_datasets


@pytest.mark.slow
def test_build_loaders_workers_are_not_persistent():
    """Persistent workers keep epoch 1's seeds, breaking exact resume with workers > 0."""
    from types import SimpleNamespace

    data = TensorDataset(torch.zeros(8, 3, 4, 4), torch.zeros(8, 4, 4, dtype=torch.long))
    cfg = train_cli.TrainConfig(workers=2, batch_size=4)
    train, val = train_cli.build_loaders(cfg, SimpleNamespace(train=data, val=data))
    assert train.num_workers == 2 and val.num_workers == 2
    assert not train.persistent_workers and not val.persistent_workers
    assert train.generator is not None and train.sampler.generator is train.generator


def test_jitter_preset_reaches_the_camvid_train_pipeline(make_camvid, no_camvid):
    root = make_camvid("segnet", n=2, size=(24, 32))
    make_camvid("segnet", split="val", n=1, size=(24, 32), root=root)
    config = TrainConfig(data="camvid", data_dir=str(root), crop=(16, 16), jitter="strong")
    steps = build_datasets(config).train.transform.transforms
    (jitter,) = [s for s in steps if isinstance(s, A.ColorJitter)]
    assert jitter.p == 0.8 and tuple(jitter.brightness) == pytest.approx((0.6, 1.4))
    plain = build_datasets(config.replace(jitter="none")).train.transform.transforms
    assert not any(isinstance(s, A.ColorJitter) for s in plain)
    with pytest.raises(ValueError, match="jitter must be one of"):
        TrainConfig(jitter="wild")
    with pytest.raises(ValueError, match="jitter must be one of"):
        train_transform(jitter="wild")


@pytest.mark.parametrize("name", ["camvid-gpu", "gpu"])
def test_gpu_recipe_without_camvid_says_what_to_do(no_camvid, monkeypatch, name):
    """The GPU path must not quietly train on the synthetic scenes."""
    monkeypatch.delenv("SEGLIB_TINY", raising=False)
    config = recipe(name)
    assert config.data == "camvid"
    with pytest.raises(FileNotFoundError) as err:
        build_datasets(config)
    message = str(err.value)
    assert "On Colab, run seglib.data.ensure_camvid()" in message
    assert 'seglib.data.download_camvid("../repo/data/CamVid")' in message
    assert "CAMVID_DIR" in message


def test_a_corrupt_val_label_stops_the_run_before_training(make_camvid, tmp_path, monkeypatch):
    root = make_camvid(split="train", n=4, size=(32, 32))
    make_camvid(split="val", n=2, size=(32, 32), root=root)
    bad = root / "valannot" / "frame1.png"
    Image.fromarray(np.full((32, 32), 200, dtype=np.uint8)).save(bad)  # not a class
    monkeypatch.setattr(train_cli, "fit", lambda *a, **k: pytest.fail("training started"))
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"frame1.png: label values must be 0..11 or 255"):
        train_cli.main(["--data-dir", str(root), "--epochs", "1", "--batch-size", "2",
                        "--crop", "32x32", "--device", "cpu", "--out", str(out)])
    assert not out.exists()
