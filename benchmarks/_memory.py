"""Process memory for the benchmarks, from Linux procfs (the kernel's per-process files).

The RSS high-water mark (VmHWM) is read rather than `ru_maxrss`: after fork + exec,
`ru_maxrss` starts from the parent's peak, so a big parent would hide a smaller
child's peak. Every function raises OSError where /proc does not exist.
"""

from __future__ import annotations

from pathlib import Path

PROC_SELF = Path("/proc/self")  # procfs: this process's own view, on every Linux machine


def status_kb(field: str) -> int:
    """A memory field of /proc/self/status in kB, e.g. VmRSS (now) or VmHWM (peak)."""
    with open(PROC_SELF / "status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def reset_peak_rss() -> None:
    """Reset this process's RSS high-water mark (VmHWM) to its current RSS (Linux >= 4.0)."""
    with open(PROC_SELF / "clear_refs", "w") as f:
        f.write("5")
