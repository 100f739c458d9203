"""What the numbers were measured on: machine, load and copy bandwidth."""

import os
import platform
import subprocess
import time

import numpy as np

from benchmarks import timing


def describe():
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def source_revision():
    """The git commit the measured keras_embed came from, if known."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "keras_embed"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" (keras_embed/ modified)" if changed else "")


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_gib():
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None
    return round(pages / 2**30, 1)


def copy_bandwidth(warmup, repeats, nbytes):
    """NumPy array copy, in GB/s of bytes written (as the lookups' GB/s).

    A lookup writes its output once and reads as many bytes of rows, the
    same traffic as a copy of an array the size of its output.
    """
    source = np.random.default_rng(0).random(nbytes // 8)
    target = np.empty_like(source)
    stats = timing.time_round_robin(
        {"copy": lambda: np.copyto(target, source)},
        sync=lambda _: None,
        warmup=warmup,
        repeats=repeats,
        min_repeat_s=0.0,
    )["copy"]
    stats["bytes"] = source.nbytes
    stats["gb_per_s"] = source.nbytes / stats["median_s"] / 1e9
    return stats
