"""Issue 17: the command lines' failure modes. Nothing a user has on disk is lost, and
every mistake is one line `error: ...` on stderr with exit status 2."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import seglib.engine.run_protection as run_folder
from seglib import cli
from seglib import evaluate as evaluate_cli
from seglib import export as export_cli
from seglib import train as train_cli
from seglib.engine import TrainConfig, fit
from seglib.engine.checkpoint import check_compatible, load_checkpoint
from seglib.engine.run_protection import RunExistsError, check_run_folder
from seglib.models import CCNet, CrissCrossAttention
from seglib.models.attention import criss_cross_attention
from seglib.models.attention_lean import _image_blocks
from seglib.torch_load import UnreadableFileError, load_torch_file

# one epoch of a ResNet-18 CCNet on 8 scenes of 32x32: a few seconds on one core
TINY = ["--data", "synthetic", "--epochs", "1", "--train-size", "8", "--val-size", "4",
        "--synthetic-size", "32x32", "--crop", "32x32", "--batch-size", "4",
        "--device", "cpu", "--workers", "0"]
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A finished one-epoch run of the train command line (copy it before changing it)."""
    out = tmp_path_factory.mktemp("cli_failures") / "run"
    train_cli.main([*TINY, "--out", str(out)])
    return out


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m module args` in a fresh process (exit status and stderr are the point)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=env, timeout=300)


def assert_one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def cli_exit(main, argv, capsys) -> str:
    """Run a command line's main through `seglib.cli.run` (what `__main__` does): it
    must exit with status 2 and one error line; returns that line."""
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert_one_line_error(err)
    return err.strip()


class Tiny(nn.Module):
    """A 1x1 convolution: fit-level tests in milliseconds."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, k, 1)

    def forward(self, x):
        return self.conv(x)


def tiny_loaders():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(8, 3, 4, 4, generator=g)
    data = TensorDataset(X, X.argmax(1))
    return DataLoader(data, batch_size=4), DataLoader(data, batch_size=4)


CFG = TrainConfig(model="tiny", num_classes=3, epochs=1, lr=0.05, verbose=False)


# --- 1. a fresh run never destroys an earlier one --------------------------------------


def test_a_fresh_run_into_an_existing_run_is_refused_and_names_the_files(run, tmp_path):
    out = copy_run(run, tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(RunExistsError, match="last.pt, best.pt, metrics.csv") as info:
        train_cli.main([*TINY, "--out", str(out)])
    assert "--resume" in str(info.value) and "--overwrite" in str(info.value)
    assert snapshot(out) == before  # metrics.csv not truncated, best.pt not replaced


@pytest.mark.slow  # a fresh Python process (~5 s of imports on a busy core)
def test_the_refusal_is_one_line_and_exit_status_2(run, tmp_path):
    out = copy_run(run, tmp_path / "run")
    before = snapshot(out)
    proc = run_module("seglib.train", *TINY, "--out", str(out))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, str(out), "last.pt", "--overwrite")
    assert snapshot(out) == before


def test_fit_protects_notebook_runs_too(tmp_path):
    train, val = tiny_loaders()
    fit(Tiny(), train, val, CFG, out=tmp_path, animate=False)
    before = snapshot(tmp_path)
    with pytest.raises(RunExistsError, match="overwrite=True"):
        fit(Tiny(), train, val, CFG, out=tmp_path, animate=False)
    assert snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="exclude each other"):
        fit(Tiny(), train, val, CFG, out=tmp_path, animate=False, resume=True, overwrite=True)


def test_overwrite_replaces_only_the_run_files(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"an old, better model")
    (tmp_path / "last.pt").write_bytes(b"an old checkpoint")
    (tmp_path / "metrics.csv").write_text("epoch,val_miou\n1,0.9\n2,0.95\n")
    (tmp_path / "notes.txt").write_text("mine")
    train, val = tiny_loaders()
    fit(Tiny(), train, val, CFG, out=tmp_path, animate=False, overwrite=True)
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 1
    assert list(pd.read_csv(tmp_path / "metrics.csv")["epoch"]) == [1]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not a run file: untouched


def test_a_header_only_metrics_file_holds_nothing_to_lose(tmp_path):
    """What a run stopped in its first epoch leaves: no rows, so no refusal."""
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n")
    check_run_folder(tmp_path)  # no error
    (tmp_path / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")
    with pytest.raises(RunExistsError, match="metrics.csv"):
        check_run_folder(tmp_path)


def test_resume_on_a_folder_without_a_run_starts_one_and_says_so(tmp_path, capsys):
    out = tmp_path / "new"
    hist = train_cli.main([*TINY, "--out", str(out), "--resume"])
    text = capsys.readouterr().out
    assert f"no run in {out} yet" in text and "starting a fresh run" in text
    assert len(hist) == 1 and load_checkpoint(out / "last.pt")["epoch"] == 1


def test_resume_without_last_pt_but_with_run_files_is_refused(run, tmp_path):
    out = copy_run(run, tmp_path / "run")
    (out / "last.pt").unlink()
    with pytest.raises(FileNotFoundError, match="no .*last.pt to continue from.*best.pt"):
        train_cli.main([*TINY, "--out", str(out), "--resume"])
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--resume", "--overwrite"])


# --- 2. the data location is never ignored without a word ------------------------------


def test_data_dir_alone_means_camvid(tmp_path):
    config, _ = train_cli.parse_args(["--data-dir", str(tmp_path / "CamVid")])
    assert config.data == "camvid" and config.crop is None  # CamVid's own size
    config, _ = train_cli.parse_args(["--recipe", "quick", "--data-dir", "x"])
    assert config.data in ("camvid", "auto")
    missing = tmp_path / "no_camvid_here"
    with pytest.raises(FileNotFoundError, match="no_camvid_here"):  # not a synthetic run
        train_cli.main([*TINY[2:], "--data-dir", str(missing), "--out", str(tmp_path / "o")])
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
    train_cli.main([*TINY, "--out", str(tmp_path / "run")])
    text = capsys.readouterr().out
    assert f"CAMVID_DIR is set ({tmp_path / 'CamVid'})" in text
    assert "--data camvid" in text and "synthetic" in text


# --- 3. unreadable files: one line naming the file -------------------------------------


def bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"empty": folder / "empty.pth", "garbage": folder / "garbage.pth",
             "pickled": folder / "pickled.pth"}
    files["empty"].write_bytes(b"")
    files["garbage"].write_text("this is not a checkpoint\n" * 20)
    # a pickled Python object: what the safe loader refuses (with a hint not to give)
    files["pickled"].write_bytes(pickle.dumps(Path("an object"), protocol=2))
    return files


@pytest.mark.parametrize("kind", ["empty", "garbage", "pickled"])
def test_load_torch_file_names_the_file_and_the_problem(tmp_path, kind):
    path = bad_files(tmp_path)[kind]
    with pytest.raises(UnreadableFileError, match=path.name) as info:
        load_torch_file(path, "backbone weights file")
    assert "weights_only=False" not in str(info.value)
    assert "\n" not in str(info.value)
    if kind == "empty":
        assert "empty" in str(info.value)


def test_truncated_file_is_called_truncated(run, tmp_path):
    data = (run / "last.pt").read_bytes()
    path = tmp_path / "last.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"last.pt: it is truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("kind", ["empty", "garbage"])
def test_bad_weights_backbone_file_is_one_error_line(tmp_path, kind, capsys):
    path = bad_files(tmp_path / "w")[kind]
    line = cli_exit(train_cli.main, [*TINY, "--weights-backbone", str(path),
                                     "--out", str(tmp_path / "run")], capsys)
    assert str(path) in line and "weights_only=False" not in line


@pytest.fixture
def truncated(run, tmp_path) -> Path:
    """The run with its checkpoints cut in half (a copy interrupted halfway)."""
    out = copy_run(run, tmp_path / "cut")
    for name in ("last.pt", "best.pt"):
        data = (out / name).read_bytes()
        (out / name).write_bytes(data[: len(data) // 2])
    return out


def test_truncated_checkpoint_to_evaluate_export_and_resume(truncated, tmp_path, capsys):
    best = truncated / "best.pt"
    line = cli_exit(evaluate_cli.main, ["--checkpoint", str(best), "--device", "cpu"], capsys)
    assert str(best) in line and "truncated" in line
    onnx = tmp_path / "m.onnx"
    line = cli_exit(export_cli.main, ["--checkpoint", str(best), "--out", str(onnx)], capsys)
    assert str(best) in line and not onnx.exists()
    line = cli_exit(train_cli.main, [*TINY, "--epochs", "2", "--out", str(truncated),
                                     "--resume"], capsys)
    assert str(truncated / "last.pt") in line and "truncated" in line


@pytest.mark.slow  # a fresh Python process
def test_truncated_checkpoint_via_python_m_evaluate(truncated):
    proc = run_module("seglib.evaluate", "--checkpoint", str(truncated / "best.pt"))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, str(truncated / "best.pt"), "truncated")


# --- 4. folders, devices and flags: errors, not tracebacks -----------------------------


def test_out_naming_an_existing_file(tmp_path, capsys):
    out = tmp_path / "a_file"
    out.write_text("keep me")
    line = cli_exit(train_cli.main, [*TINY, "--out", str(out)], capsys)
    assert str(out) in line and "not a folder" in line
    assert out.read_text() == "keep me"


def test_out_in_a_read_only_place_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """Root ignores permission bits, so the check itself is made to see a read-only
    folder; the test then shows it runs before the data is read."""
    monkeypatch.setattr(run_folder.os, "access", lambda path, mode: False)
    monkeypatch.setattr(train_cli, "build_datasets", lambda config: pytest.fail("data read"))
    out = tmp_path / "ro" / "run"
    line = cli_exit(train_cli.main, [*TINY, "--out", str(out)], capsys)
    assert "no write permission" in line and str(out) in line
    assert not out.exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders: see the os.access test above")
def test_out_in_a_really_read_only_folder(tmp_path):  # pragma: no cover - not as root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="no write permission"):
            check_run_folder(ro / "run")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("device", ["gpu", "mps", "cuda:7"])
def test_a_device_the_machine_lacks(device, tmp_path, capsys):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    argv = [*TINY[:-4], "--device", device, "--out", str(tmp_path / "run")]
    line = cli_exit(train_cli.main, argv, capsys)
    assert repr(device) in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["--train-size", "--val-size", "--epochs", "--batch-size"])
def test_a_zero_count_names_the_flag(flag, capsys):
    with pytest.raises(SystemExit) as info:
        train_cli.parse_args([flag, "0"])
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, flag, ">= 1")


@pytest.mark.slow  # a fresh Python process
def test_export_with_a_missing_checkpoint_via_python_m(tmp_path):
    proc = run_module("seglib.export", "--checkpoint", str(tmp_path / "none.pt"),
                      "--out", str(tmp_path / "m.onnx"))
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "no checkpoint", str(tmp_path / "none.pt"))


@pytest.fixture
def no_export(monkeypatch):
    """Building and exporting a model take ~25 s: any check that matters comes first."""
    monkeypatch.setattr(export_cli, "build_for_export", lambda *a: pytest.fail("built"))
    monkeypatch.setattr(export_cli, "to_onnx", lambda *a, **k: pytest.fail("exported"))


def test_export_out_naming_a_folder_or_an_existing_file(tmp_path, no_export, capsys):
    line = cli_exit(export_cli.main, ["--out", str(tmp_path)], capsys)
    assert "is a folder" in line and "model.onnx" in line
    old = tmp_path / "old.onnx"
    old.write_bytes(b"an earlier export")
    line = cli_exit(export_cli.main, ["--out", str(old)], capsys)
    assert "--overwrite" in line and old.read_bytes() == b"an earlier export"


def test_export_out_in_a_read_only_place(tmp_path, no_export, monkeypatch, capsys):
    monkeypatch.setattr(run_folder.os, "access", lambda path, mode: False)
    line = cli_exit(export_cli.main, ["--out", str(tmp_path / "m.onnx")], capsys)
    assert "no write permission" in line


def test_export_overwrite_replaces_the_file_only_once_the_export_is_complete(tmp_path, monkeypatch):
    old = tmp_path / "old.onnx"
    old.write_bytes(b"an earlier export")
    monkeypatch.setattr(export_cli, "build_for_export", lambda *a: Tiny())
    monkeypatch.setattr(export_cli, "_symbolic_dims", lambda path: [])

    def failing(net, path, *args, **kwargs):
        Path(path).write_bytes(b"half a graph")
        raise RuntimeError("the exporter failed")

    monkeypatch.setattr(export_cli, "to_onnx", failing)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_cli.main(["--out", str(old), "--overwrite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.onnx"]  # no partial file
    assert old.read_bytes() == b"an earlier export"  # kept until a new one is complete
    monkeypatch.setattr(export_cli, "to_onnx", lambda net, path, *a, **k: Path(path)
                        .write_bytes(b"the new graph"))
    assert export_cli.main(["--out", str(old), "--overwrite"]) == old
    assert old.read_bytes() == b"the new graph"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.onnx"]


# --- 5. an empty batch ------------------------------------------------------------------


def test_empty_batch_through_criss_cross_attention_both_paths():
    torch.manual_seed(0)
    q, k, v = torch.randn(0, 2, 5, 6), torch.randn(0, 2, 5, 6), torch.randn(0, 16, 5, 6)
    for lean in (True, False):
        out = criss_cross_attention(q, k, v, lean=lean)
        assert out.shape == (0, 16, 5, 6)
        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        criss_cross_attention(qg, kg, vg, lean=lean).sum().backward()
        assert qg.grad.shape == q.shape and kg.grad.shape == k.shape
        assert vg.grad.shape == v.shape
    assert _image_blocks(v) == []


def test_empty_batch_through_the_module_and_ccnet():
    torch.manual_seed(0)
    for lean in (True, False):
        cca = CrissCrossAttention(16, lean=lean)
        x = torch.randn(0, 16, 5, 6, requires_grad=True)
        y = cca(x)
        y.sum().backward()
        assert y.shape == x.shape and x.grad.shape == x.shape
        assert cca.gamma.grad is not None and torch.equal(cca.gamma.grad, torch.zeros(1))
    net = CCNet(11, backbone="resnet18").eval()
    with torch.no_grad():
        assert net(torch.randn(0, 3, 32, 32)).shape == (0, 11, 32, 32)


# --- 6. resume that changes the model, resume with nothing to do, bad val labels --------


def test_resume_with_another_recurrence_is_refused_naming_it(run, tmp_path):
    out = copy_run(run, tmp_path / "run")
    with pytest.raises(ValueError, match=r"recurrence: checkpoint 2 vs this run 1.*--recurrence 2"):
        train_cli.main([*TINY, "--epochs", "2", "--recurrence", "1", "--out", str(out),
                        "--resume"])


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


def test_resume_of_a_finished_run_says_there_is_nothing_to_do(run, tmp_path, capsys):
    out = copy_run(run, tmp_path / "run")
    before = snapshot(out)
    hist = train_cli.main([*TINY, "--epochs", "1", "--out", str(out), "--resume"])
    text = capsys.readouterr().out
    assert "nothing to train" in text and "--epochs" in text
    assert len(hist) == 1
    assert (out / "last.pt").read_bytes() == before["last.pt"]


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


# --- issue 28: every stop ends in one line; no best.pt from NaN; no labels, no run ------


class StopsIn(Tiny):
    """Raises KeyboardInterrupt (what Ctrl-C raises) at its `n`-th training forward
    (never for n = 0)."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt
        return super().forward(x)


def test_ctrl_c_says_after_which_epoch_and_exits_130(tmp_path, capsys):
    train, val = tiny_loaders()  # 2 training steps per epoch: step 5 is in epoch 3
    config = CFG.replace(epochs=4)
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: fit(StopsIn(5), train, val, config, out=tmp_path, animate=False))
    assert info.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted after epoch 2; continue with --resume (resume=True)"]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert not (tmp_path / run_folder.LOCK_FILE).exists()  # the lock went with the run
    hist = fit(StopsIn(0), train, val, config, out=tmp_path, resume=True, animate=False)
    assert list(hist["epoch"]) == [1, 2, 3, 4]  # continued as the line says


def test_ctrl_c_without_an_output_folder_names_the_epoch_only():
    train, val = tiny_loaders()
    with pytest.raises(KeyboardInterrupt, match="^interrupted after epoch 1$"):
        fit(StopsIn(3), train, val, CFG.replace(epochs=3), animate=False)


class NaNInEval(Tiny):
    """Finite logits in training, NaN in eval mode (as after broken BatchNorm statistics)."""

    def forward(self, x):
        y = super().forward(x)
        return y if self.training else y * float("nan")


def test_a_nan_val_loss_never_becomes_best_pt(tmp_path, capsys):
    train, val = tiny_loaders()
    hist = fit(NaNInEval(), train, val, CFG.replace(epochs=2), out=tmp_path, animate=False)
    assert hist["val_loss"].isna().all() and (hist["val_miou"] > 0).all()  # argmax scores
    assert not (tmp_path / "best.pt").exists()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert "best.pt is not updated" in capsys.readouterr().out


def all_void(X: torch.Tensor) -> torch.Tensor:
    return torch.full(X.shape[:1] + X.shape[2:], 255, dtype=torch.long)  # (N, H, W)


@pytest.mark.parametrize("split", ["training", "validation"])
def test_a_split_without_a_labelled_pixel_is_refused(tmp_path, split):
    X = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    good, void = TensorDataset(X, X.argmax(1)), TensorDataset(X, all_void(X))
    train = DataLoader(void if split == "training" else good, batch_size=4)
    val = DataLoader(void if split == "validation" else good, batch_size=4)
    with pytest.raises(ValueError, match=f"the {split} data has no labelled pixel"):
        fit(Tiny(), train, val, CFG, out=tmp_path, animate=False)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_fit_refuses_an_empty_out_and_expands_a_tilde(tmp_path, monkeypatch):
    train, val = tiny_loaders()
    with pytest.raises(ValueError, match="out is an empty path"):
        fit(Tiny(), train, val, CFG, out="", animate=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    fit(Tiny(), train, val, CFG, out="~/run", animate=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == list(sorted(RUN_FILES))
    assert not (tmp_path / "~").exists()  # no literal "~" folder beside the home one
