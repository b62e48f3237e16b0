"""Starting the tap: the C heap's thresholds, then the imports, lighter and faster.

Importing the Singer SDK (and what it brings: requests, jsonschema, fsspec,
joblib, ...) creates hundreds of thousands of objects, and CPython's collector
starts passes along the way that walk every one of them: about a tenth of the
command's start-up CPU (docs/performance.md, "Start-up"). None of those objects
is garbage: they are the modules, classes and functions the process keeps to
its end. So the command imports with the collector paused, then moves all it
imported into the permanent generation (``gc.freeze``), which later passes skip
as well, and resumes collecting as before. Nothing here depends on the SDK: any
version of it gets the same treatment.

Inside the same block, :func:`imported_on_first_use` leaves out the modules the
SDK imports for features a tap run may not use, until they are used.

Before both, :func:`large_blocks_from_the_system` keeps the process's size flat
over a long run without refaulting its memory agent after agent
(docs/performance.md, "Peak memory").
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import sys
import types
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


@contextlib.contextmanager
def imported_on_first_use(*modules: str) -> t.Iterator[None]:
    """A block where importing ``modules`` binds stand-ins that import them on first use.

    The SDK imports, for every plugin, modules that serve features a tap run
    may never use: a REST stream's retry decorator, a target's parallel
    drain, BATCH files. Importing them took 30 to 50 ms of the tap's start-up
    (docs/performance.md, "Start-up"), paid again by every run, ``--about``
    and ``--discover``. ``modules`` are names of top-level modules. Inside the
    block, ``import m`` and ``from m import name`` bind a stand-in; calling
    ``m.name(...)``, reading an attribute of it or an ``isinstance`` check
    imports ``m`` for real and hands over. A name used at import time in any
    other way (a base class, a decorator applied then) cannot be deferred: the
    SDK uses none of the three the tap names so, and the SDK's version is
    pinned to the patch releases this was tested with. After the block, ``m``
    imports as usual; a module already imported is left alone.
    """
    placed = [StandIn(module) for module in modules if module not in sys.modules]
    for stand_in in placed:
        sys.modules[stand_in.__name__] = stand_in
    try:
        yield
    finally:  # later imports get the real modules
        for stand_in in placed:
            stand_in.withdraw()


class StandIn(types.ModuleType):
    """Stands for a module not imported yet: each public attribute is :class:`OnFirstUse`."""

    def __getattr__(self, name: str) -> OnFirstUse:
        """``module.name``, imported when first used."""
        if name.startswith("__"):  # the import system's questions: not a package
            raise AttributeError(name)
        return OnFirstUse(self.__name__, name)

    def withdraw(self) -> None:
        """Let ``import`` find the real module from now on."""
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]


class OnFirstUse:
    """Stands for ``module.name``: the first call or attribute read imports ``module``."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        """Stand for ``module.name``; nothing is imported yet."""
        self.module = module
        self.name = name

    def real(self) -> t.Any:  # noqa: ANN401 - whatever the module holds
        """``module.name`` itself, importing ``module`` if it is not yet."""
        found = sys.modules.get(self.module)
        if isinstance(found, StandIn):  # used inside the block: the real one from now on
            found.withdraw()
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args: t.Any, **kwargs: t.Any) -> t.Any:  # noqa: ANN401
        """Call the real ``module.name``."""
        return self.real()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> t.Any:  # noqa: ANN401
        """An attribute of the real ``module.name``."""
        return getattr(self.real(), attribute)

    def __instancecheck__(self, instance: object) -> bool:
        """``isinstance(x, stand_in)`` asks the real class."""
        return isinstance(instance, self.real())

    def __subclasscheck__(self, subclass: type) -> bool:
        """``issubclass(c, stand_in)`` asks the real class."""
        return issubclass(subclass, self.real())


M_TRIM_THRESHOLD = -1
"""glibc's ``mallopt`` parameter: free memory at the heap's top beyond this goes back."""
M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter: blocks at least this large are mapped on their own."""
LARGE_BLOCK = 1 << 20
HEAP_TOP_KEPT = 4 << 20


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

    Fixing one threshold stops glibc adjusting the other: the heap's trim
    threshold, which says how much free memory at its top is kept rather than
    handed back. Left at its starting 128 KiB, every agent's answer and output
    chunks went back to the system once freed and were faulted in afresh for
    the next agent: about 40,000 page faults, a sixth of the CPU, on 100,000
    testers. Up to 4 MiB is kept instead, a bounded amount whatever the account.
    Both are set before the tap's imports, so the heap is sized this way throughout.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)) and bool(
        mallopt(M_TRIM_THRESHOLD, HEAP_TOP_KEPT)
    )
