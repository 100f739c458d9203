"""What a result ran on: CPU, memory, GPU, load, library versions, commit."""

import os
import platform
import subprocess
import time

from benchmarks.harness import backends

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def describe():
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "device": backends.device(),
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": {**backends.versions(), "keras_embed": _revision()},
    }


def _revision():
    """The git commit the measured keras_embed came from, if known."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=_ROOT, capture_output=True, text=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--", "keras_embed")
    except OSError:
        return None
    return (commit + (" (keras_embed/ modified)" if changed else "")) or None


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
