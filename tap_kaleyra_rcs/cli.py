"""The command line: the SDK's CLI, with anticipated failures as one-line errors.

Every failure the tap foresees (refused requests, malformed answers, exhausted
retries, signals) ends with a single ``tap-kaleyra-rcs:`` line on stderr and a
non-zero exit status instead of a Python traceback; a traceback is added only
at the DEBUG log level. Bad settings are reported before any request: one
ERROR line per setting, then the SDK's "Config validation failed", then the
same single ``tap-kaleyra-rcs: error:`` line, exit status 1.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback

from tap_kaleyra_rcs.startup import (
    CollectorPaused,
    imported_on_first_use,
    large_blocks_from_the_system,
)

SDK_IMPORTS_ON_FIRST_USE = (
    "backoff",  # RESTStream's retries: the tap's client retries on its own
    "joblib",  # a target draining its sinks in parallel: the tap is no target
    "upath",  # BATCH files (and fsspec with it): only with batch_config
)
"""What the SDK imports for features a tap run may not use (see imported_on_first_use)."""

large_blocks_from_the_system()  # before the imports: see its docstring
# The SDK's import, without the collector's passes and the modules above.
with CollectorPaused(), imported_on_first_use(*SDK_IMPORTS_ON_FIRST_USE):
    from tap_kaleyra_rcs.arguments import first_problem
    from tap_kaleyra_rcs.errors import KaleyraError, OutputClosed
    from tap_kaleyra_rcs.tap import Interrupted, TapKaleyraRcs

EXIT_FAILED = 1


def _fail(message: str, status: int) -> int:
    if TapKaleyraRcs.logger.isEnabledFor(logging.DEBUG):
        traceback.print_exc()
    sys.stderr.write(f"{TapKaleyraRcs.name}: {message}\n")
    sys.stderr.flush()
    return status


def main() -> int:
    """Run the tap; return the process exit status."""
    problem = first_problem(sys.argv[1:])
    if problem:
        sys.stderr.write(f"{TapKaleyraRcs.name}: error: {problem}\n")
        return EXIT_FAILED
    try:
        TapKaleyraRcs.cli()  # exits via SystemExit on success
    except OutputClosed as exc:
        # Nothing more can reach the reader: let the exit's flush go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _fail(f"error: {exc}", EXIT_FAILED)
    except KaleyraError as exc:
        return _fail(f"error: {exc}", EXIT_FAILED)
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        return _fail(
            f"stopped by {name}; the run is incomplete, so no ACTIVATE_VERSION was "
            "sent and no tester will be marked deleted",
            128 + exc.signum,
        )
    return 0
