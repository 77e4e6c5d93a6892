"""
# The quick synthetic training run: final mIoU and wall time

Runs the command a newcomer would type,

    python -m seglib.train --data synthetic --out DIR

(the CLI's default quick CPU recipe, plus any extra flags given here) in a fresh
process, measures its wall time (imports, scene rendering, training, validation and
checkpoint writing included), and records the outcome:

- `benchmarks/results/quick_train.csv`: final and best val mIoU, pixel accuracy, wall
  seconds, CPU seconds, epochs, CPU count and the load average before/after. On a
  shared machine the wall time is an upper bound; CPU seconds / cores estimates the
  wall time on an idle machine;
- `benchmarks/results/quick_train_metrics.csv`: the run's per-epoch `metrics.csv`;
- `benchmarks/results/quick_train.png`: train loss, val pixel accuracy and val mIoU.

Checkpoints go to a temporary folder (they are large) unless `--out` is given.

    python benchmarks/quick_train.py                  # the default recipe
    python benchmarks/quick_train.py -- --epochs 3    # flags after -- go to the CLI
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def plot(metrics, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(metrics["epoch"], metrics["train_loss"], "-o", label="train loss")
    ax.plot(metrics["epoch"], metrics["val_pixel_acc"], "m--o", label="val pixel acc")
    ax.plot(metrics["epoch"], metrics["val_miou"], "g-.o", label="val mIoU")
    ax.axhline(0.8, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Time the quick synthetic training run.")
    p.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("cli_args", nargs="*", help="extra flags for seglib.train (after --)")
    args = p.parse_args(argv)
    import pandas as pd

    tmp = None if args.out else tempfile.mkdtemp(prefix="seglib-quick-")
    out = Path(args.out or tmp)
    cmd = [sys.executable, "-m", "seglib.train", "--data", "synthetic", "--out", str(out),
           *args.cli_args]
    print("running:", " ".join(cmd), flush=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=HERE.parent)
    wall = time.perf_counter() - t0
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = child.ru_utime + child.ru_stime  # CPU seconds of the run, both threads together
    load_after = os.getloadavg()
    if proc.returncode:
        sys.exit(f"training failed with exit code {proc.returncode}")
    metrics = pd.read_csv(out / "metrics.csv")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(results / "quick_train_metrics.csv", index=False)
    last = metrics.iloc[-1]
    row = {
        "command": "python -m seglib.train --data synthetic " + " ".join(args.cli_args),
        "epochs": int(last["epoch"]),
        "final_val_miou": float(last["val_miou"]),
        "best_val_miou": float(metrics["val_miou"].max()),
        "final_val_pixel_acc": float(last["val_pixel_acc"]),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        # on an idle machine the run keeps every core busy: wall ~ CPU time / cores
        "idle_wall_estimate_s": cpu / (os.cpu_count() or 1),
        "train_seconds": float(metrics["seconds"].sum()),
        "mean_images_per_s": float(metrics["images_per_s"].mean()),
        "cpu_count": os.cpu_count(),
        "load_avg_1min_before": load_before[0],
        "load_avg_1min_after": load_after[0],
        "machine": f"{platform.system()} {platform.machine()} {platform.processor()}".strip(),
    }
    pd.DataFrame([row]).to_csv(results / "quick_train.csv", index=False)
    plot(metrics, results / "quick_train.png",
         f"quick synthetic run: mIoU {row['final_val_miou']:.3f} in {wall:.0f} s wall "
         f"({os.cpu_count()} CPUs)")
    print(pd.DataFrame([row]).T.to_string(header=False))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
