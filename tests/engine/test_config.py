"""seglib.engine.config: TrainConfig refuses, before any work, values that train nothing or
break mid-run (issue 28); every field carries its help; the recipes and modes that the
notebooks' mode cell and `--recipe` turn into."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from seglib import train as train_cli
from seglib.engine import fit
from seglib.engine.config import (
    RECIPES,
    REFINENET_LR,
    TrainConfig,
    is_tiny,
    min_input_side,
    option_fields,
    pick_mode,
    recipe,
)
from seglib.models import build_model


@pytest.mark.parametrize("clip", [0.0, -1.0, math.inf, math.nan])
def test_grad_clip_must_be_a_finite_positive_norm(clip):
    with pytest.raises(ValueError, match="grad_clip must be a finite number > 0"):
        TrainConfig(grad_clip=clip)
    assert TrainConfig(grad_clip=1.0).grad_clip == 1.0 and TrainConfig().grad_clip is None


@pytest.mark.parametrize("scale", [0.0, -0.5, math.inf, math.nan])
def test_eval_scale_must_be_finite_and_positive(scale):
    with pytest.raises(ValueError, match="eval_scale must be a finite number > 0"):
        TrainConfig(eval_scale=scale)


def test_the_smallest_input_is_twice_the_deepest_stride():
    assert min_input_side("ccnet", 8) == 16 and min_input_side("ccnet", 16) == 32
    assert min_input_side("refinenet", 8) == 64  # RefineNet's deepest map is 1/32
    assert min_input_side("my-unet") is None  # a model seglib does not build: no rule
    # the rule's premise, measured: the deepest feature map has 2x2 pixels at that size
    # and 1x1 at half of it
    for name, stride, side in [("ccnet", 8, 16), ("ccnet", 16, 32), ("refinenet", 8, 64)]:
        net = build_model(name, 3, "resnet18", output_stride=stride).eval()
        with torch.no_grad():
            at_side = net.backbone(torch.zeros(1, 3, side, side))[-1]  # (1, C, 2, 2)
            at_half = net.backbone(torch.zeros(1, 3, side // 2, side // 2))[-1]  # (1, C, 1, 1)
        assert tuple(at_side.shape[-2:]) == (2, 2) and tuple(at_half.shape[-2:]) == (1, 1)


@pytest.mark.parametrize("crop", [(8, 8), (7, 7), (1, 1), (15, 480)])
def test_a_crop_below_what_ccnet_takes_is_refused_naming_the_flag(crop):
    config = TrainConfig(crop=crop)  # builds: an older run's checkpoint must still load
    with pytest.raises(ValueError, match=r"crop \(--crop\) .* too small .* at least 16x16"):
        config.check_crop()


def test_the_smallest_crop_follows_the_model_and_its_stride():
    with pytest.raises(ValueError, match="at least 32x32"):
        TrainConfig(crop=(24, 24), output_stride=16).check_crop()
    with pytest.raises(ValueError, match="at least 64x64"):
        TrainConfig(model="refinenet", crop=(32, 48)).check_crop()
    for fine in (TrainConfig(crop=(16, 16)), TrainConfig(model="custom", crop=(4, 4)),
                 TrainConfig(crop=None)):
        fine.check_crop()  # no error (a custom model: no known stride, no rule)


def test_fit_refuses_a_crop_too_small_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="at least 16x16"):
        fit(nn.Conv2d(3, 3, 1), [], [], TrainConfig(crop=(8, 8)), out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_config_of_an_older_version_still_loads():
    """Older checkpoints store a free-form `extra` dict (and may hold other retired
    fields): `from_dict` drops what this version does not know."""
    old = TrainConfig(epochs=3, crop=(32, 48)).to_dict()
    old["extra"] = {"note": "written before `extra` was removed"}
    config = TrainConfig.from_dict(old)
    assert (config.epochs, config.crop) == (3, (32, 48)) and not hasattr(config, "extra")
    assert config.to_dict() == {k: v for k, v in old.items() if k != "extra"}


def test_every_field_carries_its_help():
    """The meaning and unit of each field sit beside it; `option` fields are flags."""
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help", "").strip(), f"TrainConfig.{f.name} has no help"
        assert isinstance(f.metadata.get("cli"), bool), f"{f.name}: neither option nor setting"
    names = {f.name for f in option_fields()}
    assert "batch_size" in names and "momentum" not in names


def test_mode_follows_the_environment_and_the_hardware(monkeypatch):
    monkeypatch.delenv("SEGLIB_MODE", raising=False)
    assert pick_mode() == ("gpu" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("SEGLIB_MODE", "cpu")
    assert pick_mode() == "cpu"
    assert pick_mode("gpu") == "gpu"  # an explicit choice wins
    monkeypatch.setenv("SEGLIB_MODE", "tpu")
    with pytest.raises(ValueError, match="mode must be one of"):
        pick_mode()


def test_recipes_by_mode_and_name_with_overrides(monkeypatch):
    monkeypatch.delenv("SEGLIB_TINY", raising=False)
    gpu = recipe("gpu")
    assert gpu == recipe("camvid-gpu")
    assert (gpu.backbone, gpu.data, gpu.crop, gpu.lr) == ("resnet101", "camvid", (360, 480), 0.01)
    cpu = recipe("cpu", epochs=2)
    assert (cpu.epochs, cpu.crop, cpu.eval_scale, cpu.class_weighting) == (
        2,
        (180, 240),
        0.5,
        "median",
    )
    assert recipe("cpu", model="refinenet").lr < cpu.lr
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("fast")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_refinenet_learns_at_one_rate_in_recipes_and_from_scratch(monkeypatch, name):
    monkeypatch.delenv("SEGLIB_TINY", raising=False)
    assert recipe(name, model="refinenet").lr == REFINENET_LR
    assert train_cli.parse_args(["--model", "refinenet"])[0].lr == REFINENET_LR
    assert train_cli.parse_args(["--recipe", name, "--model", "refinenet"])[0].lr == REFINENET_LR


def test_ccnet_only_fields_do_not_reach_refinenet(monkeypatch):
    """The CPU recipe's output stride and decoder shape CCNet; RefineNet's stored
    config keeps the defaults, so that it never claims a decoder it does not have."""
    monkeypatch.delenv("SEGLIB_TINY", raising=False)
    ccnet, refinenet = recipe("cpu"), recipe("cpu", model="refinenet")
    assert (ccnet.output_stride, ccnet.decoder) == (16, True)
    defaults = TrainConfig()
    assert (refinenet.output_stride, refinenet.decoder) == (defaults.output_stride,
                                                           defaults.decoder)
    assert (refinenet.epochs, refinenet.crop) == (ccnet.epochs, ccnet.crop)


def test_tiny_keeps_the_model_and_shrinks_everything_else(monkeypatch):
    monkeypatch.setenv("SEGLIB_TINY", "1")
    c = recipe("gpu")
    assert (c.backbone, c.model, c.lr) == ("resnet101", "ccnet", RECIPES["camvid-gpu"]["lr"])
    assert (c.epochs, c.crop, c.weights_backbone, c.train_limit) == (1, (64, 96), None, 4)
    assert c.data == "auto"  # no download in CI: CamVid when present, else synthetic


@pytest.mark.parametrize("value, tiny", [("1", True), ("true", True), ("Yes", True),
                                         ("on", True), (" ON ", True), ("0", False),
                                         ("false", False), ("no", False), ("off", False),
                                         ("", False)])
def test_seglib_tiny_reads_the_usual_switch_words(monkeypatch, value, tiny):
    monkeypatch.setenv("SEGLIB_TINY", value)
    assert is_tiny() is tiny
    assert (recipe("camvid-gpu").epochs == 1) is tiny


@pytest.mark.parametrize("value", ["maybe", "2", "tiny", "enabled"])
def test_seglib_tiny_refuses_other_words_in_one_line(monkeypatch, value):
    monkeypatch.setenv("SEGLIB_TINY", value)
    with pytest.raises(ValueError, match=f"SEGLIB_TINY must be one of .*got '{value}'") as info:
        is_tiny()
    assert "\n" not in str(info.value) and "off" in str(info.value)
