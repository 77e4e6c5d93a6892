"""
# Training throughput of CCNet and RefineNet

Images per second and peak memory of full training steps (forward, CCNet's auxiliary
loss, backward, SGD step) at CamVid's native 360x480, batch 2, for CCNet and RefineNet
on ResNet-18 and ResNet-50 backbones, on the device present:

- CUDA: every case with and without AMP (bf16/fp16 autocast, fp16 with a GradScaler)
  and channels_last; memory = `torch.cuda.max_memory_allocated`.
- CPU: float32 only, a few iterations (a ResNet-50 CCNet step takes many seconds on two
  cores); memory = the peak RSS growth of a fresh Python process per case (peak RSS,
  VmHWM, minus the RSS after imports), so that cases do not pollute each other.

    python benchmarks/throughput.py                 # all cases, writes results/
    python benchmarks/throughput.py --iters 5 --models ccnet --backbones resnet18
    python benchmarks/throughput.py --cpu-recipe    # A/B rows of the camvid-cpu recipe
    python benchmarks/throughput.py --cpu-models    # the ablation's models, same step

Writes `benchmarks/results/throughput.csv` and `throughput.png`. Timings on a shared
machine are noisy; the table says which device and how many threads were used.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from _memory import status_kb

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _rss_mb() -> float:
    """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        return status_kb("VmRSS") / 1024
    except OSError:
        return 0.0


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM, see `_memory`); `ru_maxrss` where /proc is missing."""
    try:
        return status_kb("VmHWM") / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(model: str, backbone: str, amp: str, channels_last: bool, iters: int,
             warmup: int, device: str, size: tuple[int, int], batch: int) -> dict:
    """Time `iters` training steps of one configuration in this process."""
    from seglib.engine import segmentation_loss
    from seglib.engine.device import autocast, pick_device, resolve_amp
    from seglib.models import build_model

    dev = pick_device(device)
    base_rss = _rss_mb()
    torch.manual_seed(0)
    net = build_model(model, 11, backbone).to(dev).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    dtype = resolve_amp(amp, dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
    X = torch.randn(batch, 3, *size, device=dev)
    Y = torch.randint(0, 11, (batch, *size), device=dev)
    if channels_last:
        X = X.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with autocast(dev, dtype):
            out = net(X)
        loss = segmentation_loss(out, Y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "cuda max allocated"
    else:
        peak = _peak_rss_mb() - base_rss
        kind = "peak RSS growth"
    return {
        "model": model, "backbone": backbone, "amp": str(dtype).replace("torch.", "")
        if dtype else "off", "channels_last": channels_last, "device": str(dev),
        "threads": torch.get_num_threads(), "batch": batch, "size": f"{size[0]}x{size[1]}",
        "iters": iters, "s_per_iter": median, "images_per_s": batch / median,
        "peak_mb": peak, "memory": kind,
        "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
    }


def interleaved_rates(steps_by_name: dict, images: dict, rounds: int, steps: int) -> dict:
    """Images/s of every `steps_by_name[name]()` call, `rounds` interleaved rounds.

    Each round times `steps` calls of every variant in turn (after one warm-up call
    each), so that a busy or throttled period hits all variants alike.
    """
    for step in steps_by_name.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for r in range(rounds):
        for name, step in steps_by_name.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append(images[name] * steps / (time.perf_counter() - start))
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{k.split(':')[0]} {v[-1]:.2f}" for k, v in times.items()), flush=True)
    return times


def cpu_recipe_ab(rounds: int, steps: int) -> list[dict]:
    """Interleaved A/B of the first `camvid-cpu` recipe's training step (output stride 8,
    no decoder) against one change each; `vs_first_recipe` is the ratio of images/s.
    Today's recipe is the row "output stride 16 + decoder".

    Every round times `steps` steps of every variant in turn (after one warm-up step each),
    so that a busy or throttled period hits all variants alike; rows report the best and
    the median round. The data pipeline is timed on its own (real CamVid when
    `$CAMVID_DIR` is set), to see what share of a step loader workers could hide.
    """
    import copy

    from seglib.data import pick_datasets, train_transform
    from seglib.engine import segmentation_loss
    from seglib.engine.config import RECIPES
    from seglib.models import CCNet

    rec = RECIPES["camvid-cpu"]
    (h, w), batch = rec["crop"], rec["batch_size"]

    def seeded(**kwargs) -> CCNet:  # the same initial weights for every variant
        torch.manual_seed(0)
        return CCNet(11, rec["backbone"], **kwargs)

    os8, os16 = seeded(output_stride=8), seeded(output_stride=16)
    os8_decoder = seeded(output_stride=8, decoder=True)
    os16_decoder = seeded(output_stride=16, decoder=True)
    cl = copy.deepcopy(os8).to(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    variants = {  # name -> (net, batch, threads, channels_last)
        f"first recipe: OS 8, batch {batch}, {threads} threads, NCHW": (os8, batch, threads, False),
        "output stride 16": (os16, batch, threads, False),
        "stride-4 decoder": (os8_decoder, batch, threads, False),
        "output stride 16 + decoder (the recipe)": (os16_decoder, batch, threads, False),
        f"batch {2 * batch}": (os8, 2 * batch, threads, False),
        "1 thread": (os8, batch, 1, False),
        "channels_last": (cl, batch, threads, True),
    }
    nets = (os8, os16, os8_decoder, os16_decoder, cl)
    opts = {id(n): torch.optim.SGD(n.parameters(), lr=1e-3, momentum=0.9) for n in nets}

    def step(net, X, Y) -> None:
        loss = segmentation_loss(net(X), Y)
        opts[id(net)].zero_grad(set_to_none=True)
        loss.backward()
        opts[id(net)].step()

    def batch_of(n: int, channels_last: bool):
        X = torch.randn(n, 3, h, w)
        if channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        return X, torch.randint(0, 11, (n, h, w))

    def run(net, n: int, t: int, c: bool):
        X, Y = batch_of(n, c)

        def one() -> None:
            torch.set_num_threads(t)
            step(net.train(), X, Y)

        return one

    times = interleaved_rates({k: run(*v) for k, v in variants.items()},
                              {k: v[1] for k, v in variants.items()}, rounds, steps)
    torch.set_num_threads(threads)
    base = max(next(iter(times.values())))
    rows = [{"variant": k, "images_per_s_best": max(v), "images_per_s_median":
             sorted(v)[len(v) // 2], "vs_first_recipe": max(v) / base, "rounds": rounds,
             "steps": steps} for k, v in times.items()]
    # the data pipeline alone: decode + augment + collate, in this process (workers=0)
    data = pick_datasets(source="auto", crop=(h, w), verbose=False)
    if data.name == "camvid":
        data.train.transform = train_transform(crop=(h, w), scale=rec["scale"])
    loader = torch.utils.data.DataLoader(data.train, batch_size=batch, shuffle=True)
    it, start, n_img = iter(loader), time.perf_counter(), 0
    for _ in range(4):
        n_img += len(next(it)[0])
    rate = n_img / (time.perf_counter() - start)
    rows.append({"variant": f"data pipeline only ({data.name}, workers=0)",
                 "images_per_s_best": rate, "images_per_s_median": rate,
                 "vs_first_recipe": rate / base, "rounds": 1, "steps": 4})
    return rows


def cpu_models_ab(rounds: int, steps: int) -> list[dict]:
    """Images/s of the ablation's four models at the `camvid-cpu` recipe's step, interleaved.

    The training runs of `benchmarks/camvid_cpu.py` are timed by the runs themselves,
    on whatever the machine was doing then (two runs side by side, one core each, say);
    this measures the models against each other in one process, round after round, so
    that the ratios are fair: CCNet R = 0, 1, 2 and RefineNet at 128 and 256 features
    (channels_last, as `camvid_cpu.py` trains them; 128 also in NCHW, to show what
    channels_last buys its 3x3 convolutions), ResNet-18, batch 8 of 180x240 crops,
    forward + loss (CCNet: main + 0.4 aux) + backward + SGD step.
    """
    from seglib.engine import segmentation_loss
    from seglib.engine.config import RECIPES
    from seglib.models import build_model

    rec = RECIPES["camvid-cpu"]
    (h, w), batch = rec["crop"], rec["batch_size"]
    nets, channels_last = {}, {"refinenet-f128": True, "refinenet": True}
    for name, model, recurrence, features in [
        ("ccnet-r2", "ccnet", 2, 256), ("ccnet-r1", "ccnet", 1, 256),
        ("ccnet-r0", "ccnet", 0, 256), ("refinenet-f128", "refinenet", 2, 128),
        ("refinenet-f128, NCHW", "refinenet", 2, 128), ("refinenet", "refinenet", 2, 256),
    ]:
        torch.manual_seed(0)
        net = build_model(model, 11, rec["backbone"], recurrence=recurrence, features=features)
        if channels_last.get(name):  # as the runs train them (--channels-last)
            net = net.to(memory_format=torch.channels_last)
        nets[name] = net.train()
    opts = {k: torch.optim.SGD(n.parameters(), lr=1e-3, momentum=0.9) for k, n in nets.items()}
    X, Y = torch.randn(batch, 3, h, w), torch.randint(0, 11, (batch, h, w))
    X_cl = X.contiguous(memory_format=torch.channels_last)

    def step(name: str) -> None:
        loss = segmentation_loss(nets[name](X_cl if channels_last.get(name) else X), Y)
        opts[name].zero_grad(set_to_none=True)
        loss.backward()
        opts[name].step()

    times = interleaved_rates({k: (lambda k=k: step(k)) for k in nets},
                              dict.fromkeys(nets, batch), rounds, steps)
    base = max(times["ccnet-r2"])
    return [{"model": k, "params_m": sum(p.numel() for p in nets[k].parameters()) / 1e6,
             "images_per_s_best": max(v), "images_per_s_median": sorted(v)[len(v) // 2],
             "vs_ccnet_r2": max(v) / base, "threads": torch.get_num_threads(),
             "rounds": rounds, "steps": steps} for k, v in times.items()]


def plot(df, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r.model}\n{r.backbone}" + (f"\n{r.amp},{'CL' if r.channels_last else 'NCHW'}"
              if r.device.startswith("cuda") else "") for r in df.itertuples()]
    fig, axes = plt.subplots(1, 2, figsize=(max(7, 1.3 * len(df)), 3.2))
    axes[0].bar(labels, df["images_per_s"], color="tab:blue")
    axes[0].set_ylabel("training images / s")
    axes[1].bar(labels, df["peak_mb"], color="tab:orange")
    axes[1].set_ylabel(f"peak memory, MB ({df['memory'].iloc[0]})")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"training step, batch {df['batch'].iloc[0]}, {df['size'].iloc[0]}, "
                 f"{df['device'].iloc[0]} ({df['threads'].iloc[0]} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--models", nargs="+", default=["ccnet", "refinenet"])
    p.add_argument("--backbones", nargs="+", default=["resnet18", "resnet50"])
    p.add_argument("--iters", type=int, default=None, help="timed steps (CPU 3, CUDA 20)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--size", default="360x480")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--case", default=None, help=argparse.SUPPRESS)  # child process mode
    p.add_argument("--cpu-recipe", action="store_true",
                   help="interleaved A/B of the camvid-cpu recipe's step (CPU)")
    p.add_argument("--cpu-models", action="store_true",
                   help="interleaved images/s of CCNet R=0,1,2 and RefineNet (CPU)")
    p.add_argument("--rounds", type=int, default=5, help="--cpu-*: interleaved rounds")
    args = p.parse_args(argv)
    if args.cpu_recipe or args.cpu_models:
        import pandas as pd

        ab, name = ((cpu_recipe_ab, "throughput_cpu_recipe.csv") if args.cpu_recipe
                    else (cpu_models_ab, "throughput_cpu_models.csv"))
        df = pd.DataFrame(ab(args.rounds, args.iters or 2))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / name, index=False, float_format="%.3f")
        print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        print(f"wrote {out / name}")
        return
    size = tuple(int(v) for v in args.size.split("x"))
    cuda = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    iters = args.iters or (20 if cuda else 3)
    if args.case:  # run one case, print JSON for the parent
        model, backbone, amp, cl = args.case.split(",")
        res = run_case(model, backbone, amp, cl == "1", iters, args.warmup,
                       args.device, size, args.batch)
        print("RESULT " + json.dumps(res))
        return

    import pandas as pd

    variants = [("off", "0"), ("auto", "0"), ("off", "1"), ("auto", "1")] if cuda else [
        ("off", "0")]
    rows = []
    for model in args.models:
        for backbone in args.backbones:
            for amp, cl in variants:
                cmd = [sys.executable, __file__, "--case", f"{model},{backbone},{amp},{cl}",
                       "--iters", str(iters), "--warmup", str(args.warmup), "--batch",
                       str(args.batch), "--size", args.size]
                if args.device:
                    cmd += ["--device", args.device]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode or not lines:
                    print(f"{model}/{backbone} amp={amp} cl={cl} failed:\n{proc.stderr[-2000:]}")
                    continue
                rows.append(json.loads(lines[-1][7:]))
                r = rows[-1]
                print(f"{model:9s} {backbone:8s} amp={r['amp']:8s} cl={cl}: "
                      f"{r['images_per_s']:.2f} img/s, {r['peak_mb']:.0f} MB", flush=True)
    if not rows:
        sys.exit("no case succeeded")
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "throughput.csv", index=False)
    plot(df, out / "throughput.png")
    cols = ["model", "backbone", "amp", "channels_last", "device", "threads", "images_per_s",
            "s_per_iter", "peak_mb", "params_m"]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {out / 'throughput.csv'} and {out / 'throughput.png'}")


if __name__ == "__main__":
    main()
