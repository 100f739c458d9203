"""What every suite shares: the backend, the machine, timing, memory, the
record schema and the report. Suites live in `benchmarks/suites/`."""
