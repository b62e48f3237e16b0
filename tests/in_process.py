"""The tap's command run inside the test process, as the installed command would run it.

A new interpreter costs about 0.4 s of CPU before the tap does anything (most of
it importing ``singer_sdk``); hundreds of runs of the stream's and the client's
behaviours need no process boundary. This calls the same ``tap_kaleyra_rcs.cli:main``
the ``tap-kaleyra-rcs`` console script calls, with what a process would start with
(its arguments, its environment, fresh stdout and stderr, Python's default
warning filters), turns an exception that escapes it into the traceback and exit
status 1 that Python would print, and puts back everything the run changed in
this process: the environment, logging, signal handlers, warning filters and the
exception hook. Tests of the installed command, signals and pipes still run it as
a subprocess (``run_tap(..., executable=TAP)``).
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
import traceback
import typing as t
import warnings
from contextlib import contextmanager

from tap_kaleyra_rcs import cli

COMMAND = "tap-kaleyra-rcs"
FETCH_THREADS = "kaleyra-fetch-"
"""The name the tap's worker threads start with (tap_kaleyra_rcs.prefetch); a sandbox
in the same process has threads of its own, which outlive a run."""
THREAD_GRACE_SECONDS = 60
"""How long a run's fetch threads may go on after it ends (the requests in flight
when it failed); a subprocess would have ended them by exiting."""


def run_in_process(arguments: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``tap-kaleyra-rcs ARGUMENTS`` under ``env``; its exit status, stdout and stderr."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n", write_through=True)
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n", write_through=True)
    threads_before = set(threading.enumerate())
    with _process_state(env), warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")  # what a new interpreter shows, not pytest's "error"
        sys.argv = [COMMAND, *arguments]
        sys.stdout, sys.stderr = stdout, stderr
        try:
            status = cli.main()
        except SystemExit as exc:
            status = _exit_status(exc.code, stderr)
        except BaseException:  # noqa: BLE001 - what the interpreter prints for it
            traceback.print_exc(file=stderr)
            status = 1
        finally:
            for stream in (stdout, stderr):
                stream.flush()
    for thread in set(threading.enumerate()) - threads_before:
        if thread.name.startswith(FETCH_THREADS):
            thread.join(THREAD_GRACE_SECONDS)
    return status, _text(stdout), _text(stderr)


def _exit_status(code: object, stderr: t.TextIO) -> int:
    """What ``sys.exit(code)`` makes the process exit with (text is printed, then 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1


def _text(stream: io.TextIOWrapper) -> str:
    buffer = t.cast("io.BytesIO", stream.buffer)
    return buffer.getvalue().decode("utf-8", errors="replace")


@contextmanager
def _process_state(env: dict[str, str]) -> t.Iterator[None]:
    """Run with ``env`` as the environment; afterwards put back what a run may change."""
    saved_env = dict(os.environ)
    saved_argv, saved_out, saved_err = sys.argv, sys.stdout, sys.stderr
    saved_hook = sys.excepthook
    saved_signals = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    saved_logging = _logging_state()
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv, sys.stdout, sys.stderr = saved_argv, saved_out, saved_err
        sys.excepthook = saved_hook
        for number, handler in saved_signals.items():
            signal.signal(number, handler)
        _restore_logging(saved_logging)


LoggerState = tuple[int, bool, bool, list[logging.Handler], list[t.Any]]


def _logging_state() -> dict[str, LoggerState]:
    """Level, propagation, disabled flag, handlers and filters of every logger there is."""
    loggers: dict[str, logging.Logger] = {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    loggers[""] = logging.getLogger()
    return {
        name: (
            logger.level,
            logger.propagate,
            logger.disabled,
            [*logger.handlers],
            [*logger.filters],
        )
        for name, logger in loggers.items()
    }


def _restore_logging(saved: dict[str, LoggerState]) -> None:
    """Put every logger back as it was; loggers the run created are left with nothing."""
    logging.captureWarnings(capture=False)
    for name, logger in [*logging.Logger.manager.loggerDict.items(), ("", logging.getLogger())]:
        if not isinstance(logger, logging.Logger):
            continue
        level, propagate, disabled, handlers, filters = saved.get(
            name, (logging.NOTSET, True, False, [], [])
        )
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled
        logger.handlers[:] = handlers
        logger.filters[:] = filters
