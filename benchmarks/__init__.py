"""Benchmarks for keras_embed: run with `python -m benchmarks --help`.

Scripts with a report, not timed tests: every comparison is made in one
process, side by side on the same inputs, and reported as medians and
ratios together with the machine and library versions it ran on.
"""
