"""Criss-cross vs dense attention: time, memory, saved-for-backward bytes and FLOPs.

Compares, at C = 512 and batch 2 over feature sizes 16x16 .. 97x97 (97x97 is a
769x769 crop at output stride 8), four blocks with the same 1x1 q/k/v convolutions,
zero-free gamma and residual:

- `lean`: seglib's `CrissCrossAttention` (default memory-lean autograd Function),
- `plain`: the same module with `lean = False` (einsum + one softmax, plain autograd),
- `baseline`: the source article's bmm formulation, re-written here from its
  description (separate H and W bmm branches, -inf on the diagonal of the H branch,
  concatenate, softmax, split, bmm back),
- `dense`: `seglib.models.attention.dense_masked_attention` through the full (HW)x(HW) matrix.

Time: all methods of one size run in this process, interleaved (round r runs every
method once), so slow drift of a shared machine hits them alike; the ratios use the
best of the rounds. Memory: each case runs in a fresh subprocess, so that on CPU the
peak RSS growth of one forward+backward belongs to that case alone, twice:

- `peak_mb` (the goal's measure): with glibc's `MALLOC_MMAP_THRESHOLD_` fixed at
  64 KiB, every tensor buffer is its own mapping, returned to the OS when freed, so
  the RSS peak is the peak of live tensor bytes (what `torch.cuda.max_memory_allocated`
  reports on a GPU, where the script uses it instead);
- `rss_mb`: the default allocator, which keeps freed blocks in its heap for reuse, so
  this peak also counts memory the allocator holds but no tensor uses.

Usage:

    python benchmarks/attention.py            # full run, writes benchmarks/results/
    python benchmarks/attention.py --quick    # 16x16 and 33x33 only, fewer repeats
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _memory import reset_peak_rss, status_kb
from torch import Tensor, nn

from seglib.course.saved_bytes import saved_for_backward_bytes
from seglib.models.attention import CrissCrossAttention, criss_cross_mask, dense_masked_attention

__all__ = ["ArticleBmmAttention", "DenseAttention", "build", "analytic_gflop"]

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ["lean", "plain", "baseline", "dense"]


class ArticleBmmAttention(CrissCrossAttention):
    """The source article's formulation, in our own code: bmm per branch, -inf diagonal."""

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        # column branch: B*W sequences of H pixels; row branch: B*H sequences of W pixels
        q_h = q.permute(0, 3, 2, 1).contiguous().view(B * W, H, -1)  # (B*W, H, C')
        k_h = k.permute(0, 3, 1, 2).contiguous().view(B * W, -1, H)  # (B*W, C', H)
        q_w = q.permute(0, 2, 3, 1).contiguous().view(B * H, W, -1)  # (B*H, W, C')
        k_w = k.permute(0, 2, 1, 3).contiguous().view(B * H, -1, W)  # (B*H, C', W)
        v_h = v.permute(0, 3, 1, 2).contiguous().view(B * W, -1, H)  # (B*W, C, H)
        v_w = v.permute(0, 2, 1, 3).contiguous().view(B * H, -1, W)  # (B*H, C, W)
        # -inf on the diagonal of the H branch so the centre is counted once
        neg_diag = torch.zeros(H, H, device=x.device, dtype=q.dtype)
        neg_diag.fill_diagonal_(float("-inf"))
        e_h = (torch.bmm(q_h, k_h) + neg_diag).view(B, W, H, H).permute(0, 2, 1, 3)  # (B,H,W,H)
        e_w = torch.bmm(q_w, k_w).view(B, H, W, W)  # (B, H, W, W)
        a = torch.softmax(torch.cat([e_h, e_w], dim=3), dim=3)  # (B, H, W, H+W)
        a_h = a[..., :H].permute(0, 2, 1, 3).contiguous().view(B * W, H, H)  # (B*W, H, H)
        a_w = a[..., H:].contiguous().view(B * H, W, W)  # (B*H, W, W)
        out_h = torch.bmm(v_h, a_h.transpose(1, 2)).view(B, W, C, H).permute(0, 2, 3, 1)
        out_w = torch.bmm(v_w, a_w.transpose(1, 2)).view(B, H, C, W).permute(0, 2, 1, 3)
        return self.gamma * (out_h + out_w) + x  # (B, C, H, W)


class DenseAttention(CrissCrossAttention):
    """Same convs and gate, attention through the full (HW)x(HW) matrix with the mask."""

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        mask = criss_cross_mask(H, W, device=x.device)  # (HW, HW)
        return self.gamma * dense_masked_attention(q, k, v, mask) + x


def build(method: str, channels: int) -> nn.Module:
    """One of METHODS as a module with C = `channels` and a non-zero gamma."""
    cls = {"baseline": ArticleBmmAttention, "dense": DenseAttention}.get(
        method, CrissCrossAttention
    )
    net = cls(channels)
    net.lean = method != "plain"
    with torch.no_grad():
        net.gamma.fill_(0.5)  # non-zero, as after some training
    return net


def analytic_gflop(method: str, B: int, C: int, H: int, W: int) -> float:
    """Forward + backward FLOPs (a multiply-add = 2) of convs and attention."""
    c, n = C // 8, H * W
    convs = 3 * 2 * B * n * C * (2 * c + C)  # forward, input grad, weight grad
    span = n if method == "dense" else H + W  # keys per pixel
    # forward: energies (C') + weighted sum (C); backward: dA, dV (C) and dQ, dK (C')
    attn = 2 * B * n * span * (3 * C + 3 * c)
    if method == "lean":
        attn += 2 * B * n * span * c  # energies recomputed in backward
    return (convs + attn) / 1e9


def _layout(net: nn.Module, x: Tensor) -> torch.memory_format:
    """Memory format of the block's output (that of the gradient a network feeds back)."""
    with torch.no_grad():
        y = net(x[:, :, :2, :3].contiguous())
    channels_last = y.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


def _setup(method: str, size: int, channels: int, batch: int, device: torch.device):
    """Module, input and upstream gradient of one case, and its forward + backward step."""
    torch.manual_seed(0)
    compiled = method.endswith("+compile")
    net = build(method.removesuffix("+compile"), channels).to(device)
    if compiled:
        net = torch.compile(net)
    x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
    # the upstream gradient dL/dy, in y's memory layout (as a network's next layer gives it)
    grad = torch.randn(x.shape, device=device).contiguous(memory_format=_layout(net, x))

    def step() -> None:
        net.zero_grad(set_to_none=True)
        x.grad = None
        net(x).backward(grad)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return net, x, step


def measure_memory(method: str, size: int, channels: int, batch: int,
                   device: torch.device) -> dict:
    """Peak memory growth of one forward + backward, and bytes saved for backward."""
    net, x, step = _setup(method, size, channels, batch, device)
    # initialise the libraries (thread pools, oneDNN/MKL kernels) on a tiny input first,
    # so that the peak below is that of the case, not of one-time set-up
    tiny = torch.randn(batch, channels, 4, 4, device=device, requires_grad=True)
    net(tiny).backward(torch.ones_like(tiny))
    del tiny
    net.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        try:  # Linux /proc only; elsewhere no CPU memory figure
            before = status_kb("VmRSS")
            reset_peak_rss()
        except OSError:
            step()
            peak_mb = float("nan")
        else:
            step()
            peak_mb = (status_kb("VmHWM") - before) / 1024
    return {"peak_mb": peak_mb, "saved_mb": saved_for_backward_bytes(net, x) / 2**20}


def time_methods(methods: list[str], size: int, channels: int, batch: int, repeats: int,
                 device: torch.device) -> dict[str, list[float]]:
    """Forward + backward seconds of every method, `repeats` interleaved rounds."""
    steps = {}
    for method in methods:
        *_, step = _setup(method, size, channels, batch, device)
        step()  # warm-up (for +compile: compiles the forward and the backward)
        steps[method] = step
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[method].append(time.perf_counter() - t0)
    return times


def _check_methods_agree(device: torch.device) -> None:
    """All four blocks compute the same function (guards the baseline's correctness)."""
    x = torch.randn(2, 32, 6, 9, device=device, dtype=torch.float64)
    torch.manual_seed(0)
    ref = build("dense", 32).to(device).double()(x)
    for method in METHODS[:-1]:
        torch.manual_seed(0)
        net = build(method, 32).to(device).double()
        torch.testing.assert_close(net(x), ref, atol=1e-10, rtol=0)


def _subprocess_memory(method: str, size: int, args: argparse.Namespace,
                       live: bool) -> dict:
    """`measure_memory` in a fresh process; `live`: allocator set to return freed blocks."""
    cmd = [sys.executable, __file__, "--case", method, str(size), "--channels",
           str(args.channels), "--batch", str(args.batch)]
    env = dict(os.environ)
    if live:
        env["MALLOC_MMAP_THRESHOLD_"] = str(64 * 1024)  # glibc; ignored elsewhere
    else:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(size: int, methods: list[str], args: argparse.Namespace,
             device: torch.device) -> list[dict]:
    """One row per method at `size`: times (interleaved, this process) and memory."""
    times = time_methods(methods, size, args.channels, args.batch, args.repeats, device)
    rows = []
    for method in methods:
        row = {"method": method, "H": size, "W": size, "B": args.batch, "C": args.channels,
               "time_ms": 1000 * statistics.median(times[method]),
               "best_ms": 1000 * min(times[method])}
        if method.endswith("+compile"):  # the compiler's own memory is not comparable
            row.update(peak_mb=float("nan"), rss_mb=float("nan"), saved_mb=float("nan"))
        else:
            live = _subprocess_memory(method, size, args, live=True)
            rss = _subprocess_memory(method, size, args, live=False)
            row.update(peak_mb=live["peak_mb"], rss_mb=rss["peak_mb"],
                       saved_mb=live["saved_mb"])
        row.update(gflop=analytic_gflop(method.removesuffix("+compile"), args.batch,
                                        args.channels, size, size),
                   repeats=args.repeats, device=device.type, threads=torch.get_num_threads())
        rows.append(row)
        print(f"  {method} {size}x{size}: {row['best_ms']:.0f} ms, "
              f"{row['peak_mb']:.0f} MB", file=sys.stderr)
    return rows


def _ratio(a: float, b: float) -> float:
    """a / b, or NaN when b is 0: on a tiny map a peak can read 0 MB (below the RSS
    counter's resolution), and a ratio to it means nothing."""
    return a / b if b else float("nan")


def _table(rows: list[dict]) -> list[dict]:
    """Add ratio columns against the baseline and the dense block of the same size."""
    by = {(r["method"], r["H"]): r for r in rows}
    for r in rows:
        base, dense = by.get(("baseline", r["H"])), by.get(("dense", r["H"]))
        for key in ("time_ms", "best_ms", "peak_mb", "rss_mb", "saved_mb"):
            short = key.split("_")[0]
            r[f"{short}_vs_baseline"] = _ratio(r[key], base[key]) if base else float("nan")
            r[f"dense_over_{short}"] = _ratio(dense[key], r[key]) if dense else float("nan")
    return rows


def _print(rows: list[dict]) -> None:
    head = (f"{'method':<14}{'size':>7}{'best ms':>9}{'med ms':>9}{'peak MB':>9}{'rss MB':>8}"
            f"{'saved MB':>9}{'GFLOP':>7}{'t/base':>7}{'m/base':>7}{'r/base':>7}"
            f"{'s/base':>7}{'dense/t':>8}{'dense/m':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['method']:<14}{r['H']:>4}x{r['W']:<2}{r['best_ms']:>9.1f}{r['time_ms']:>9.1f}"
              f"{r['peak_mb']:>9.1f}{r['rss_mb']:>8.1f}{r['saved_mb']:>9.1f}{r['gflop']:>7.2f}"
              f"{r['best_vs_baseline']:>7.2f}{r['peak_vs_baseline']:>7.2f}"
              f"{r['rss_vs_baseline']:>7.2f}{r['saved_vs_baseline']:>7.2f}"
              f"{r['dense_over_best']:>8.1f}{r['dense_over_peak']:>8.1f}")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3))
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        px = [r["H"] * r["W"] for r in rs]
        axes[0].loglog(px, [r["best_ms"] for r in rs], "o-", label=method)
        if all(r["peak_mb"] == r["peak_mb"] for r in rs):  # skip NaN (compiled rows)
            axes[1].loglog(px, [max(r["peak_mb"], 0.1) for r in rs], "o-", label=method)
    axes[0].set(xlabel="feature pixels H*W", ylabel="fwd+bwd time, best (ms)")
    axes[1].set(xlabel="feature pixels H*W", ylabel="peak live memory (MB)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"criss-cross vs dense attention, C={rows[0]['C']}, B={rows[0]['B']}, "
                 f"{rows[0]['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="16x16 and 33x33, 3 repeats")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 33, 65, 97])
    p.add_argument("--channels", type=int, default=512)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7, help="timed rounds after a warm-up")
    p.add_argument("--compile", action="store_true", help="add a torch.compile'd lean row")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--case", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.case:
        method, size = args.case[0], int(args.case[1])
        print(json.dumps(measure_memory(method, size, args.channels, args.batch, device)))
        return
    if args.quick:
        args.sizes, args.repeats = [16, 33], 3
    _check_methods_agree(device)
    methods = METHODS + (["lean+compile"] if args.compile else [])
    rows = [row for size in args.sizes for row in run_size(size, methods, args, device)]
    rows = _table(rows)
    _print(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "attention_quick" if args.quick else "attention"
    with open(args.out / f"{stem}.csv", "w") as f:
        keys = list(rows[0])
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k])
                             for k in keys) + "\n")
    _plot(rows, args.out / f"{stem}.png")
    print(f"wrote {args.out / stem}.csv and .png ({device.type}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
