"""Peak resident memory per case, each case in a child process of its own.

Importing TensorFlow, JAX or PyTorch takes 5-15 s on a shared machine, too
long to pay once per case, so a "zygote" process imports Keras and the
backend once and then forks one child per case before any backend work
has run (see memory_zygote.py). Each child reads `getrusage` itself.
`isolation="inline"` runs the cases in this process instead, for the test
suite: its peaks are then this process's, not the case's.
"""

import json
import os
import subprocess
import sys

from benchmarks import memory_cases

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(grid, log, isolation="fork"):
    specs = memory_cases.specs(grid)
    log(f"memory: {len(specs)} cases, isolation={isolation}")
    if isolation == "inline":
        rows = [memory_cases.run(spec) for spec in specs]
    else:
        rows = _run_in_zygote(specs)
    return [{**row, "isolation": isolation} for row in rows]


def _run_in_zygote(specs):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (_REPO_ROOT, env.get("PYTHONPATH")) if p
    )
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory_zygote"],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        cwd=_REPO_ROOT,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"memory zygote failed ({result.returncode}):\n{result.stderr}"
        )
    return [json.loads(line) for line in result.stdout.splitlines() if line]
