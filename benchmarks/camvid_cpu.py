"""
# The CPU recipe on real CamVid, and the ablation the CCNet paper is about

Trains (or resumes) the ablation's runs with the same seed, one per model (`ABLATION`,
with the first CPU recipe's flags; the recipe itself and the other `RUNS` only when
named with `--only`), through the command line a learner types,

    python -m seglib.train --recipe camvid-cpu [flags of RUNS[name]] --resume

then evaluates each run's `best.pt` (chosen on val) on the 233 **test** images at the
native 360x480 labels and writes:

- `benchmarks/results/camvid_cpu.csv`: one row per run: test mIoU, pixel accuracy,
  per-class IoU, parameters, epochs done, training minutes, images/s, and the test
  mIoU with logit adjustment (`tau` chosen on val, `seglib.engine.logit_adjustment`);
- `benchmarks/results/camvid_cpu_metrics/<run>.csv`: a copy of each run's per-epoch
  `metrics.csv`, so that the curves outlive the run folders;
- `benchmarks/results/camvid_cpu_curves.png`: train loss and val mIoU per epoch;
- a markdown table beside published CamVid test numbers (printed).

Runs live in `runs/camvid-cpu*` (git-ignored, never committed). Rows of runs whose
folder is gone (another machine, a clean clone) are kept from the stored CSV, so that
scoring one new run never drops the others. Interrupt at any time: the next call
resumes every unfinished run from its `last.pt`. A run still training is reported with
the epochs it has.

    CAMVID_DIR=... python benchmarks/camvid_cpu.py                  # the ablation
    CAMVID_DIR=... python benchmarks/camvid_cpu.py --only ccnet-r2  # one run
    CAMVID_DIR=... python benchmarks/camvid_cpu.py --no-train       # table of what exists
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from seglib.data import pick_datasets
from seglib.engine import evaluate, load_model
from seglib.engine.logit_adjustment import DEFAULT_TAUS, best_tau, sweep_logit_adjustment
from seglib.paths import runs_root

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = RESULTS / "camvid_cpu.csv"
CURVES = RESULTS / "camvid_cpu_metrics"
RECIPE = "camvid-cpu"

# The ablation and the first experiments ran with the first CPU recipe: output stride 8,
# no decoder, 30 epochs. These flags pin it, so that those rows stay reproducible now
# that the recipe has moved on to output stride 16 with the decoder for 60 epochs.
FIRST_RECIPE = ["--output-stride", "8", "--no-decoder", "--epochs", "30"]

# name -> flags after `--recipe camvid-cpu`
RUNS: dict[str, list[str]] = {
    # the recipe itself, as `make camvid-cpu` and notebook 06 (cpu mode) train it
    "recipe": [],
    # the same without attention: does the attention still pay beside the decoder?
    "recipe-r0": ["--recurrence", "0"],
    # the paper's ablation, with the first recipe and the same seed
    "ccnet-r2": FIRST_RECIPE,
    "ccnet-r1": [*FIRST_RECIPE, "--recurrence", "1"],
    "ccnet-r0": [*FIRST_RECIPE, "--recurrence", "0"],
    # RefineNet at half the paper's width: ResNet-18's stages are a quarter as wide as
    # ResNet-101's; channels_last measures 1.3x faster for its 3x3 convolutions on a CPU
    "refinenet-f128": ["--model", "refinenet", "--features", "128", "--channels-last",
                       "--epochs", "30"],
    # the paper's width (256): about 3 h for 30 epochs on 2 cores; a GPU's run
    "refinenet": ["--model", "refinenet", "--channels-last", "--epochs", "30"],
    # the first recipe at output stride 16 for twice the epochs (2.5x the images/s)
    "ccnet-r2-os16": ["--output-stride", "16", "--no-decoder", "--epochs", "60"],
    # towards the test split's unseen drive: stronger colour jitter, then more weight decay
    "ccnet-r2-jitter": [*FIRST_RECIPE, "--jitter", "strong"],
    "ccnet-r2-jitter-wd5": [*FIRST_RECIPE, "--jitter", "strong", "--weight-decay", "5e-4"],
    # towards the thin classes: a stride-4 decoder on layer1 (DeepLabv3+), at output
    # stride 8, and at 16 for twice the epochs (the first run of today's recipe)
    "ccnet-r2-decoder": ["--output-stride", "8", "--decoder", "--epochs", "30"],
    "ccnet-r2-os16-decoder": ["--output-stride", "16", "--decoder", "--epochs", "60"],
}
# what `python benchmarks/camvid_cpu.py` trains without --only: the paper's ablation
ABLATION = ["ccnet-r2", "ccnet-r1", "ccnet-r0", "refinenet-f128", "refinenet"]

# Published CamVid test mIoU (11 classes, 233 test images, 360x480), no ImageNet
# pretraining. `verified`: checked against the paper's stored abstract page here; the
# others are quoted from the papers' comparison tables from memory, not re-checked.
PUBLISHED = [
    ("SegNet", 46.4, "as compared in Jegou et al. 2017, arXiv:1611.09326, Table 2", False),
    ("ENet", 51.3, "Paszke et al. 2016, arXiv:1606.02147", False),
    ("FC-DenseNet56", 58.9, "Jegou et al. 2017, arXiv:1611.09326, Table 2", False),
    ("FC-DenseNet103", 66.9, "Jegou et al. 2017, arXiv:1611.09326, Table 2", True),
]


def out_dir(name: str) -> Path:
    """The run folder: `runs/camvid-cpu` for the recipe itself (`make camvid-cpu`'s and
    notebook 06's), else `runs/camvid-cpu-<name>`."""
    return runs_root() / (RECIPE if name == "recipe" else f"{RECIPE}-{name}")


def train(name: str) -> None:
    """Start or resume one run through the command line (a fresh process)."""
    out = out_dir(name)
    cmd = [sys.executable, "-m", "seglib.train", "--recipe", RECIPE, *RUNS[name],
           "--out", str(out)]
    if (out / "last.pt").is_file():
        cmd.append("--resume")
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)


def score(name: str, split: str = "test") -> dict | None:
    """Evaluate a run's best.pt on the test split at native labels; None if no run yet."""
    out = out_dir(name)
    if not (out / "best.pt").is_file():
        return None
    model, config = load_model(out / "best.pt", device="cpu")
    choice = pick_datasets(config.data_dir, source="camvid", split=split, verbose=False)
    loader = DataLoader(choice.val, batch_size=4)
    if config.class_weights is None:
        res = evaluate(model, loader, config.num_classes, "cpu", input_scale=config.eval_scale)
        plain = {"miou": res["miou"], "pixel_acc": res["pixel_acc"],
                 "mean_class_acc": res["mean_class_acc"],
                 **{f"iou_{c}": float(v) for c, v in zip(choice.classes, res["iou"].tolist())}}
        tau = adjusted = None
    else:  # also undo part of the weighting, tau chosen on val: one pass for both taus
        val = pick_datasets(config.data_dir, source="camvid", split="val", verbose=False).val
        on_val = sweep_logit_adjustment(model, DataLoader(val, batch_size=4),
                                        config.class_weights, DEFAULT_TAUS, "cpu",
                                        input_scale=config.eval_scale)
        tau = best_tau(on_val)
        on_split = sweep_logit_adjustment(model, loader, config.class_weights, sorted({0.0, tau}),
                                          "cpu", input_scale=config.eval_scale,
                                          classes=choice.classes)
        plain, adjusted = on_split.loc[0.0].to_dict(), on_split.loc[tau, "miou"]
    metrics = pd.read_csv(out / "metrics.csv")
    CURVES.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(CURVES / f"{name}.csv", index=False)
    row = {
        "run": name, "model": config.model, "recurrence": config.recurrence
        if config.model == "ccnet" else None,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "epochs": int(metrics["epoch"].max()), "planned_epochs": config.epochs,
        "train_minutes": metrics["seconds"].sum() / 60,
        "images_per_s": metrics["images_per_s"].median(),
        "best_val_miou": metrics["val_miou"].max(),
        f"{split}_miou": plain["miou"], f"{split}_pixel_acc": plain["pixel_acc"],
        f"{split}_mean_class_acc": plain["mean_class_acc"],
    }
    row.update({f"iou_{c}": plain[f"iou_{c}"] for c in choice.classes})
    if tau is not None:
        row.update({"tau": tau, "best_val_miou_adjusted": on_val.loc[tau, "miou"],
                    f"{split}_miou_adjusted": adjusted})
    return row


def merge_rows(scored: list[dict], stored: pd.DataFrame | None) -> pd.DataFrame:
    """Fresh rows replace stored rows of the same run; stored rows of the others stay.

    The order is that of RUNS, so the table reads the same whichever runs exist here.
    """
    fresh = pd.DataFrame(scored)
    keep = stored if stored is not None else pd.DataFrame()
    if not keep.empty and not fresh.empty:
        keep = keep[~keep["run"].isin(fresh["run"])]
    table = pd.concat([keep, fresh], ignore_index=True)
    if table.empty:
        return table
    order = {name: i for i, name in enumerate(RUNS)}
    return table.sort_values("run", key=lambda s: s.map(order)).reset_index(drop=True)


def plot_curves(names: list[str], path: Path) -> None:
    """Train loss and val mIoU per epoch for every run with a stored metrics copy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in names:
        csv = CURVES / f"{name}.csv"
        if not csv.is_file():
            continue
        m = pd.read_csv(csv)
        if m.empty:
            continue
        ax_loss.plot(m["epoch"], m["train_loss"], label=name)
        ax_miou.plot(m["epoch"], m["val_miou"], label=name)
    ax_loss.set(xlabel="epoch", ylabel="train loss (class-weighted)",
                title="training loss (CCNet's with 0.4 x its aux loss)")
    ax_miou.set(xlabel="epoch", ylabel="val mIoU", title="validation mIoU (180x240 input)")
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("camvid-cpu: the recipe (60 epochs) and the ablation (the first recipe, 30 "
                 "epochs); ResNet-18 from scratch, 2-core CPU", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def markdown(table: pd.DataFrame) -> str:
    """The results beside the published numbers, as a markdown table."""
    lines = ["| model | test mIoU | adjusted (tau) | params (M) | epochs | train min | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        adjusted = r.get("test_miou_adjusted", float("nan"))
        adjusted = "" if pd.isna(adjusted) else f"{100 * adjusted:.1f} ({r['tau']:g})"
        lines.append(f"| {r['run']} (seglib) | {100 * r['test_miou']:.1f} | {adjusted} | "
                     f"{r['params_m']:.1f} | {r['epochs']} | "
                     f"{r['train_minutes']:.0f} | {r['images_per_s']:.1f} |")
    for name, miou, source, verified in PUBLISHED:
        mark = "" if verified else " (not re-checked)"
        lines.append(f"| {name} [{source}]{mark} | {miou:.1f} | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--only", nargs="*", choices=sorted(RUNS),
                   help="runs to train and score (default: train the ablation, score every "
                        "run found; the stored rows of the others stay)")
    p.add_argument("--no-train", action="store_true", help="only score what exists")
    args = p.parse_args(argv)
    names = args.only or ABLATION
    torch.manual_seed(0)
    if not args.no_train:
        for name in names:
            train(name)
    rows = [r for r in (score(n) for n in (args.only or RUNS)) if r is not None]
    table = merge_rows(rows, pd.read_csv(TABLE) if TABLE.is_file() else None)
    RESULTS.mkdir(exist_ok=True)
    if not table.empty:
        table.to_csv(TABLE, index=False, float_format="%.4f")
        print(markdown(table))
    # the recipe with and without attention, and the ablation: the other runs are
    # experiments, in the table only (nine curves in one plot read as none)
    plot_curves(["recipe", "recipe-r0", *ABLATION], RESULTS / "camvid_cpu_curves.png")
    return table


if __name__ == "__main__":
    main()
