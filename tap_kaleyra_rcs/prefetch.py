"""Fetch several agents at once while handing results back in configured order.

The SDK writes messages, state and metrics from one thread and syncs partitions
one after another. Worker threads here only do HTTP and parsing; the main
thread takes the results strictly in the order of ``agent_numbers``, so the
output is the same whatever order responses arrive in. At most ``window``
results wait in memory at a time, which bounds memory whatever the account size.
"""

from __future__ import annotations

import threading
import typing as t

T = t.TypeVar("T")


class OrderedPrefetcher(t.Generic[T]):
    """Runs ``work(item)`` on worker threads; :meth:`take` returns results in order.

    The first failure, in any worker, is raised by the next :meth:`take` (the
    earliest failed item first), and no new work starts after it. Workers are
    daemon threads so that a failing run can exit without waiting for requests
    still in flight.
    """

    def __init__(
        self,
        items: t.Sequence[str],
        work: t.Callable[[str], T],
        *,
        workers: int,
        window: int,
    ) -> None:
        """Start ``workers`` threads; at most ``window`` results are held at once."""
        self._items = items
        self._work = work
        self._window = max(window, workers)
        self._cond = threading.Condition()
        self._outcomes: dict[int, tuple[bool, T | BaseException]] = {}
        self._next_job = 0
        self._taken = 0
        self._failed: int | None = None
        self._closed = False
        for number in range(min(workers, len(items))):
            threading.Thread(target=self._run, name=f"kaleyra-fetch-{number}", daemon=True).start()

    def _claim(self) -> int | None:
        with self._cond:
            while (
                not self._closed
                and self._failed is None
                and self._next_job < len(self._items)
                and self._next_job >= self._taken + self._window
            ):
                self._cond.wait()
            if self._closed or self._failed is not None:
                return None
            if self._next_job >= len(self._items):
                return None
            index = self._next_job
            self._next_job += 1
            return index

    def _run(self) -> None:
        while (index := self._claim()) is not None:
            try:
                outcome: tuple[bool, T | BaseException] = (
                    True,
                    self._work(self._items[index]),
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome = (False, exc)
            with self._cond:
                self._outcomes[index] = outcome
                if not outcome[0] and (self._failed is None or index < self._failed):
                    self._failed = index
                self._cond.notify_all()

    def take(self, item: str) -> T:
        """The result for the next item in order, which must be ``item``."""
        with self._cond:
            expected = self._items[self._taken]
            if item != expected:
                msg = f"results are taken in order: expected {expected!r}, got {item!r}"
                raise RuntimeError(msg)
            while self._taken not in self._outcomes and self._failed is None:
                self._cond.wait()
            if self._taken in self._outcomes:
                ok, value = self._outcomes.pop(self._taken)
            else:
                ok, value = self._outcomes[t.cast("int", self._failed)]
            self._taken += 1
            self._cond.notify_all()
        if not ok:
            self.close()
            raise t.cast("BaseException", value)
        return t.cast("T", value)

    def close(self) -> None:
        """Stop handing out work; requests already in flight finish on their own."""
        with self._cond:
            self._closed = True
            self._outcomes.clear()
            self._cond.notify_all()
