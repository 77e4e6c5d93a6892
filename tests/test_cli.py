"""seglib.cli, what the command lines share: one-line errors with exit status 2, a stop
(Ctrl-C) in one line with status 130, the HxW sizes, integer flags that name themselves."""

from __future__ import annotations

import pytest

import seglib.engine.run_protection as run_folder
from seglib import cli
from seglib import evaluate as evaluate_cli
from seglib import export as export_cli
from seglib import train as train_cli
from seglib.engine import fit
from seglib.engine.checkpoint import load_checkpoint
from tests.helpers import (
    RUN_ARGS,
    TINY_CFG,
    StopsIn,
    assert_one_line_error,
    cli_exit,
    tiny_loaders,
)


def test_truncated_checkpoint_to_evaluate_export_and_resume(truncated, tmp_path, capsys):
    best = truncated / "best.pt"
    line = cli_exit(evaluate_cli.main, ["--checkpoint", str(best), "--device", "cpu"], capsys)
    assert str(best) in line and "truncated" in line
    onnx = tmp_path / "m.onnx"
    line = cli_exit(export_cli.main, ["--checkpoint", str(best), "--out", str(onnx)], capsys)
    assert str(best) in line and not onnx.exists()
    line = cli_exit(train_cli.main, [*RUN_ARGS, "--epochs", "2", "--out", str(truncated),
                                     "--resume"], capsys)
    assert str(truncated / "last.pt") in line and "truncated" in line


@pytest.mark.parametrize("flag", ["--train-size", "--val-size", "--epochs", "--batch-size"])
def test_a_zero_count_names_the_flag(flag, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args([flag, "0"])
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, flag, ">= 1")


def test_ctrl_c_says_after_which_epoch_and_exits_130(tmp_path, capsys):
    train, val = tiny_loaders()  # 2 training steps per epoch: step 5 is in epoch 3
    config = TINY_CFG.replace(epochs=4)
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: fit(StopsIn(5), train, val, config, out=tmp_path, animate=False))
    assert info.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted after epoch 2; continue with --resume (resume=True)"]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert not (tmp_path / run_folder.LOCK_FILE).exists()  # the lock went with the run
    hist = fit(StopsIn(0), train, val, config, out=tmp_path, resume=True, animate=False)
    assert list(hist["epoch"]) == [1, 2, 3, 4]  # continued as the line says


@pytest.mark.slow
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
