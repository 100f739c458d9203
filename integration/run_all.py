"""Runs every script in integration/ on the current backend, one process each.

A script passes by exiting 0, is skipped by exiting 77 (SKIPPED, after
printing why), and fails otherwise. Prints one line per script and a summary
"N passed, N skipped, N failed"; exits non-zero if any script failed. Used by
every tox test environment and by the README's `tox -m examples`:

    KERAS_BACKEND=jax python integration/run_all.py
"""

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent
SKIPPED = 77  # the exit code automake and meson use for a skipped test
DEVICES = 8

# Extra environment per script and backend. JAX reads XLA_FLAGS when it
# starts, so the 8 virtual CPU devices must be asked for before the script's
# process exists.
EXTRA_ENV = {
    ("sharded_embedding.py", "jax"): {
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}"
    },
}


def environment(script, backend):
    env = dict(os.environ)
    for key, value in EXTRA_ENV.get((script.name, backend), {}).items():
        env[key] = f"{env[key]} {value}" if env.get(key) else value
    return env


def main():
    backend = os.environ.get("KERAS_BACKEND")
    if not backend:
        print(
            "KERAS_BACKEND is not set; Keras would silently pick TensorFlow. "
            "Set it, e.g. KERAS_BACKEND=jax python integration/run_all.py"
        )
        return 2
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py")
    results = {"passed": [], "skipped": [], "failed": []}
    for script in scripts:
        print(f"--- {script.name} [{backend}]", flush=True)
        code = subprocess.run(
            [sys.executable, str(script)], env=environment(script, backend)
        ).returncode
        outcome = {0: "passed", SKIPPED: "skipped"}.get(code, "failed")
        results[outcome].append(script.name)
        print(f"--- {script.name}: {outcome} (exit code {code})", flush=True)
    print(
        f"[{backend}] {len(results['passed'])} passed, "
        f"{len(results['skipped'])} skipped, {len(results['failed'])} failed"
    )
    for outcome in ("skipped", "failed"):
        if results[outcome]:
            print(f"{outcome}: " + ", ".join(results[outcome]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
