"""Starting the tap without the garbage collector's passes over what it imports.

Importing the Singer SDK (and what it brings: requests, jsonschema, fsspec,
joblib, ...) creates hundreds of thousands of objects, and CPython's collector
starts passes along the way that walk every one of them: about a tenth of the
command's start-up CPU (docs/performance.md, "Start-up"). None of those objects
is garbage: they are the modules, classes and functions the process keeps to
its end. So the command imports with the collector paused, then moves all it
imported into the permanent generation (``gc.freeze``), which later passes skip
as well, and resumes collecting as before. Nothing here depends on the SDK: any
version of it gets the same treatment.

Then :func:`large_blocks_from_the_system` keeps the process's size flat over a
long run (docs/performance.md, "Peak memory").
"""

from __future__ import annotations

import ctypes
import gc
import typing as t

if t.TYPE_CHECKING:
    from types import TracebackType


class CollectorPaused:
    """A block run without collections; then what exists is frozen and collection resumes.

    A collector the caller had already disabled stays disabled.
    """

    was_collecting = True

    def __enter__(self) -> None:
        """Note whether the collector runs, then pause it."""
        self.was_collecting = gc.isenabled()
        gc.disable()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Freeze what exists now (later passes skip it), then collect as the caller did."""
        gc.freeze()
        if self.was_collecting:
            gc.enable()


M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter: blocks at least this large are mapped on their own."""
LARGE_BLOCK = 1 << 20


def large_blocks_from_the_system() -> bool:
    """Have the C allocator map every block of 1 MiB or more on its own; False if it can't.

    glibc starts with that threshold but raises it to the size of any mapped
    block that is freed, up to 32 MiB. Once the first agent's answer (megabytes)
    is freed, every later answer, encoded chunk and table grows inside the heap
    instead, where a small block still in use pins the freed memory around it:
    with 20 agents of 50,000 testers the process grew by about 20 MB an agent
    while what Python held stayed flat. Setting the threshold fixes it, so a
    large block goes back to the system as soon as it is freed. Other C
    libraries (macOS, musl) have no such parameter or ignore it: nothing changes.
    glibc's own starting point, 128 KiB, would map and unmap every usual answer
    and chunk, and cost about a fifth more CPU on 100,000 testers.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK))
