"""seglib.evaluate, the evaluate command line, on tiny synthetic runs: the per-class table,
test-time augmentation, logit adjustment, the knockout, and its failures."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from seglib import evaluate as evaluate_cli
from seglib import train as train_cli
from seglib.data import CLASSES, pick_datasets
from seglib.engine import evaluate, load_model
from seglib.engine.checkpoint import load_checkpoint
from seglib.engine.logit_adjustment import DEFAULT_TAUS, logit_bias
from tests.helpers import CLI_ARGS as TINY
from tests.helpers import (
    assert_one_line_error,
    run_module,
)


@pytest.mark.slow
def test_evaluate_cli_prints_per_class_table(trained_run, capsys):
    out, hist = trained_run
    res = evaluate_cli.main(["--checkpoint", str(out / "best.pt"), "--split", "val",
                             "--device", "cpu"])
    text = capsys.readouterr().out
    for name in CLASSES:
        assert name in text
    assert "mIoU" in text and "synthetic val (2 images; inputs resized by 1," in text
    assert res["miou"] == pytest.approx(hist["val_miou"].iloc[0])
    assert res["confusion"].sum() == 2 * 32 * 48  # every pixel of both scenes counted
    assert torch.is_tensor(res["iou"]) and len(res["iou"]) == 11


@pytest.mark.slow
def test_evaluate_cli_test_time_augmentation(trained_run, capsys):
    out, _ = trained_run
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_evaluate_cli_logit_adjustment_needs_class_weights(trained_run, weighted_run):
    out, _ = trained_run
    with pytest.raises(ValueError, match="without class weights"):
        evaluate_cli.main(["--checkpoint", str(out / "best.pt"), "--device", "cpu",
                           "--logit-adjustment", "0.5"])
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", str(weighted_run / "best.pt"),
                           "--logit-adjustment", "-1"])


@pytest.mark.slow
def test_evaluate_refuses_an_eval_scale_that_leaves_no_pixel(trained_run):
    out, _ = trained_run
    with pytest.raises(ValueError, match=r"--eval-scale 0\.01 shrinks the 32x48"):
        evaluate_cli.main(["--checkpoint", str(out / "best.pt"), "--eval-scale", "1", "0.01"])


KNOCKOUT_ARGS = ["--data", "synthetic", "--crop", "32x48", "--batch-size", "2", "--train-size", "4",
        "--val-size", "2", "--device", "cpu", "--workers", "0", "--epochs", "1"]


@pytest.mark.slow
def test_evaluate_cli_knockout_scores_the_closed_gate(tmp_path, capsys):
    train_cli.main([*KNOCKOUT_ARGS, "--out", str(tmp_path / "run")])
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    ckpt["model"]["head.cca.gamma"] = torch.tensor([2.0])  # make the attention matter
    torch.save(ckpt, tmp_path / "open.pt")
    ckpt["model"]["head.cca.gamma"] = torch.tensor([0.0])
    torch.save(ckpt, tmp_path / "closed.pt")
    capsys.readouterr()
    res = evaluate_cli.main(["--checkpoint", str(tmp_path / "open.pt"), "--knockout", "all"])
    printed = capsys.readouterr().out
    assert "iou knocked out" in printed and "attention of both passes knocked out" in printed
    closed, config = load_model(tmp_path / "closed.pt", device="cpu")
    val = pick_datasets(None, source="synthetic", crop=config.crop, val_size=config.val_size,
                        train_size=config.train_size, seed=config.seed, verbose=False).val
    reference = evaluate(closed, DataLoader(val, batch_size=2), config.num_classes, "cpu",
                         input_scale=config.eval_scale)
    torch.testing.assert_close(res["knockout"]["confusion"], reference["confusion"])
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", str(tmp_path / "open.pt"), "--knockout", "0"])
    train_cli.main([*KNOCKOUT_ARGS, "--recurrence", "0", "--out", str(tmp_path / "r0")])
    with pytest.raises(ValueError, match="trained with R = 0"):
        evaluate_cli.main(["--checkpoint", str(tmp_path / "r0" / "best.pt"), "--knockout", "all"])


@pytest.mark.slow  # a fresh Python process
def test_truncated_checkpoint_via_python_m_evaluate(truncated):
    proc = run_module("seglib.evaluate", "--checkpoint", str(truncated / "best.pt"))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, str(truncated / "best.pt"), "truncated")
