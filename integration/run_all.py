"""Runs every script in integration/ on the current backend, one process each.

Exits non-zero if any script does. Used by every tox environment and by the
README's `tox -m examples`.
"""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent


def main():
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != "run_all.py")
    failures = []
    for script in scripts:
        print(f"--- {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failures.append(script.name)
    print(f"{len(scripts) - len(failures)} passed, {len(failures)} failed")
    if failures:
        print("failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
