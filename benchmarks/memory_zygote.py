"""Imports Keras and the backend once, then forks a child per memory case.

Reads a JSON list of case specs on stdin and prints one JSON result per
line. Nothing here runs a backend op before forking: a child forked after
the backend has started its thread pools could deadlock.
"""

import json
import os
import sys

from benchmarks import memory_cases


def _run_forked(spec):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            message = json.dumps(memory_cases.run(spec))
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
    if not message:
        message = json.dumps({**spec, "error": f"child exit status {status}"})
    return message


def main():
    for spec in json.load(sys.stdin):
        print(_run_forked(spec), flush=True)


if __name__ == "__main__":
    main()
