"""The train and evaluate CLIs on a tiny synthetic run (real CCNet, real SyntheticStreets)."""

import dataclasses
import math

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from seglib import cli
from seglib import evaluate as evaluate_cli
from seglib import train as train_cli
from seglib.data import CLASSES, pick_datasets
from seglib.engine import evaluate, load_model
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.config import TrainConfig, option_fields
from seglib.engine.logit_adjustment import DEFAULT_TAUS, logit_bias

pytestmark = pytest.mark.slow  # a real ResNet-18 CCNet: several seconds of CPU

TINY = ["--data", "synthetic", "--crop", "32x48", "--batch-size", "2", "--train-size", "4",
        "--val-size", "2", "--device", "cpu", "--workers", "0"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    hist = train_cli.main([*TINY, "--epochs", "1", "--out", str(out)])
    return out, hist


def test_cli_trains_writes_and_records_config(run, capsys):
    out, hist = run
    assert len(hist) == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv"]
    ckpt = load_checkpoint(out / "last.pt")
    cfg = ckpt["config"]
    assert (cfg["model"], cfg["backbone"], cfg["num_classes"]) == ("ccnet", "resnet18", 11)
    assert cfg["crop"] == (32, 48) and cfg["data"] == "synthetic" and cfg["amp"] == "auto"
    assert list(pd.read_csv(out / "metrics.csv")["epoch"]) == [1]


def test_cli_resume_continues_to_more_epochs(run, tmp_path):
    out, _ = run
    for name in ("last.pt", "metrics.csv"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    hist = train_cli.main([*TINY, "--epochs", "2", "--out", str(tmp_path), "--resume"])
    assert list(hist["epoch"]) == [1, 2]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 2


def test_cli_resume_refuses_another_model(run, tmp_path):
    out, _ = run
    (tmp_path / "last.pt").write_bytes((out / "last.pt").read_bytes())
    with pytest.raises(ValueError, match="different model"):
        train_cli.main([*TINY, "--model", "refinenet", "--features", "16", "--epochs", "2",
                        "--crop", "64x64", "--out", str(tmp_path), "--resume"])


def test_evaluate_cli_prints_per_class_table(run, capsys):
    out, hist = run
    res = evaluate_cli.main(["--checkpoint", str(out / "best.pt"), "--split", "val",
                             "--device", "cpu"])
    text = capsys.readouterr().out
    for name in CLASSES:
        assert name in text
    assert "mIoU" in text and "synthetic val (2 images; inputs resized by 1," in text
    assert res["miou"] == pytest.approx(hist["val_miou"].iloc[0])
    assert res["confusion"].sum() == 2 * 32 * 48  # every pixel of both scenes counted
    assert torch.is_tensor(res["iou"]) and len(res["iou"]) == 11


def test_evaluate_cli_test_time_augmentation(run, capsys):
    out, _ = run
    best = out / "best.pt"
    res = evaluate_cli.main(["--checkpoint", str(best), "--device", "cpu",
                             "--eval-scale", "0.5", "1", "--flip"])
    assert "inputs resized by 0.5 and 1, and mirrored," in capsys.readouterr().out
    model, config = load_model(best, "cpu")
    val = pick_datasets(source="synthetic", crop=config.crop, train_size=config.train_size,
                        val_size=config.val_size, synthetic_size=config.synthetic_size,
                        seed=config.seed, verbose=False).val
    ref = evaluate(model, DataLoader(val, batch_size=2), 11, "cpu", input_scale=(0.5, 1.0),
                   flip=True)
    assert torch.equal(res["confusion"], ref["confusion"])
    for bad in (["--eval-scale"], ["--eval-scale", "0"], ["--eval-scale", "half"]):
        with pytest.raises(SystemExit):
            evaluate_cli.main(["--checkpoint", str(best), *bad])


@pytest.fixture(scope="module")
def weighted_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("weighted")
    train_cli.main([*TINY, "--epochs", "1", "--class-weights", "median", "--out", str(out)])
    return out


def test_evaluate_cli_logit_adjustment_auto_chooses_tau_on_val(weighted_run, capsys):
    best = weighted_run / "best.pt"
    res = evaluate_cli.main(["--checkpoint", str(best), "--device", "cpu",
                             "--logit-adjustment", "auto"])
    text = capsys.readouterr().out
    assert res["tau"] in DEFAULT_TAUS and f"chose tau {res['tau']:g}" in text
    # the same numbers by hand: the run's weights, the chosen tau, seglib.engine.evaluate
    model, config = load_model(best, "cpu")
    val = pick_datasets(source="synthetic", crop=config.crop, train_size=config.train_size,
                        val_size=config.val_size, synthetic_size=config.synthetic_size,
                        seed=config.seed, verbose=False).val
    ref = evaluate(model, DataLoader(val, batch_size=2), 11, "cpu",
                   logit_bias=logit_bias(config.class_weights, res["tau"]))
    assert res["miou"] == pytest.approx(ref["miou"], abs=1e-12)
    fixed = evaluate_cli.main(["--checkpoint", str(best), "--device", "cpu",
                               "--logit-adjustment", "0"])
    plain = evaluate_cli.main(["--checkpoint", str(best), "--device", "cpu"])
    assert fixed["miou"] == pytest.approx(plain["miou"], abs=1e-12)


def test_evaluate_cli_logit_adjustment_needs_class_weights(run, weighted_run):
    out, _ = run
    with pytest.raises(ValueError, match="without class weights"):
        evaluate_cli.main(["--checkpoint", str(out / "best.pt"), "--device", "cpu",
                           "--logit-adjustment", "0.5"])
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", str(weighted_run / "best.pt"),
                           "--logit-adjustment", "-1"])


def test_cli_rejects_bad_flags():
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--crop", "96by128"])
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--model", "unet"])
    cfg, _ = train_cli.parse_args(["--no-amp", "--crop", "64x80"])
    assert cfg.amp == "off" and cfg.crop == (64, 80)
    assert train_cli.parse_args(["--amp", "bf16"])[0].amp == "bf16"
    assert train_cli.parse_args([])[0].jitter == "light"
    assert train_cli.parse_args(["--jitter", "strong"])[0].jitter == "strong"
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--jitter", "wild"])


def test_cli_channels_last_is_three_way():
    """Unset keeps the device's default (None: on for CUDA only); both flags override it."""
    flags = ["--recipe", "camvid-cpu", "--model", "refinenet"]
    assert train_cli.parse_args(flags)[0].channels_last is None
    assert train_cli.parse_args([*flags, "--channels-last"])[0].channels_last is True
    assert train_cli.parse_args([*flags, "--no-channels-last"])[0].channels_last is False


@pytest.mark.parametrize(
    ("flags", "lr"),
    [
        ([], 0.1),
        (["--model", "refinenet"], 0.005),
        (["--model", "refinenet", "--lr", "0.02"], 0.02),
    ],
)
def test_cli_default_lr_depends_on_the_model(flags, lr):
    config, _ = train_cli.parse_args(flags)
    assert config.lr == pytest.approx(lr)


def test_every_option_field_is_a_flag_with_its_help(capsys):
    """One source of configuration: each `option` field of TrainConfig is a flag (named
    after it), has a help text, and `--help` lists it with that text."""
    options = option_fields()
    assert {"batch_size", "crop", "scale", "amp", "class_weighting"} <= {f.name for f in options}
    parser = train_cli.build_parser()
    flags_of = {}  # dest -> its flags (amp has --amp and --no-amp)
    for action in parser._actions:
        flags_of.setdefault(action.dest, []).extend(action.option_strings)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, even at a "-"
    for f in options:
        flag = train_cli.flag_of(f)
        assert f.metadata["help"].strip(), f.name
        assert flag in flags_of[f.name], f.name
        assert flag in text and "".join(f.metadata["help"].split()) in text, f.name
    assert train_cli.flag_of(next(f for f in options if f.name == "class_weighting")) == (
        "--class-weights"
    )
    # the fields no flag sets say so, and still carry their meaning
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f"TrainConfig.{f.name} has no help"
        if f not in options:
            assert f.name not in flags_of, f.name


def test_flags_of_today_keep_their_names_and_values():
    """Every flag the README, the notebooks and the benchmarks use, with its meaning."""
    config, args = train_cli.parse_args(
        ["--model", "ccnet", "--backbone", "resnet34", "--data", "camvid", "--data-dir", "x",
         "--epochs", "3", "--batch-size", "4", "--crop", "64x80", "--scale", "0.5-1.5",
         "--jitter", "none", "--eval-scale", "0.5", "--lr", "0.02", "--weight-decay", "0.001",
         "--no-decay-1d", "--gamma-lr-mult", "2", "--workers", "1", "--device", "cpu",
         "--amp", "--weights-backbone", "IMAGENET1K_V1", "--seed", "3", "--recurrence", "1",
         "--output-stride", "16", "--decoder", "--features", "64", "--no-channels-last",
         "--sync-bn", "--grad-clip", "1.5", "--class-weights", "median",
         "--synthetic-size", "40x50", "--train-size", "9", "--val-size", "5",
         "--train-limit", "7", "--val-limit", "6", "--out", "o", "--overwrite"]
    )
    expected = dict(backbone="resnet34", data="camvid", data_dir="x", epochs=3, batch_size=4,
                    crop=(64, 80), scale=(0.5, 1.5), jitter="none", eval_scale=0.5, lr=0.02,
                    weight_decay=0.001, decay_1d=False, gamma_lr_mult=2.0, workers=1,
                    device="cpu", amp="auto", weights_backbone="IMAGENET1K_V1", seed=3,
                    recurrence=1, output_stride=16, decoder=True, features=64,
                    channels_last=False, sync_bn=True, grad_clip=1.5, class_weighting="median",
                    synthetic_size=(40, 50), train_size=9, val_size=5, train_limit=7,
                    val_limit=6)
    assert {k: getattr(config, k) for k in expected} == expected
    assert (args.out, args.overwrite, args.resume) == ("o", True, False)
    assert train_cli.parse_args(["--no-amp"])[0].amp == "off"
    assert train_cli.parse_args([])[0].sync_bn is False


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--crop", "96by128"], "argument --crop: --crop expects HxW such as 96x128"),
        (["--synthetic-size", "big"], "argument --synthetic-size: --synthetic-size expects HxW"),
        (["--scale", "2"], "argument --scale: --scale expects LOW-HIGH such as 0.5-2.0"),
        (["--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
        (["--workers", "-1"], "argument --workers: must be >= 0, got -1"),
        (["--grad-clip", "0"], "argument --grad-clip: expected a finite number > 0"),
        (["--output-stride", "32"], "argument --output-stride: invalid choice: 32"),
        (["--class-weights", "inverse"], "argument --class-weights: invalid choice: 'inverse'"),
        (["--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
    ],
)
def test_bad_flag_values_name_the_flag_in_one_line(flags, words, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args(flags)
    assert info.value.code == 2
    assert words in _one_line(capsys)


def test_build_loaders_workers_are_not_persistent():
    """Persistent workers keep epoch 1's seeds, breaking exact resume with workers > 0."""
    from types import SimpleNamespace

    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.zeros(8, 3, 4, 4), torch.zeros(8, 4, 4, dtype=torch.long))
    cfg = train_cli.TrainConfig(workers=2, batch_size=4)
    train, val = train_cli.build_loaders(cfg, SimpleNamespace(train=data, val=data))
    assert train.num_workers == 2 and val.num_workers == 2
    assert not train.persistent_workers and not val.persistent_workers
    assert train.generator is not None and train.sampler.generator is train.generator


def test_parse_hw_is_shared_by_the_train_and_export_clis():
    from seglib import export
    from seglib.engine.config import parse_hw

    assert parse_hw("360x480") == (360, 480) and parse_hw("8X6") == (8, 6)
    for bad in ("360", "360x480x3", "axb", "0x5"):
        with pytest.raises(ValueError, match="HxW"):
            parse_hw(bad)
    assert train_cli._hw("--crop")("32x48") == (32, 48)
    with pytest.raises(SystemExit):
        export.main(["--out", "unused.onnx", "--size", "0x5"])


# --- issue 28: values checked before any work, one line naming the flag -----------------


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("flag, value", [("--grad-clip", "0"), ("--grad-clip", "-1"),
                                         ("--eval-scale", "inf"), ("--eval-scale", "0")])
def test_train_refuses_values_that_cannot_work_at_parse_time(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args([flag, value])
    assert info.value.code == 2
    line = _one_line(capsys)
    assert flag in line and "> 0" in line and value in line


@pytest.mark.parametrize("scale", ["0.01", "0.001"])
def test_an_eval_scale_that_leaves_no_pixel_stops_before_training(scale, tmp_path):
    out = tmp_path / "run"
    # the synthetic scenes are 32x48: 0.01 makes them 0x0; 1/32 rounded up is the least
    with pytest.raises(ValueError, match=rf"--eval-scale {scale} shrinks the 32x48 .* >= 0\.032"):
        train_cli.main([*TINY, "--epochs", "1", "--eval-scale", scale, "--out", str(out)])
    assert not out.exists()  # no epoch ran, nothing was written
    config, _ = train_cli.parse_args([*TINY, "--eval-scale", "0.032"])
    assert math.floor(32 * config.eval_scale) == 1  # the named scale does work


def test_evaluate_refuses_an_eval_scale_that_leaves_no_pixel(run):
    out, _ = run
    with pytest.raises(ValueError, match=r"--eval-scale 0\.01 shrinks the 32x48"):
        evaluate_cli.main(["--checkpoint", str(out / "best.pt"), "--eval-scale", "1", "0.01"])


def test_a_crop_too_small_for_the_network_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        cli.run(lambda: train_cli.main([*TINY, "--crop", "8x8", "--out", str(out)]))
    line = _one_line(capsys)
    assert "--crop" in line and "8x8" in line and "16x16" in line
    assert not out.exists()


def test_out_must_name_a_folder_and_a_quoted_tilde_means_home(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args(["--out", ""])
    assert info.value.code == 2 and "--out is empty" in _one_line(capsys)
    monkeypatch.setenv("HOME", str(tmp_path))
    _, args = train_cli.parse_args(["--out", "~/runs/x"])  # quoted: the shell left the ~
    assert args.out == str(tmp_path / "runs" / "x")
