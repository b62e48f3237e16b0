"""Singer output: RECORD lines batched into large writes, everything else flushed at once.

The SDK writes and flushes stdout once per message; with ``PYTHONUNBUFFERED``
(common in containers) that is one system call per record. Here RECORD lines
collect in memory and go out in chunks of about 64 KiB; SCHEMA, STATE and
ACTIVATE_VERSION messages flush everything before them, so message order and
"state only after its records" are kept. Only whole lines are ever written: a
signal that arrives during a write is re-raised once the write has finished.
"""

from __future__ import annotations

import sys
import time
import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter

from tap_kaleyra_rcs.errors import OutputClosed

if t.TYPE_CHECKING:
    from singer_sdk.singerlib.encoding.simple import Message

CHUNK_BYTES = 1 << 16


class SingerOutput(MsgSpecWriter):
    """The tap's message writer (msgspec encoding, chunked writes)."""

    def __init__(self) -> None:
        """Start with nothing pending."""
        super().__init__()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._writing = False
        self._deferred: BaseException | None = None

    def write_message(self, message: Message) -> None:
        """Write any message the SDK emits, after the records before it."""
        # format_message reuses one buffer: copy it before it is overwritten.
        self.write_lines(bytes(self.format_message(message)))
        self.flush()

    def write_lines(self, lines: bytes) -> None:
        """Queue one or more complete messages, each ending in a newline."""
        self._pending.append(lines)
        self._pending_bytes += len(lines)
        if self._pending_bytes >= CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write everything queued, in one system call where the OS allows."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._writing = True
            try:
                _write_all(sys.stdout.buffer, data)
                sys.stdout.flush()
            except BrokenPipeError:
                msg = (
                    "the reader of the tap's output (the target) closed it; "
                    "its own error, above, says why"
                )
                raise OutputClosed(msg) from None
            finally:
                self._writing = False
        if self._deferred is not None:
            deferred, self._deferred = self._deferred, None
            raise deferred

    def raise_between_writes(self, exc: BaseException) -> None:
        """Raise ``exc`` now, or right after a write in progress completes.

        Called from signal handlers: raising inside a write could leave a
        half-written line on stdout for the target to choke on.
        """
        if self._writing:
            self._deferred = exc
            return
        raise exc


def _write_all(out: t.BinaryIO, data: bytes) -> None:
    """Write every byte, also to a raw (unbuffered) stdout that writes only part.

    With ``PYTHONUNBUFFERED`` set, ``sys.stdout.buffer`` is a raw file whose
    ``write`` may stop early on a pipe, e.g. when a signal arrives mid-write.
    """
    view = memoryview(data)
    while view:
        written = out.write(view)
        if written is None:  # a non-blocking stdout that is full: wait for the reader
            time.sleep(0.01)
            continue
        view = view[written:]
