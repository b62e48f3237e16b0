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
"""

from __future__ import annotations

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
