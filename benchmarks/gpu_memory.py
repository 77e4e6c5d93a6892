"""
# GPU memory budget of the training recipes, estimated from CPU measurements

There is no GPU on the machine that builds this project, so the GPU memory of the
training recipes is ESTIMATED here, never measured. On the CPU, for CCNet (recurrence 2,
auxiliary head) and RefineNet (features 256) on ResNet-18/50/101 at CamVid's 360x480,
11 classes, in float32 and under bf16 autocast (what fp16/bf16 AMP does to the
activations), at batch 1 and 2 (and 4 for CCNet-ResNet-18, or with `--check all` for
every ResNet-18 set, to check the extrapolation):

- parameter bytes (float32; AMP keeps float32 weights);
- bytes autograd saves for backward in one training forward (model + loss), counted
  with `seglib.course.saved_bytes.saved_for_backward_bytes` (unique storages, parameters and
  input left out);
- the peak of live memory during one forward + backward, in a fresh process per case:
  growth of the RSS high-water mark (`_memory.reset_peak_rss`) with glibc's
  `MALLOC_MMAP_THRESHOLD_` at 64 KiB, so that every tensor buffer is returned to the
  system when freed (the CPU analogue of `torch.cuda.max_memory_allocated`). It holds the
  saved activations, the gradients flowing back, the parameter gradients and the batch.

The estimate for a batch b on a GPU (see `seglib/course/gpu_budget.py`):

    peak(b) = weights + grads + SGD momentum (3 x 4 bytes x params, + BN buffers)
              + A_0 + b * A_1 + CUDA context/workspace allowance (0.75 GiB)

with A_1 = peak(2) - peak(1), the growth of the measured peak per image, and
A_0 = max(0, (2 peak(1) - peak(2)) - 4 x params): what the batch-independent part of the
peak holds beyond the gradients (16-bit weight copies under autocast, or nothing). In
every set measured it was below the gradients' size (A_0 = 0): the peak comes early in
backward, before most parameter gradients exist, so counting all of them is
conservative by up to 4 bytes x params.

It prints the table, the largest batch that fits a 15 GB T4 with a 20% margin (12 GB)
per row set, a recommended default per (model, backbone), and the constants to
paste into `seglib/course/gpu_budget.py`; it writes `results/gpu_memory.csv`,
`results/gpu_memory_measured.csv` and `results/gpu_memory.png`.

    python benchmarks/gpu_memory.py              # 26 cases, a fresh process each
    python benchmarks/gpu_memory.py --models ccnet --backbones resnet50
    python benchmarks/gpu_memory.py --reuse      # table + plot from the last measurements

Each case takes seconds (ResNet-18) to a minute or two (ResNet-101 at batch 2 under
bf16 autocast, which is slow on most CPUs); the whole run (`--check all`, 28 cases)
took 23 minutes on the shared 2-core build machine with a CPU training job alongside
(load average 4-7).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _memory import reset_peak_rss, status_kb
from torch import Tensor, nn

from seglib.course.saved_bytes import saved_for_backward_bytes
from seglib.models import CCNet, RefineNet

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
GIB = 2**30
MIB = 2**20
SIZE = (360, 480)  # CamVid's frame, (h, w)
NUM_CLASSES = 11
T4_GIB = 15.0  # a Colab T4 reports 15360 MiB
MARGIN = 0.2  # keep 20% free: budget 12 GiB
ALLOWANCE_GIB = 0.75  # CUDA context (~0.3-0.4 GB, lazy loading) + cuDNN/cuBLAS workspaces
BATCHES = (1, 2, 4, 8)
PRECISIONS = {"fp32": None, "amp": torch.bfloat16}  # AMP measured as bf16 autocast on CPU


def build(model: str, backbone: str) -> nn.Module:
    """The training model: CCNet R=2 with its auxiliary head, or RefineNet features 256."""
    if model == "ccnet":
        return CCNet(NUM_CLASSES, backbone=backbone, recurrence=2, aux=True)
    if model == "refinenet":
        return RefineNet(NUM_CLASSES, backbone=backbone, features=256)
    raise ValueError(f"unknown model {model!r}")


def training_loss(outputs: Tensor | tuple[Tensor, Tensor], target: Tensor) -> Tensor:
    """The trainer's loss: float32 cross-entropy ignoring 255, + 0.4 x the auxiliary one."""
    heads = outputs if isinstance(outputs, tuple) else (outputs,)
    return sum(w * F.cross_entropy(h.float(), target, ignore_index=255)
               for w, h in zip((1.0, 0.4), heads))


class TrainingForward(nn.Module):
    """Model under autocast (or not) + loss: everything a training forward keeps."""

    def __init__(self, model: nn.Module, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype
        self.target: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast("cpu", dtype=self.dtype or torch.bfloat16,
                            enabled=self.dtype is not None):
            out = self.model(x)
        return training_loss(out, self.target)


def batch(b: int, size: tuple[int, int] = SIZE) -> tuple[Tensor, Tensor]:
    return torch.randn(b, 3, *size), torch.randint(0, NUM_CLASSES, (b, *size))


def run_case(model: str, backbone: str, precision: str, b: int) -> dict:
    """Measure one case in this (fresh) process; bytes."""
    t0 = time.perf_counter()
    torch.manual_seed(0)
    net = TrainingForward(build(model, backbone).train(), PRECISIONS[precision])
    params = sum(p.numel() for p in net.parameters())
    buffers = sum(t.numel() * t.element_size() for t in net.buffers())
    # warm-up: a small forward + backward loads the kernels and autograd's threads
    x, net.target = batch(b, (64, 64))
    net(x).backward()
    net.zero_grad(set_to_none=True)
    # 1. what autograd saves for backward (forward only, graph dropped afterwards)
    x, net.target = batch(b)
    saved = saved_for_backward_bytes(net, x)
    del x
    net.target = None
    gc.collect()
    # 2. peak live memory of forward + backward (no gradient exists before it)
    base = status_kb("VmRSS") * 1024
    reset_peak_rss()
    x, net.target = batch(b)
    loss = net(x)
    after_forward = status_kb("VmRSS") * 1024 - base
    loss.backward()
    peak = status_kb("VmHWM") * 1024 - base
    after_backward = status_kb("VmRSS") * 1024 - base  # ~ the gradients (+ the batch)
    return {
        "model": model, "backbone": backbone, "precision": precision, "batch": b,
        "params": params, "param_bytes": 4 * params, "buffer_bytes": buffers,
        "saved_bytes": saved, "after_forward_bytes": after_forward, "peak_bytes": peak,
        "after_backward_bytes": after_backward, "seconds": time.perf_counter() - t0,
        "threads": torch.get_num_threads(),
    }


def measure(model: str, backbone: str, precision: str, b: int) -> dict:
    """`run_case` in a fresh Python process with glibc returning freed buffers at once."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(64 * 1024))
    cmd = [sys.executable, __file__, "--case", f"{model},{backbone},{precision},{b}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def fit(rows: list[dict]) -> dict:
    """Per-image and fixed parts from the batch-1 and batch-2 measurements of one set."""
    by_b = {r["batch"]: r for r in rows}
    r1, r2 = by_b[1], by_b[2]
    grads = r1["param_bytes"]
    peak_image = r2["peak_bytes"] - r1["peak_bytes"]
    peak_fixed = 2 * r1["peak_bytes"] - r2["peak_bytes"]
    out = {
        "params": r1["params"], "param_bytes": grads, "buffer_bytes": r1["buffer_bytes"],
        "act_image": peak_image, "act_fixed": max(0, peak_fixed - grads),
        "peak_fixed": peak_fixed,
        "saved_image": r2["saved_bytes"] - r1["saved_bytes"],
        "saved_fixed": 2 * r1["saved_bytes"] - r2["saved_bytes"],
        "saved_ratio": r2["saved_bytes"] / r1["saved_bytes"],
    }
    if 4 in by_b:  # extrapolation check: the batch-4 peak predicted from batches 1 and 2
        predicted = peak_fixed + 4 * peak_image
        out["peak4_error"] = predicted / by_b[4]["peak_bytes"] - 1
        out["saved4_error"] = (out["saved_fixed"] + 4 * out["saved_image"]) / by_b[4][
            "saved_bytes"] - 1
    return out


def estimate_gib(f: dict, b: int) -> dict:
    """GPU peak of one training step at batch b (same model as seglib.course.gpu_budget)."""
    p = f["param_bytes"]
    parts = {
        "weights_gb": (p + f["buffer_bytes"]) / GIB, "grads_gb": p / GIB,
        "momentum_gb": p / GIB, "activations_gb": (f["act_fixed"] + b * f["act_image"]) / GIB,
        "allowance_gb": ALLOWANCE_GIB,
    }
    parts["est_peak_gb"] = sum(parts.values())
    return parts


def plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.8), sharey=True,
                             squeeze=False)
    colors = {"resnet18": "tab:green", "resnet50": "tab:blue", "resnet101": "tab:red"}
    for ax, model in zip(axes[0], models):
        for (backbone, precision), g in df[df["model"] == model].groupby(
                ["backbone", "precision"], sort=False):
            ax.plot(g["batch"], g["est_peak_gb"], marker="o",
                    linestyle="-" if precision == "fp32" else "--",
                    color=colors.get(backbone), label=f"{backbone}, {precision}")
        ax.axhline(T4_GIB, color="black", linewidth=1)
        ax.axhline(T4_GIB * (1 - MARGIN), color="black", linewidth=1, linestyle=":")
        ax.text(1, T4_GIB, " T4, 15 GB", va="bottom", fontsize=8)
        ax.text(1, T4_GIB * (1 - MARGIN), " 20% margin, 12 GB", va="bottom", fontsize=8)
        ax.set_ylim(0, T4_GIB * 1.12)
        ax.set_xscale("log", base=2)
        ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
        ax.set_xlabel("batch size")
        ax.set_title(f"{'CCNet' if model == 'ccnet' else 'RefineNet'}, 360x480 "
                     "(estimated, not measured)", fontsize=9)
        ax.legend(fontsize=7, loc="center left", handlelength=3)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("estimated peak GPU memory, GB (2^30 B)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--models", nargs="+", default=["ccnet", "refinenet"])
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50", "resnet101"])
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    p.add_argument(
        "--check",
        choices=["none", "cheap", "all"],
        default="cheap",
        help="batch-4 extrapolation check: none, CCNet-ResNet-18 only (seconds; "
        "default), or every ResNet-18 set (RefineNet's take minutes)",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="no measuring: rebuild the table, CSV and plot from results/gpu_memory_measured.csv",
    )
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # child process mode
    args = p.parse_args(argv)
    if args.case:
        model, backbone, precision, b = args.case.split(",")
        print("RESULT " + json.dumps(run_case(model, backbone, precision, int(b))))
        return

    import pandas as pd

    t_start = time.perf_counter()
    out = Path(args.out)
    old = (pd.read_csv(out / "gpu_memory_measured.csv").to_dict("records")
           if args.reuse else [])
    measured, fits, table = [], {}, []
    for model in args.models:
        for backbone in args.backbones:
            for precision in args.precisions:
                key = (model, backbone, precision)
                check = backbone == "resnet18" and (
                    args.check == "all" or (args.check == "cheap" and model == "ccnet")
                )
                if args.reuse:
                    rows = [r for r in old if (r["model"], r["backbone"], r["precision"]) == key]
                    if not rows:
                        sys.exit(f"--reuse: no measurement of {key} in {out}")
                else:
                    rows = [measure(model, backbone, precision, b)
                            for b in ((1, 2, 4) if check else (1, 2))]
                for r in rows:
                    print(f"{model:9s} {backbone:9s} {precision:4s} b={r['batch']}: saved "
                          f"{r['saved_bytes'] / MIB:7.0f} MiB, after fwd "
                          f"{r['after_forward_bytes'] / MIB:7.0f} MiB, peak fwd+bwd "
                          f"{r['peak_bytes'] / MIB:7.0f} MiB, after bwd "
                          f"{r['after_backward_bytes'] / MIB:6.0f} MiB "
                          f"({r['seconds']:.0f} s)", flush=True)
                measured += rows
                f = fits[key] = fit(rows)
                for b in BATCHES:
                    est = estimate_gib(f, b)
                    table.append(
                        {
                            "model": model,
                            "backbone": backbone,
                            "precision": precision,
                            "batch": b,
                            "params_m": f["params"] / 1e6,
                            **est,
                            "fits_t4": est["est_peak_gb"] <= T4_GIB * (1 - MARGIN),
                        }
                    )
    out.mkdir(parents=True, exist_ok=True)
    dm = pd.DataFrame(measured)
    dm.to_csv(out / "gpu_memory_measured.csv", index=False)
    df = pd.DataFrame(table)
    df.to_csv(out / "gpu_memory.csv", index=False, float_format="%.3f")
    plot(df, out / "gpu_memory.png")

    print("\nCPU measurements (MiB; per image = batch 2 - batch 1; fixed = 2 x b1 - b2):")
    for (model, backbone, precision), f in fits.items():
        check = (f", b=4 predicted/measured - 1: peak {f['peak4_error']:+.1%}, saved "
                 f"{f['saved4_error']:+.1%}" if "peak4_error" in f else "")
        print(f"  {model:9s} {backbone:9s} {precision:4s} params {f['params'] / 1e6:6.1f} M "
              f"({f['param_bytes'] / MIB:4.0f} MiB); saved/img {f['saved_image'] / MIB:6.0f}, "
              f"saved fixed {f['saved_fixed'] / MIB:5.0f}, saved b2/b1 {f['saved_ratio']:.3f}; "
              f"peak/img {f['act_image'] / MIB:6.0f}, peak fixed {f['peak_fixed'] / MIB:5.0f} "
              f"(grads {f['param_bytes'] / MIB:.0f}){check}")

    print(f"\nEstimated peak GPU memory of a training step (GB = 2^30 B; fits = <= "
          f"{T4_GIB * (1 - MARGIN):.0f} GB, a {T4_GIB:.0f} GB T4 with a {MARGIN:.0%} margin; "
          "NOT measured on a GPU):")
    print("| model | backbone | precision | batch | est. peak GB | fits T4 |")
    print("|---|---|---|---:|---:|---|")
    for r in table:
        print(
            f"| {r['model']} | {r['backbone']} | {r['precision']} | {r['batch']} | "
            f"{r['est_peak_gb']:.2f} | {'yes' if r['fits_t4'] else 'no'} |"
        )
    print("\nLargest batch in (1, 2, 4, 8) that fits [largest integer batch], and the "
          "recommended default (AMP, at most 8: the recipe's batch):")
    budget = T4_GIB * (1 - MARGIN)
    for model in args.models:
        for backbone in args.backbones:
            best, text = {}, []
            for precision in args.precisions:
                f = fits[model, backbone, precision]
                ok = [b for b in BATCHES if estimate_gib(f, b)["est_peak_gb"] <= budget]
                best[precision] = max(ok, default=0)
                fixed = estimate_gib(f, 0)["est_peak_gb"]
                most = max(0, int((budget - fixed) / (f["act_image"] / GIB)))
                text.append(f"{precision}: {best[precision] or 'none'} [{most}]")
            rec = ("amp", best["amp"]) if best.get("amp") else ("fp32", best.get("fp32", 0))
            print(f"  {model:9s} {backbone:9s} " + ", ".join(text)
                  + f" -> default: {rec[0]}, batch {rec[1]}")

    print("\n# paste into seglib/course/gpu_budget.py:")
    print("MEASURED: dict[tuple[str, str, str], tuple[int, int, int, int]] = {")
    for (model, backbone, precision), f in fits.items():
        print(
            f'    ("{model}", "{backbone}", "{precision}"): ({f["act_fixed"]}, '
            f"{f['act_image']}, {f['saved_fixed']}, {f['saved_image']}),"
        )
    print("}")
    print(
        f"\nwrote {out / 'gpu_memory.csv'}, {out / 'gpu_memory_measured.csv'}, "
        f"{out / 'gpu_memory.png'} ({time.perf_counter() - t_start:.0f} s)"
    )


if __name__ == "__main__":
    main()
