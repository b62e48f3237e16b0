"""Run target-bigquery as installed, without its waits for BigQuery's eventual consistency.

    python without_consistency_waits.py <the loader's console script> [its arguments]

Run by the loader's own Python (tests/emulated_warehouses.py writes the wrapper
Meltano starts). After creating a table, the loader sleeps 5 s "for the sake of
GRPC's default stream", and 2.5 s more for each temporary table it merges from:
about 30 s of every run, waiting for a propagation the emulator, which answers
from one DuckDB file, never needs. Only those sleeps go: ``time.sleep`` in the
loader's ``target_bigquery.core`` returns at once; every other use of ``time``
there, every other module and every call to BigQuery stay as they are.
"""

from __future__ import annotations

import runpy
import sys
import time
import types

import target_bigquery.core


class _TimeWithoutSleep(types.ModuleType):
    """The ``time`` module, except that ``sleep`` returns at once."""

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    @staticmethod
    def sleep(_seconds: float) -> None:
        return


target_bigquery.core.time = _TimeWithoutSleep("time")  # type: ignore[assignment]

if __name__ == "__main__":
    script = sys.argv.pop(1)
    sys.argv[0] = script
    runpy.run_path(script, run_name="__main__")
