"""Benchmarks: each `benchmarks/<name>.py` has a `main(argv=None)` that prints a table.

    python -m benchmarks                         # every benchmark, one after the other
    python -m benchmarks generate_throughput     # just these (module names)
    python -m benchmarks.generate_throughput --quick
"""
