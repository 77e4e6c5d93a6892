"""
# Where criss-cross attention must work: R = 0, 1, 2 on the long-range cue task

Trains `seglib.models.LongRangeNet` (a local stem whose receptive field is 13 pixels,
then the real `RCCAModule` with R passes of one criss-cross attention) on
`seglib.data.LongRangeTask` (objects labelled by the colour of a cue more than 16
pixels away) for every R and seed given, and scores each run on the test split, pixel
accuracy separately on

- local pixels (background and cue: their own look decides),
- aligned objects (they share the cue's rows or columns: one pass can reach the cue),
- far objects (only two passes reach the cue); chance on objects is 50 %.

Prints mean +- std over the seeds and writes

- `benchmarks/results/long_range.csv`: one row per (R, seed),
- `benchmarks/results/long_range.png`: bars with error bars (std over seeds).

    python benchmarks/long_range.py --recurrence 0 1 2 --seeds 0 1 2 --threads 1

Rows are saved as each run ends, into the existing table (a row of the same R and seed
is replaced), so two processes can share the work, e.g. `--recurrence 0 1` and
`--recurrence 2`. About 2 minutes per run on one free core.
"""

from __future__ import annotations

import argparse
import fcntl
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from seglib.course.long_range_experiment import region_accuracy, task_tensors, train_long_range  # noqa: E402
from seglib.data.long_range import REGIONS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [*REGIONS, "overall"]


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean +- std (over seeds) of each accuracy, in percent, one row per R."""
    g = table.groupby("recurrence")[COLUMNS]
    mean, std = g.mean() * 100, g.std(ddof=1).fillna(0.0) * 100
    out = mean.round(1).astype(str) + " +- " + std.round(1).astype(str)
    out["seeds"] = table.groupby("recurrence")["seed"].count()
    return out


def plot(table: pd.DataFrame, path: Path) -> None:
    """Grouped bars: accuracy per region for each R, error bars = std over seeds."""
    g = table.groupby("recurrence")[COLUMNS[:3]]
    mean, std = g.mean() * 100, g.std(ddof=1).fillna(0.0) * 100
    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    width = 0.8 / len(mean)
    for k, (r, row) in enumerate(mean.iterrows()):
        x = [i + (k - (len(mean) - 1) / 2) * width for i in range(3)]
        ax.bar(x, row.values, width, yerr=std.loc[r].values, capsize=3, label=f"R = {r}")
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.text(2.45, 51, "chance", color="grey", fontsize=8, ha="right", va="bottom")
    ax.set_xticks(range(3), [f"{name} pixels" for name in COLUMNS[:3]])
    ax.set_ylabel("test pixel accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"long-range cue task, {table.steps.iloc[0]} steps, mean +- std over "
                 f"{table.seed.nunique()} seeds",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip("# \n"))
    p.add_argument("--recurrence", type=int, nargs="+", default=[0, 1, 2], help="R values")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the network, the batches and the training images")
    p.add_argument("--steps", type=int, default=1500, help="Adam steps per run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--n-train", type=int, default=1000, help="training images")
    p.add_argument("--n-test", type=int, default=500, help="test images (test split, seed 0)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--out", type=Path, default=RESULTS / "long_range.csv")
    p.add_argument("--plot-only", action="store_true", help="table and plot from the CSV")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    if not args.plot_only:
        run_all(args)
    table = pd.read_csv(args.out).sort_values(["recurrence", "seed"])
    print(summary(table).to_string())
    plot(table, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png').name}")


def save_row(row: dict, path: Path) -> None:
    """Put one run's row into the CSV, replacing an earlier row of the same (R, seed).

    Under a file lock, so that two processes (e.g. `--recurrence 0 1` and `--recurrence
    2` on two cores) can fill the same table.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=list(row))
        keep = ~((old.recurrence == row["recurrence"]) & (old.seed == row["seed"]))
        table = pd.concat([old[keep], pd.DataFrame([row])], ignore_index=True)
        table.sort_values(["recurrence", "seed"]).to_csv(path, index=False, float_format="%.4f")
    path.with_suffix(".lock").unlink(missing_ok=True)


def run_all(args: argparse.Namespace) -> None:
    """Train and score every (seed, R); each row is saved as soon as its run ends."""
    test = task_tensors(args.n_test, seed=0, split="test")  # the same test set for all runs
    for seed in args.seeds:
        train = task_tensors(args.n_train, seed=seed, split="train")[:2]
        for r in args.recurrence:
            start = time.perf_counter()
            net = train_long_range(r, train, seed=seed, steps=args.steps,
                                   batch_size=args.batch_size, lr=args.lr)
            seconds = time.perf_counter() - start
            acc = region_accuracy(net, *test)
            gamma = float(net.head.cca.gamma.detach()) if r > 0 else float("nan")
            save_row({"recurrence": r, "seed": seed, **acc, "gamma": gamma,
                      "steps": args.steps, "train_s": round(seconds, 1)}, args.out)
            print(f"R = {r} seed {seed}: " + ", ".join(f"{k} {acc[k]:.3f}" for k in COLUMNS)
                  + f", gamma {gamma:.3f}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
