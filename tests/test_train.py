"""seglib.train, the train command line: its flags (one source with TrainConfig), a tiny
synthetic run and resume, and its failures: one line `error: ...`, exit status 2, nothing a
user has on disk lost."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import seglib.engine.run_protection as run_folder
from seglib import cli
from seglib import train as train_cli
from seglib.engine import load_model
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.config import (
    TrainConfig,
    option_fields,
)
from seglib.models import SkipDecoder
from tests.helpers import CLI_ARGS as TINY
from tests.helpers import (
    RUN_ARGS,
    assert_one_line_error,
    bad_files,
    cli_exit,
    copy_run,
)


@pytest.mark.slow
def test_cli_trains_writes_and_records_config(trained_run, capsys):
    out, hist = trained_run
    assert len(hist) == 1
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv"]
    ckpt = load_checkpoint(out / "last.pt")
    cfg = ckpt["config"]
    assert (cfg["model"], cfg["backbone"], cfg["num_classes"]) == ("ccnet", "resnet18", 11)
    assert cfg["crop"] == (32, 48) and cfg["data"] == "synthetic" and cfg["amp"] == "auto"
    assert list(pd.read_csv(out / "metrics.csv")["epoch"]) == [1]


@pytest.mark.slow
def test_cli_resume_continues_to_more_epochs(trained_run, tmp_path):
    out, _ = trained_run
    for name in ("last.pt", "metrics.csv"):
        (tmp_path / name).write_bytes((out / name).read_bytes())
    hist = train_cli.main([*TINY, "--epochs", "2", "--out", str(tmp_path), "--resume"])
    assert list(hist["epoch"]) == [1, 2]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == 2


@pytest.mark.slow
def test_cli_resume_refuses_another_model(trained_run, tmp_path):
    out, _ = trained_run
    (tmp_path / "last.pt").write_bytes((out / "last.pt").read_bytes())
    with pytest.raises(ValueError, match="different model"):
        train_cli.main([*TINY, "--model", "refinenet", "--features", "16", "--epochs", "2",
                        "--crop", "64x64", "--out", str(tmp_path), "--resume"])


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_channels_last_is_three_way():
    """Unset keeps the device's default (None: on for CUDA only); both flags override it."""
    flags = ["--recipe", "camvid-cpu", "--model", "refinenet"]
    assert train_cli.parse_args(flags)[0].channels_last is None
    assert train_cli.parse_args([*flags, "--channels-last"])[0].channels_last is True
    assert train_cli.parse_args([*flags, "--no-channels-last"])[0].channels_last is False


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_flags_of_today_keep_their_names_and_values():
    """Every flag the README, the notebooks and the benchmarks use, with its meaning."""
    config, args = train_cli.parse_args(
        ["--model", "ccnet", "--backbone", "resnet34", "--data", "camvid", "--data-dir", "x",
         "--epochs", "3", "--batch-size", "4", "--crop", "64x80", "--scale", "0.5-1.5",
         "--jitter", "none", "--eval-scale", "0.5", "--lr", "0.02", "--weight-decay", "0.001",
         "--no-decay-1d", "--gamma-lr-mult", "2", "--head-lr-mult", "5", "--workers", "1",
         "--device", "cpu",
         "--amp", "--weights-backbone", "IMAGENET1K_V1", "--seed", "3", "--recurrence", "1",
         "--output-stride", "16", "--decoder", "--features", "64", "--no-channels-last",
         "--sync-bn", "--grad-clip", "1.5", "--class-weights", "median",
         "--synthetic-size", "40x50", "--train-size", "9", "--val-size", "5",
         "--train-limit", "7", "--val-limit", "6", "--out", "o", "--overwrite"]
    )
    expected = dict(backbone="resnet34", data="camvid", data_dir="x", epochs=3, batch_size=4,
                    crop=(64, 80), scale=(0.5, 1.5), jitter="none", eval_scale=0.5, lr=0.02,
                    weight_decay=0.001, decay_1d=False, gamma_lr_mult=2.0, head_lr_mult=5.0,
                    workers=1,
                    device="cpu", amp="auto", weights_backbone="IMAGENET1K_V1", seed=3,
                    recurrence=1, output_stride=16, decoder=True, features=64,
                    channels_last=False, sync_bn=True, grad_clip=1.5, class_weighting="median",
                    synthetic_size=(40, 50), train_size=9, val_size=5, train_limit=7,
                    val_limit=6)
    assert {k: getattr(config, k) for k in expected} == expected
    assert (args.out, args.overwrite, args.resume) == ("o", True, False)
    assert train_cli.parse_args(["--no-amp"])[0].amp == "off"
    assert train_cli.parse_args([])[0].sync_bn is False


@pytest.mark.slow
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


def _one_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("flag, value", [("--grad-clip", "0"), ("--grad-clip", "-1"),
                                         ("--eval-scale", "inf"), ("--eval-scale", "0")])
def test_train_refuses_values_that_cannot_work_at_parse_time(flag, value, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args([flag, value])
    assert info.value.code == 2
    line = _one_line(capsys)
    assert flag in line and "> 0" in line and value in line


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["0.01", "0.001"])
def test_an_eval_scale_that_leaves_no_pixel_stops_before_training(scale, tmp_path):
    out = tmp_path / "run"
    # the synthetic scenes are 32x48: 0.01 makes them 0x0; 1/32 rounded up is the least
    with pytest.raises(ValueError, match=rf"--eval-scale {scale} shrinks the 32x48 .* >= 0\.032"):
        train_cli.main([*TINY, "--epochs", "1", "--eval-scale", scale, "--out", str(out)])
    assert not out.exists()  # no epoch ran, nothing was written
    config, _ = train_cli.parse_args([*TINY, "--eval-scale", "0.032"])
    assert math.floor(32 * config.eval_scale) == 1  # the named scale does work


@pytest.mark.slow
def test_a_crop_too_small_for_the_network_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        cli.run(lambda: train_cli.main([*TINY, "--crop", "8x8", "--out", str(out)]))
    line = _one_line(capsys)
    assert "--crop" in line and "8x8" in line and "16x16" in line
    assert not out.exists()


@pytest.mark.slow
def test_out_must_name_a_folder_and_a_quoted_tilde_means_home(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args(["--out", ""])
    assert info.value.code == 2 and "--out is empty" in _one_line(capsys)
    monkeypatch.setenv("HOME", str(tmp_path))
    _, args = train_cli.parse_args(["--out", "~/runs/x"])  # quoted: the shell left the ~
    assert args.out == str(tmp_path / "runs" / "x")


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


def test_output_stride_reaches_the_model_and_survives_the_checkpoint(tmp_path):
    config, _ = train_cli.parse_args(["--output-stride", "16", "--out", str(tmp_path)])
    assert config.output_stride == 16
    from seglib.models import build_model

    net = build_model("ccnet", 11, "resnet18", output_stride=config.output_stride)
    x = torch.randn(1, 3, 64, 64)
    assert net.backbone(x)[-1].shape[-2:] == (4, 4)  # 64 / 16
    with pytest.raises(ValueError, match="output_stride"):
        TrainConfig(output_stride=4)


@pytest.mark.slow
def test_cli_decoder_run_reloads_and_refuses_resume_without_it(tmp_path):
    tiny = ["--data", "synthetic", "--crop", "32x48", "--batch-size", "2", "--train-size", "4",
            "--val-size", "2", "--device", "cpu", "--out", str(tmp_path)]
    train_cli.main([*tiny, "--epochs", "1", "--decoder"])
    model, config = load_model(tmp_path / "best.pt", "cpu")
    assert config.decoder and isinstance(model.decoder, SkipDecoder)
    with pytest.raises(ValueError, match="decoder: checkpoint True vs this run False.*--decoder"):
        train_cli.main([*tiny, "--epochs", "2", "--resume"])


def test_resume_on_a_folder_without_a_run_starts_one_and_says_so(tmp_path, capsys):
    out = tmp_path / "new"
    hist = train_cli.main([*RUN_ARGS, "--out", str(out), "--resume"])
    text = capsys.readouterr().out
    assert f"no run in {out} yet" in text and "starting a fresh run" in text
    assert len(hist) == 1 and load_checkpoint(out / "last.pt")["epoch"] == 1


def test_resume_without_last_pt_but_with_run_files_is_refused(finished_run, tmp_path):
    out = copy_run(finished_run, tmp_path / "run")
    (out / "last.pt").unlink()
    with pytest.raises(FileNotFoundError, match="no .*last.pt to continue from.*best.pt"):
        train_cli.main([*RUN_ARGS, "--out", str(out), "--resume"])
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--resume", "--overwrite"])


def test_data_dir_alone_means_camvid(tmp_path):
    config, _ = train_cli.parse_args(["--data-dir", str(tmp_path / "CamVid")])
    assert config.data == "camvid" and config.crop is None  # CamVid's own size
    config, _ = train_cli.parse_args(["--recipe", "quick", "--data-dir", "x"])
    assert config.data in ("camvid", "auto")
    missing = tmp_path / "no_camvid_here"
    with pytest.raises(FileNotFoundError, match="no_camvid_here"):  # not a synthetic run
        train_cli.main([*RUN_ARGS[2:], "--data-dir", str(missing), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_data_dir_with_data_synthetic_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args(["--data", "synthetic", "--data-dir", "x"])
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--data-dir", "--data synthetic")


def test_data_dir_trains_on_camvid(make_camvid, tmp_path):
    root = make_camvid(split="train", n=4, size=(32, 32))
    make_camvid(split="val", n=2, size=(32, 32), root=root)
    out = tmp_path / "run"
    train_cli.main(["--data-dir", str(root), "--epochs", "1", "--batch-size", "2", "--crop",
                    "32x32", "--device", "cpu", "--out", str(out)])
    cfg = load_checkpoint(out / "last.pt")["config"]
    assert cfg["data"] == "camvid" and Path(cfg["data_dir"]) == root


def test_a_set_camvid_dir_is_named_when_data_is_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAMVID_DIR", str(tmp_path / "CamVid"))
    train_cli.main([*RUN_ARGS, "--out", str(tmp_path / "run")])
    text = capsys.readouterr().out
    assert f"CAMVID_DIR is set ({tmp_path / 'CamVid'})" in text
    assert "--data camvid" in text and "synthetic" in text


@pytest.mark.parametrize("kind", ["empty", "garbage"])
def test_bad_weights_backbone_file_is_one_error_line(tmp_path, kind, capsys):
    path = bad_files(tmp_path / "w")[kind]
    line = cli_exit(train_cli.main, [*RUN_ARGS, "--weights-backbone", str(path),
                                     "--out", str(tmp_path / "run")], capsys)
    assert str(path) in line and "weights_only=False" not in line


def test_out_naming_an_existing_file(tmp_path, capsys):
    out = tmp_path / "a_file"
    out.write_text("keep me")
    line = cli_exit(train_cli.main, [*RUN_ARGS, "--out", str(out)], capsys)
    assert str(out) in line and "not a folder" in line
    assert out.read_text() == "keep me"


def test_out_in_a_read_only_place_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """Root ignores permission bits, so the check itself is made to see a read-only
    folder; the test then shows it runs before the data is read."""
    monkeypatch.setattr(run_folder.os, "access", lambda path, mode: False)
    monkeypatch.setattr(train_cli, "build_datasets", lambda config: pytest.fail("data read"))
    out = tmp_path / "ro" / "run"
    line = cli_exit(train_cli.main, [*RUN_ARGS, "--out", str(out)], capsys)
    assert "no write permission" in line and str(out) in line
    assert not out.exists()


@pytest.mark.parametrize("device", ["gpu", "mps", "cuda:7"])
def test_a_device_the_machine_lacks(device, tmp_path, capsys):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    argv = [*RUN_ARGS[:-4], "--device", device, "--out", str(tmp_path / "run")]
    line = cli_exit(train_cli.main, argv, capsys)
    assert repr(device) in line
    assert not (tmp_path / "run").exists()


def test_resume_with_another_recurrence_is_refused_naming_it(finished_run, tmp_path):
    out = copy_run(finished_run, tmp_path / "run")
    with pytest.raises(ValueError, match=r"recurrence: checkpoint 2 vs this run 1.*--recurrence 2"):
        train_cli.main([*RUN_ARGS, "--epochs", "2", "--recurrence", "1", "--out", str(out),
                        "--resume"])
