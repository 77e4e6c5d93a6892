"""Recipes and modes: what the notebooks' mode cell and `--recipe` turn into."""

import pytest
import torch
import torch.nn.functional as F

from seglib import train as train_cli
from seglib.engine import TrainConfig, evaluate
from seglib.engine.config import RECIPES, REFINENET_LR, is_tiny, pick_mode, recipe


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


def test_cli_flags_override_the_recipe(monkeypatch):
    monkeypatch.delenv("SEGLIB_TINY", raising=False)
    config, args = train_cli.parse_args(["--recipe", "camvid-cpu", "--epochs", "3",
                                         "--scale", "0.5-1.0", "--out", "x"])
    assert (config.epochs, config.scale, config.crop) == (3, (0.5, 1.0), (180, 240))
    assert config.class_weighting == "median" and args.out == "x"
    plain, args = train_cli.parse_args([])
    assert plain == TrainConfig().replace(sync_bn=False) and args.out.endswith("quick")
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--scale", "2"])


def test_evaluate_at_half_scale_scores_against_native_labels():
    class Mean(torch.nn.Module):  # logits from the image's channels: any size in, same out
        def forward(self, x):
            return x[:, :2] * 10

    torch.manual_seed(0)
    X = torch.randn(2, 3, 8, 12)
    Y = torch.randint(0, 2, (2, 8, 12))
    res = evaluate(Mean(), [(X, Y)], num_classes=2, device="cpu", input_scale=0.5)
    small = F.interpolate(X, scale_factor=0.5, mode="bilinear", align_corners=False,
                          antialias=True)[:, :2] * 10
    pred = F.interpolate(small, size=(8, 12), mode="bilinear", align_corners=False).argmax(1)
    assert res["pixel_acc"] == pytest.approx((pred == Y).float().mean().item())
    full = evaluate(Mean(), [(X, Y)], num_classes=2, device="cpu")
    assert full["pixel_acc"] != res["pixel_acc"]


def test_output_stride_reaches_the_model_and_survives_the_checkpoint(tmp_path):
    config, _ = train_cli.parse_args(["--output-stride", "16", "--out", str(tmp_path)])
    assert config.output_stride == 16
    from seglib.models import build_model

    net = build_model("ccnet", 11, "resnet18", output_stride=config.output_stride)
    x = torch.randn(1, 3, 64, 64)
    assert net.backbone(x)[-1].shape[-2:] == (4, 4)  # 64 / 16
    with pytest.raises(ValueError, match="output_stride"):
        TrainConfig(output_stride=4)


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
