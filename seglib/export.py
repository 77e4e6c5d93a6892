r"""
# Export a segmentation model to ONNX

[ONNX](https://onnx.ai) is a framework-neutral graph format: a CCNet or RefineNet
exported once runs in [onnxruntime](https://onnxruntime.ai) (CPU, CUDA, mobile, the
browser) without PyTorch. Segmentation models must accept any image size, so the
height and width (and optionally the batch) are exported as symbolic dimensions:

$$\text{image}: (B, 3, H, W) \;\mapsto\; \text{logits}: (B, K, H, W),\qquad
  B, H, W \text{ free.}$$

This works because nothing in seglib's models depends on a concrete size: the
criss-cross mask is built from index comparisons (no `torch.eye` on a fixed device),
RefineNet's fusion and both output resizes target the exact sizes of tensors, never a
fixed scale factor. The exporter is `torch.export` + `torch.onnx.export(dynamo=True)`
(it needs `onnxscript`). The older TorchScript tracer (`dynamo=False`, deprecated) is
not offered: it records sizes as traced tensors, which `torch.sym_max` in RefineNet's
fusion does not accept.

Command line::

    python -m seglib.export --model ccnet --backbone resnet18 --num-classes 11 \
        [--checkpoint runs/ccnet/best.pt] --out ccnet.onnx [--overwrite]

An existing `--out` file is kept unless `--overwrite` is given; `--out`, and the
checkpoint, are checked before the (half-minute) export starts.

Its exercise is in `notebooks/07_evaluation.ipynb`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from seglib import cli
from seglib.engine.checkpoint import is_checkpoint
from seglib.engine.config import parse_hw
from seglib.engine.run_protection import check_writable_folder
from seglib.engine.scoring import load_model
from seglib.models.factory import build_model
from seglib.torch_load import load_torch_file

__all__ = ["to_onnx", "build_for_export", "main", "min_export_side"]

log = logging.getLogger(__name__)


def _name_dims(path: Path, names: dict[int, str]) -> None:
    """Rename the input's symbolic dimensions (e.g. `s53`) to readable names in place.

    Every `dim_param` of the graph's inputs, outputs and value infos that mentions the
    symbol is rewritten, so that expressions such as `s53//8` stay consistent.
    """
    import onnx  # optional dependency (seglib[test]): only needed once exporting

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    rename = {dims[i].dim_param: name for i, name in names.items() if dims[i].dim_param}
    if not rename:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\b")
    graph = model.graph
    for info in (*graph.input, *graph.output, *graph.value_info):
        for d in info.type.tensor_type.shape.dim:
            if d.dim_param:
                d.dim_param = pattern.sub(lambda m: rename[m.group(1)], d.dim_param)
    onnx.save(model, str(path))


def _symbolic_dims(path: Path) -> list[str | int]:
    """Dimensions of the exported graph's first input: names if symbolic, else ints."""
    import onnx  # optional dependency (seglib[test]): only needed once exporting

    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param if d.dim_param else d.dim_value for d in dims]


def min_export_side(model: nn.Module) -> int:
    """The smallest example height and width that exports a graph for every size: twice
    the stride of the model's deepest feature map (`model.backbone.output_stride`, 1 for
    a model without one). On a 1x1 map `torch.export` takes the size for a constant
    (it specialises sizes 0 and 1), and onnxruntime then refuses every other size."""
    stride = getattr(getattr(model, "backbone", None), "output_stride", None)
    return 2 * stride if isinstance(stride, int) else 1


def to_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example_size: tuple[int, int] = (360, 480),
    opset: int | None = None,
    *,
    dynamic_batch: bool = True,
    batch_size: int | None = None,
) -> Path:
    """Export `model` (eval mode) to the ONNX file `path` with dynamic height and width.

    Args:
        model: a seglib model (or any `(B, 3, H, W) -> (B, K, H, W)` module). It is
            exported in eval mode (no auxiliary output, BN running statistics, no
            dropout) and put back into its previous mode afterwards.
        path: output `.onnx` file (one self-contained file; parent folders are created).
        example_size: (H, W) of the example input used for tracing.
        opset: ONNX opset version (None: the exporter's default).
        dynamic_batch: also leave the batch dimension free.
        batch_size: batch of the example input (default 2 with a dynamic batch, since
            `torch.export` treats a size of 1 as a constant, else 1).

    Returns:
        The path written. The graph has one input `image` (batch, 3, height, width)
        and one output `logits` (batch, K, height, width).

    Raises:
        ValueError: bad `example_size` (also: below `min_export_side`) or `batch_size`.
        RuntimeError: the exporter fixed a free dimension to the example's size.
    """
    if len(example_size) != 2 or min(example_size) < 1:
        raise ValueError(f"example_size must be (H, W) with H, W >= 1, got {example_size!r}")
    side = min_export_side(model)
    if min(example_size) < side:
        h, w = example_size
        raise ValueError(
            f"example size (--size) {h}x{w} is too small to export {type(model).__name__}: "
            f"the graph would run at no other size; use at least {side}x{side}"
        )
    if batch_size is None:
        batch_size = 2 if dynamic_batch else 1
    if batch_size < 1 or (dynamic_batch and batch_size < 2):
        raise ValueError(
            f"batch_size must be >= 1 (>= 2 with a dynamic batch), got {batch_size}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    example = torch.randn(batch_size, 3, *example_size, device=device, dtype=dtype)
    io_names = {"input_names": ["image"], "output_names": ["logits"]}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            # Free height and width (and batch): symbolic dimensions in the graph.
            # `Dim.DYNAMIC` accepts lower bounds the tracer infers (e.g. H, W >= 9 for
            # CCNet: `torch.export` assumes its 1/8 feature map has >= 2 pixels a side)
            # but fails if a dimension gets fixed to the example's value.
            dim = torch.export.Dim.DYNAMIC
            axes = {2: dim, 3: dim} | ({0: dim} if dynamic_batch else {})
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=False,
                dynamic_shapes=(axes,), opset_version=opset, verbose=False, **io_names,
            )
    finally:
        model.train(was_training)
    names = {2: "height", 3: "width"} | ({0: "batch"} if dynamic_batch else {})
    _name_dims(path, names)
    dims = _symbolic_dims(path)
    free = sorted(names)
    if any(isinstance(dims[i], int) for i in free):
        raise RuntimeError(
            f"the exporter fixed the input shape of {path} to {dims}; expected symbolic "
            f"dimensions {free} (a size-dependent branch in the model?)"
        )
    return path


def build_for_export(
    model: str,
    backbone: str = "resnet18",
    num_classes: int = 11,
    checkpoint: str | os.PathLike | None = None,
    features: int = 256,
    recurrence: int = 2,
) -> nn.Module:
    """Build `model` ("ccnet" or "refinenet"), optionally with trained weights.

    `checkpoint` is a `seglib.train` checkpoint (the model is rebuilt from its saved
    config, which then wins over the other arguments) or a bare state_dict file. A
    missing file is a FileNotFoundError; an empty, truncated or foreign one a
    ValueError naming it.
    """
    if checkpoint is not None:
        state = load_torch_file(checkpoint, "checkpoint")
        if is_checkpoint(state):
            net, _ = load_model(checkpoint, device="cpu")
            return net
        if not isinstance(state, Mapping):
            raise ValueError(f"{checkpoint} holds a {type(state).__name__}, not a seglib "
                             "checkpoint or a state_dict")
    net = build_model(model, num_classes, backbone, recurrence=recurrence, features=features)
    if checkpoint is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{checkpoint} does not fit {model}/{backbone}: {err}") from err
    return net.eval()


def check_onnx_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise unless `path` can take a new ONNX file: not a folder, in a writable place,
    and not an existing file unless `overwrite` (nothing on disk is replaced unasked).

    Checked before exporting, which takes about half a minute for a CCNet.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"--out {path} is a folder: name the file to write, e.g. {path / 'model.onnx'}"
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"--out {path} exists: pass --overwrite to replace it, or "
                              "name another file")
    check_writable_folder(path.parent)
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"cannot write to {path}: no write permission")
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    """CLI entry point: build (and load) a model, export it, log where it went."""
    p = cli.ArgumentParser(prog="python -m seglib.export", description=__doc__.split("\n")[1])
    p.add_argument("--model", choices=["ccnet", "refinenet"], default="ccnet")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--num-classes", type=cli.at_least(1), default=11)
    p.add_argument("--features", type=cli.at_least(1), default=256, help="RefineNet width")
    p.add_argument("--recurrence", type=cli.at_least(0), default=2, help="CCNet's R")
    p.add_argument("--checkpoint", default=None, help="seglib checkpoint or state_dict")
    p.add_argument("--out", required=True, type=lambda text: str(Path(text).expanduser()),
                   help="output .onnx file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--size", default="360x480", help="example input HxW (default 360x480)")
    p.add_argument("--opset", type=int, default=None)
    p.add_argument("--static-batch", action="store_true", help="fix the batch size to 1")
    args = p.parse_args(argv)
    try:
        h, w = parse_hw(args.size)
    except ValueError:
        p.error(f"--size must look like 360x480, got {args.size!r}")
    check_onnx_path(args.out, args.overwrite)
    logging.basicConfig(format="%(message)s")
    log.setLevel(logging.INFO)  # our line only, not the exporter's optimiser chatter
    net = build_for_export(args.model, args.backbone, args.num_classes, args.checkpoint,
                           args.features, args.recurrence)
    out = Path(args.out)
    # Written beside `out`, then renamed onto it: an export that fails halfway leaves an
    # earlier file (kept with --overwrite until the new one is complete) as it was
    tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        to_onnx(net, tmp, (h, w), args.opset, dynamic_batch=not args.static_batch)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s (inputs %s)", type(net).__name__, out, _symbolic_dims(out))
    return out


if __name__ == "__main__":
    cli.run(main)
