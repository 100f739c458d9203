"""`python -m benchmarks run|report`: see --help."""

import argparse
import os
import sys
import time

from benchmarks import suites

RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")
HEADLINE = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "docs", "img", "headline.png"
)


def main(argv=None):
    args = _parser().parse_args(argv)
    return args.command(args)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    commands = parser.add_subparsers(required=True)
    run = commands.add_parser(
        "run", help="run suites on the current KERAS_BACKEND"
    )
    run.add_argument(
        "--suites",
        default=",".join(suites.SUITES),
        help=f"comma-separated subset of {','.join(suites.SUITES)}",
    )
    size = run.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small grids")
    size.add_argument(
        "--tiny", action="store_true", help="one case each, for tests"
    )
    run.add_argument(
        "--out",
        help="results JSON (default: benchmarks/results/<backend>[-gpu]"
        "[-quick].json; none for --tiny)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=1,
        help="backend intra-op CPU threads (default 1, steadier on a shared "
        "machine; 0 keeps the backend's default)",
    )
    run.set_defaults(command=_run)
    report = commands.add_parser(
        "report",
        help="write REPORT.md and its chart (speed_ratios.png) from the "
        "results JSON files, and the README's picture (needs matplotlib)",
    )
    report.add_argument("--results-dir", default=RESULTS_DIR)
    report.add_argument(
        "--headline",
        help="where the README's picture goes (default: docs/img/"
        "headline.png for the default --results-dir, else headline.png "
        "in --results-dir)",
    )
    report.set_defaults(command=_report)
    return parser


def _run(args):
    from benchmarks.harness import backends
    from benchmarks.harness import machine
    from benchmarks.harness import records
    from benchmarks.harness import report

    if args.threads:
        backends.limit_threads(args.threads)
    grid = "tiny" if args.tiny else "quick" if args.quick else "full"
    names = [n for n in suites.SUITES if n in args.suites.split(",")]
    unknown = set(args.suites.split(",")) - set(names)
    if unknown:
        print(f"unknown suites {sorted(unknown)}", file=sys.stderr)
        return 2
    doc = {
        "backend": backends.name(),
        "grid": grid,
        "machine": machine.describe(),
        "settings": {
            "threads": args.threads or "backend default",
            "compiler": backends.COMPILER[backends.name()],
            "native": backends.NATIVE_LOOKUP[backends.name()],
        },
        "suites": {},
    }
    found = []
    for name in names:
        suite = suites.load(name)
        if backends.name() not in getattr(suite, "BACKENDS", [doc["backend"]]):
            _log(f"{name}: skipped, runs on {suite.BACKENDS} only")
            continue
        started = time.perf_counter()
        found += records.add_ratios(suite.run(grid, _log), suite.BASELINE)
        doc["suites"][name] = suites.description(suite)
        doc["settings"][f"{name} wall s"] = round(time.perf_counter() - started)
    out = args.out
    if out is None and grid != "tiny":
        gpu = "-gpu" if backends.on_gpu() else ""
        quick = "-quick" if grid == "quick" else ""
        name = f"{backends.name()}{gpu}{quick}.json"
        out = os.path.join(RESULTS_DIR, name)
    records.check(found)
    if out:
        records.write(out, found, **doc)
        _log(f"wrote {out}")
    print(report.render([{**doc, "file": out or "-", "records": found}]))
    return 0


def _report(args):
    from benchmarks.harness import plots
    from benchmarks.harness import records
    from benchmarks.harness import report

    docs = records.load(args.results_dir)
    if not docs:
        _log(f"no results JSON in {args.results_dir}")
        return 1
    headline = args.headline
    if headline is None:
        default = os.path.abspath(args.results_dir) == os.path.abspath(
            RESULTS_DIR
        )
        headline = HEADLINE if default else None
        headline = headline or os.path.join(args.results_dir, "headline.png")
    pictures = plots.write(docs, args.results_dir, headline, _log)
    chart = os.path.join(args.results_dir, "speed_ratios.png")
    path = os.path.join(args.results_dir, "REPORT.md")
    with open(path, "w") as file:
        file.write(report.render(docs, chart=chart in pictures))
    for written in [*pictures, path]:
        _log(f"wrote {written}")
    return 0


def _log(message):
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
