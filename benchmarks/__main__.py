"""Run every benchmarks/*.py module's `main()` (or the ones named) and print their tables."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

import benchmarks


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(benchmarks.__file__).parent)])
                  if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = [a for a in argv if not a.startswith("-")] or discover()
    unknown = [n for n in names if n not in discover()]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(discover())}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n=== benchmarks.{name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f"benchmarks.{name}")
            rc = mod.main([])
        except Exception:  # one broken benchmark must not hide the others' tables
            traceback.print_exc()
            rc = 1
        print(f"--- {name}: {'ok' if not rc else 'FAILED'} in {time.perf_counter() - t0:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
