"""`python -m benchmarks run|report`: see --help."""

import argparse
import json
import os
import sys

from benchmarks import grid as grids

RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")


def main(argv=None):
    args = _parser().parse_args(argv)
    return args.command(args)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    commands = parser.add_subparsers(required=True)

    run = commands.add_parser(
        "run", help="benchmark the current KERAS_BACKEND into a JSON file"
    )
    size = run.add_mutually_exclusive_group()
    size.add_argument(
        "--quick", action="store_true", help="small grid, under 2 minutes"
    )
    size.add_argument(
        "--tiny", action="store_true", help="one case each, for tests"
    )
    run.add_argument(
        "--out",
        help="JSON output path (default for the full grid: "
        "benchmarks/results/<backend>.json; otherwise none)",
    )
    run.add_argument(
        "--sections",
        default="memory,forward,training",
        help="comma-separated subset of memory,forward,training",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=1,
        help="backend intra-op threads (default 1, steadier on a shared "
        "machine; 0 keeps the backend's default)",
    )
    run.set_defaults(command=_run)

    report = commands.add_parser(
        "report", help="write REPORT.md (and the plot) from results JSON"
    )
    report.add_argument("--results-dir", default=RESULTS_DIR)
    report.add_argument(
        "--plot", action="store_true", help="also draw a PNG (matplotlib)"
    )
    report.set_defaults(command=_report)
    return parser


def _run(args):
    from benchmarks import backends
    from benchmarks import report
    from benchmarks import runner

    grid = (
        grids.TINY if args.tiny else grids.QUICK if args.quick else grids.FULL
    )
    sections = tuple(s for s in args.sections.split(",") if s)
    if args.threads:
        backends.limit_threads(args.threads)
    results = runner.run(grid, sections)
    results["settings"]["threads"] = args.threads or "backend default"
    out = args.out
    if out is None and grid is grids.FULL:
        out = os.path.join(RESULTS_DIR, f"{backends.name()}.json")
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as file:
            json.dump(results, file, indent=1)
            file.write("\n")
        print(f"wrote {out}", file=sys.stderr)
    print(report.render([results]))
    return 0


def _report(args):
    from benchmarks import report

    results = report.load(args.results_dir)
    if not results:
        print(f"no results JSON in {args.results_dir}", file=sys.stderr)
        return 1
    path = os.path.join(args.results_dir, "REPORT.md")
    plot_name = None
    if args.plot:
        from benchmarks import plot

        plot_name = plot.draw(results, args.results_dir)
    findings = report.findings(args.results_dir)
    with open(path, "w") as file:
        file.write(report.render(results, plot_name, findings))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
