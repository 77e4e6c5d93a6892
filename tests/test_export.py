"""seglib.export: the ONNX files run in onnxruntime at sizes other than the example's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import seglib.engine.run_protection as run_folder
from seglib import cli
from seglib import export as export_cli
from seglib.export import build_for_export, main, min_export_side, to_onnx
from seglib.models.ccnet import CCNet
from seglib.models.refinenet import RefineNet
from tests.helpers import (
    Tiny,
    assert_one_line_error,
    cli_exit,
    run_module,
)

ort = pytest.importorskip("onnxruntime")


pytest.importorskip("onnxscript")  # the dynamo exporter needs it


def run_onnx(path, x: torch.Tensor) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(["logits"], {"image": x.numpy()})
    return out


def check_sizes(net, path, sizes):
    for batch, h, w in sizes:
        x = torch.randn(batch, 3, h, w)
        with torch.no_grad():
            ref = net(x).numpy()
        out = run_onnx(path, x)
        assert out.shape == ref.shape == (batch, net.num_classes, h, w)
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_ccnet_onnx_dynamic_sizes(tmp_path):
    torch.manual_seed(0)
    net = CCNet(11, backbone="resnet18").train()  # exported in eval mode regardless
    with torch.no_grad():
        net.head.cca.gamma.fill_(1.0)  # make the attention count in the output
    path = to_onnx(net, tmp_path / "ccnet.onnx", example_size=(64, 96))
    assert net.training  # mode restored
    assert path.is_file() and not list(tmp_path.glob("*.data"))  # one self-contained file
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    assert sess.get_outputs()[0].shape == ["batch", 11, "height", "width"]
    net.eval()
    check_sizes(net, path, [(1, 97, 131), (1, 360, 480), (3, 33, 45)])


@pytest.mark.slow
def test_refinenet_onnx_via_cli_with_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = RefineNet(5, backbone="resnet18", features=16).eval()
    ckpt = tmp_path / "refinenet.pth"
    torch.save(net.state_dict(), ckpt)
    out = tmp_path / "sub" / "refinenet.onnx"
    path = main(["--model", "refinenet", "--backbone", "resnet18", "--num-classes", "5",
                 "--features", "16", "--checkpoint", str(ckpt), "--size", "64x96",
                 "--out", str(out)])
    assert path == out and out.is_file()
    check_sizes(net, out, [(1, 97, 131), (1, 360, 480), (3, 33, 45)])


def test_bad_arguments(tmp_path):
    net = RefineNet(3, backbone="resnet18", features=8)
    with pytest.raises(ValueError, match="example_size"):
        to_onnx(net, tmp_path / "x.onnx", example_size=(0, 10))
    with pytest.raises(ValueError, match="unknown model"):
        build_for_export("segnet")
    with pytest.raises(FileNotFoundError):
        build_for_export("ccnet", checkpoint=tmp_path / "missing.pt")
    bad = tmp_path / "bad.pth"
    torch.save(net.state_dict(), bad)
    with pytest.raises(ValueError, match="does not fit"):
        build_for_export("refinenet", num_classes=3, features=16, checkpoint=bad)


@pytest.mark.parametrize("size", ["1x1", "8x8", "15x480"])
def test_sizes_that_would_fix_the_graph_are_refused_before_exporting(tmp_path, size, capsys):
    """A CCNet exported from 8x8 (a 1x1 deepest feature map) runs at no other size."""
    out = tmp_path / "ccnet.onnx"
    with pytest.raises(SystemExit) as info:
        cli.run(lambda: main(["--out", str(out), "--size", size, "--num-classes", "3"]))
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--size" in lines[0] and size in lines[0], lines
    assert "at least 16x16" in lines[0]
    assert list(tmp_path.iterdir()) == []  # refused before the export: no file, no .partial


def test_the_smallest_export_size_follows_the_deepest_stride(tmp_path):
    assert min_export_side(CCNet(3, backbone="resnet18")) == 16
    assert min_export_side(CCNet(3, backbone="resnet18", output_stride=16)) == 32
    assert min_export_side(RefineNet(3, backbone="resnet18", features=8)) == 64
    assert min_export_side(torch.nn.Conv2d(3, 3, 1)) == 1  # no backbone: any size
    with pytest.raises(ValueError, match="at least 64x64"):
        to_onnx(RefineNet(3, backbone="resnet18", features=8), tmp_path / "r.onnx", (32, 48))
    assert not (tmp_path / "r.onnx").exists()


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
