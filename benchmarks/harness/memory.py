"""Peak memory of one case, each case in a child process of its own.

Importing TensorFlow, JAX or PyTorch takes 5-15 s on a shared machine, too
long to pay per case, so a "zygote" process (`python -m
benchmarks.harness.memory`) imports Keras and the backend once, then forks
one child per case before any backend work has run: a process forked after
a backend started its thread pools, or CUDA, can deadlock. Each child reads
its own peak RSS (`getrusage`) and device memory. `inline=True` runs the
cases in this process instead, for the tests: the peaks are then this
process's, not the case's.
"""

import importlib
import json
import os
import resource
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


def peak_rss_mb():
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 2**20 if sys.platform == "darwin" else 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def current_rss_mb():
    """This process's resident memory now (Linux; None elsewhere)."""
    return _status_mb("VmRSS")


def reset_peak_rss():
    """Restarts this process's peak RSS at its current RSS (Linux), so a
    forked child's peak is its own, not the zygote's; False where the
    kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
    except OSError:
        return False
    return True


def _status_mb(field):
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return None


def isolated(target, specs, inline=False):
    """`target(spec)` ('module:function', returning a JSON-able dict) for
    each spec, each in a fresh forked child; returns their results, or
    raises RuntimeError naming every case that failed."""
    if inline:
        return [_call(target, spec) for spec in specs]
    found = _run_children(target, specs)
    errors = [result["error"] for result in found if "error" in result]
    if errors:
        raise RuntimeError(f"{target}: cases failed: {errors}")
    return found


def _run_children(target, specs):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_ROOT, env.get("PYTHONPATH")) if p
    )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness.memory", target],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        cwd=_ROOT,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory zygote failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line]


def _call(target, spec):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)(spec)


def _forked(target, spec):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            message = json.dumps(_call(target, spec))
        except BaseException as error:  # reported to the parent, not lost
            message = json.dumps({**spec, "error": repr(error)})
            code = 1
        with os.fdopen(write_end, "w") as pipe:
            pipe.write(message)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    return message or json.dumps({**spec, "error": f"exit status {status}"})


if __name__ == "__main__":
    import keras  # noqa: F401  (imported once, before forking)

    from benchmarks.harness import backends

    # The parent's thread limit (before any backend op: children inherit it).
    if os.environ.get(backends.THREADS_ENV):
        backends.limit_threads(int(os.environ[backends.THREADS_ENV]))
    target = sys.argv[1]
    importlib.import_module(target.split(":")[0])
    for spec in json.load(sys.stdin):
        print(_forked(target, spec), flush=True)
