"""
# What the criss-cross attention buys on CamVid: seeds, a knockout, and gamma over training

The CPU recipe (`--recipe camvid-cpu`) on a **short schedule** (`--epochs`, default 10 of
the recipe's 60, the poly schedule compressed to fit) with and without attention, over
several seeds, so that the difference between R = 2 and R = 0 can be read beside its
spread. For every R = 2 run it also records, per epoch, the attention's gate $\\gamma$
and the mean |gradient| it received, and scores the best checkpoint (chosen on val) on
val and on the 233 test frames:

- plain, and with the attention knocked out (`seglib.models.attention_knockout`): both
  passes, and one pass (the module is shared, so either pass removed leaves the same
  network: the attention applied once); the drop is what the attention carries;
- per class, so that a claim "the attention helps class X" can be checked.

Writes (runs themselves go to `runs/attention-seeds/<variant>-s<seed>`, never committed):

- `benchmarks/results/attention_seeds.csv`: one row per (variant, seed, knockout);
- `benchmarks/results/attention_seeds_gamma.csv`: gamma and its gradient per epoch.

    CAMVID_DIR=... python benchmarks/attention_seeds.py --variants r2 r0 --seeds 0 1 2
    CAMVID_DIR=... python benchmarks/attention_seeds.py --no-train   # score what exists

Interrupt at any time: the next call resumes every run from its `last.pt`. Two runs can
share two cores side by side with `--threads 1` each (different `--variants`/`--seeds`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from seglib.data import pick_datasets
from seglib.engine import evaluate, load_model
from seglib.engine.config import recipe
from seglib.engine.from_config import (
    build_datasets,
    build_loaders,
    build_model_for,
    resolve_class_weights,
)
from seglib.engine.training_loop import fit
from seglib.models import attention_knockout, rcca_attention
from seglib.paths import runs_root

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = RESULTS / "attention_seeds.csv"
GAMMA = RESULTS / "attention_seeds_gamma.csv"

# variant -> overrides of the camvid-cpu recipe (besides epochs and seed)
VARIANTS: dict[str, dict[str, Any]] = {
    "r2": {},  # the recipe as it is
    "r0": {"recurrence": 0},  # the same network without the attention
    # a remedy for a gate that stays shut: gamma learns 10x faster (R = 0, which has no
    # gamma, is the same network as for "r2", so its runs serve both comparisons)
    "r2-gate": {"gamma_lr_mult": 10.0},
    # no weight decay on gamma, biases and norm weights (nanoGPT's rule): does decay hold
    # the gate shut?
    "r2-nodecay": {"decay_1d": False},
    # the head (attention, its convolutions, classifier) learns 10x faster than the
    # backbone, as DeepLab's and PSPNet's reference code trains a new head
    "r2-head": {"head_lr_mult": 10.0},
    # where the attention sits: without the stride-4 decoder nothing goes around the head,
    # so the classifier sees only what the attention's output carries (stride 16)
    "r2-nodec": {"decoder": False},
    "r0-nodec": {"recurrence": 0, "decoder": False},
}
# One module is shared by both passes, so removing the first or the second pass leaves
# the same network (the attention applied once): one knockout stands for both
KNOCKOUTS: dict[str, Any] = {"none": None, "one-pass": [2], "both": "all"}


def run_dir(variant: str, seed: int, epochs: int) -> Path:
    return runs_root() / "attention-seeds" / f"{variant}-e{epochs}-s{seed}"


def train(variant: str, seed: int, epochs: int) -> None:
    """Train (or resume) one run in this process, logging gamma every epoch."""
    out = run_dir(variant, seed, epochs)
    config = recipe("camvid-cpu", epochs=epochs, seed=seed, **VARIANTS[variant])
    choice = build_datasets(config)
    config = config.replace(num_classes=choice.num_classes, data=choice.name,
                            data_dir=str(choice.root) if choice.root else None)
    config = resolve_class_weights(config, choice)
    torch.manual_seed(config.seed)
    model = build_model_for(config)
    train_loader, val_loader = build_loaders(config, choice)
    gate = getattr(getattr(model, "head", None), "cca", None)
    grads: list[float] = []
    if config.recurrence > 0 and gate is not None:
        gate.gamma.register_hook(lambda g: grads.append(float(g.abs().sum())))
    log = out / "gamma.csv"

    def record(row: dict) -> None:
        if gate is None or config.recurrence == 0:
            return
        entry = {"variant": variant, "seed": seed, "epoch": row["epoch"],
                 "gamma": float(gate.gamma.detach()),
                 "mean_abs_grad": sum(grads) / max(1, len(grads)),
                 "val_miou": row["val_miou"]}
        grads.clear()
        pd.DataFrame([entry]).to_csv(log, mode="a", header=not log.is_file(), index=False)

    resume = (out / "last.pt").is_file()
    print(f"{variant} seed {seed}: {'resuming' if resume else 'training'} into {out}", flush=True)
    fit(model, train_loader, val_loader, config, out=out, resume=resume, animate=False,
        callback=record)


def score(variant: str, seed: int, epochs: int) -> list[dict]:
    """Rows for one run's best.pt: val and test mIoU, per class, for each knockout."""
    out = run_dir(variant, seed, epochs)
    if not (out / "best.pt").is_file():
        return []
    model, config = load_model(out / "best.pt", device="cpu")
    metrics = pd.read_csv(out / "metrics.csv")
    if metrics["epoch"].max() < config.epochs:  # a run still training is scored when done
        print(f"{variant} s{seed}: {metrics['epoch'].max()} of {config.epochs} epochs, not scored")
        return []
    knockouts = KNOCKOUTS if config.recurrence == 2 else {"none": None}
    rows = []
    for split in ("val", "test"):
        choice = pick_datasets(config.data_dir, source="camvid", split=split, verbose=False)
        loader = DataLoader(choice.val, batch_size=4)
        stats = (attention_statistics(model, choice.val, config.eval_scale)
                 if config.recurrence == 2 else {})
        for name, passes in knockouts.items():
            if passes is None:
                res = evaluate(model, loader, config.num_classes, "cpu",
                               input_scale=config.eval_scale)
            else:
                with attention_knockout(model, passes):
                    res = evaluate(model, loader, config.num_classes, "cpu",
                                   input_scale=config.eval_scale)
            row = {"variant": variant, "recurrence": config.recurrence, "seed": seed,
                   "epochs": int(metrics["epoch"].max()), "planned_epochs": config.epochs,
                   "split": split, "knockout": name, "miou": res["miou"],
                   "pixel_acc": res["pixel_acc"],
                   "gamma": model.head.cca.gamma.item() if config.recurrence else float("nan"),
                   "train_minutes": metrics["seconds"].sum() / 60, **stats}
            row.update({f"iou_{c}": float(v) for c, v in zip(choice.classes, res["iou"].tolist())})
            rows.append(row)
            print(f"{variant} s{seed} {split} knockout={name}: mIoU {res['miou']:.4f}", flush=True)
    return rows


def attention_statistics(model: torch.nn.Module, dataset, scale: float, frames: int = 24) -> dict:
    """Per pass, averaged over the first `frames` images: the attention's share of the
    features and its entropy as a fraction of the uniform one (`rcca_attention`)."""
    records = []
    for i in range(min(frames, len(dataset))):
        image = dataset[i][0][None]  # (1, 3, H, W)
        image = torch.nn.functional.interpolate(image, scale_factor=scale, mode="bilinear",
                                                align_corners=False)
        records.append(rcca_attention(model, image))
    out = {}
    for r in range(records[0]["recurrence"] if records else 0):
        out[f"share_pass{r + 1}"] = float(np.mean([a["shares"][r] for a in records]))
        out[f"entropy_pass{r + 1}"] = float(np.mean([a["entropies"][r] for a in records]))
    return out


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of test/val mIoU for each variant and knockout."""
    return (table.groupby(["variant", "split", "knockout"])["miou"]
            .agg(["mean", "std", "count"]).reset_index())


def markdown(table: pd.DataFrame) -> str:
    """One row per variant: val and test mIoU (mean +- std over seeds, in points), the test
    drop with both passes knocked out, and the gate gamma of each seed's best checkpoint."""

    def pm(values: pd.Series) -> str:
        values = values.dropna()
        if values.empty:
            return ""
        # mean, then points, then pandas' rounding: the digits notebook 08's tables print
        spread = f" +- {np.round(100 * values.std(), 1):.1f}" if len(values) > 1 else ""
        return f"{np.round(100 * values.mean(), 1):.1f}{spread}"

    lines = ["| variant | seeds | val mIoU | test mIoU | test drop, both out | gamma by seed |",
             "|---|---:|---:|---:|---:|---:|"]
    intact = table[table["knockout"] == "none"]
    for variant, rows in intact.groupby("variant", sort=False):
        val, test = (rows[rows["split"] == s].set_index("seed")["miou"] for s in ("val", "test"))
        both = table[(table["variant"] == variant) & (table["knockout"] == "both")
                     & (table["split"] == "test")].set_index("seed")["miou"]
        drop = pm(test - both) if len(both) else ""
        shown = ", ".join(f"{g:.3f}" for g in rows.drop_duplicates("seed")["gamma"].dropna())
        lines.append(f"| {variant} | {len(test)} | {pm(val)} | {pm(test)} | {drop} | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["r2", "r0"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10, help="short schedule (default 10)")
    p.add_argument("--threads", type=int, help="torch threads (two runs side by side: 1)")
    p.add_argument("--no-train", action="store_true", help="only score what exists")
    p.add_argument("--no-score", action="store_true", help="only train")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = [(v, s) for s in args.seeds for v in args.variants]
    if not args.no_train:
        for v, s in pairs:
            train(v, s, args.epochs)
    if args.no_score:
        return pd.DataFrame()
    rows = [r for v, s in pairs for r in score(v, s, args.epochs)]
    fresh = pd.DataFrame(rows)
    stored = pd.read_csv(TABLE) if TABLE.is_file() else pd.DataFrame()
    if not stored.empty and not fresh.empty:
        done = set(zip(fresh["variant"], fresh["seed"], fresh["epochs"]))
        keep = [(v, s, e) not in done for v, s, e in
                zip(stored["variant"], stored["seed"], stored["epochs"])]
        stored = stored[keep]
    table = pd.concat([stored, fresh], ignore_index=True)
    RESULTS.mkdir(exist_ok=True)
    if not table.empty:
        table.sort_values(["variant", "seed", "split", "knockout"]).to_csv(
            TABLE, index=False, float_format="%.4f")
        print(summary(table).to_string(index=False, float_format="%.4f"))
        print(markdown(table))
    logs = [pd.read_csv(f) for f in sorted((runs_root() / "attention-seeds").glob("*/gamma.csv"))]
    if logs:
        pd.concat(logs, ignore_index=True).to_csv(GAMMA, index=False, float_format="%.6g")
    return table


if __name__ == "__main__":
    main()
