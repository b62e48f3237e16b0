"""Fetch several agents at once while handing results back in configured order.

The SDK writes messages, state and metrics from one thread and syncs partitions
one after another. Worker threads here only do HTTP and parsing; the main
thread takes the results strictly in the order of ``agent_numbers``, so the
output is the same whatever order responses arrive in.

Two bounds keep memory flat whatever the account's size: at most ``window``
results wait at a time, and their answers together hold at most ``budget``
bytes (:func:`hold`), so a few very large agents cannot fill the window with
hundreds of megabytes.
"""

from __future__ import annotations

import threading
import typing as t

T = t.TypeVar("T")

_worker = threading.local()
"""The prefetcher and item a worker thread is working on, for :func:`hold`."""


def hold(size: int) -> None:
    """Wait until the item this worker thread fetches may hold ``size`` bytes of answer.

    Called before an answer's body is read (with its announced length) and
    again once its real size is known. A no-op outside a prefetcher's worker.
    """
    prefetcher: OrderedPrefetcher[t.Any] | None = getattr(_worker, "prefetcher", None)
    if prefetcher is not None:
        prefetcher.hold(_worker.index, size)


class OrderedPrefetcher(t.Generic[T]):
    """Runs ``work(item)`` on worker threads; :meth:`take` returns results in order.

    The first failure, in any worker, is raised by the next :meth:`take` (the
    earliest failed item first), and no new work starts after it.

    An item's bytes count against ``budget`` from :meth:`hold` until the
    consumer takes the next item (it is then done with this one). The item the
    consumer takes next may go over the budget once the consumer is done with
    the one before: otherwise items further ahead could hold all of it while
    the consumer waits for that one. So at most the budget and that one item
    are held at once, and with items larger than the budget, one at a time.

    Workers are daemon threads so that a failing run can exit without waiting
    for requests still in flight.
    """

    def __init__(
        self,
        items: t.Sequence[str],
        work: t.Callable[[str], T],
        *,
        workers: int,
        window: int,
        budget: int | None = None,
    ) -> None:
        """Start ``workers`` threads; at most ``window`` results, ``budget`` bytes, at once."""
        self._items = items
        self._budget = budget
        self._held = 0
        self._held_by: dict[int, int] = {}
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

    def hold(self, index: int, size: int) -> None:
        """Wait until item ``index`` may hold ``size`` bytes in all (see :func:`hold`)."""
        with self._cond:
            more = size - self._held_by.get(index, 0)
            while (
                more > 0
                and self._budget is not None
                and self._held + more > self._budget
                and (index != self._taken or self._taken - 1 in self._held_by)
                and not self._closed
                and self._failed is None
            ):
                self._cond.wait()
            if more > 0:
                self._held += more
                self._held_by[index] = size

    def _release(self, index: int) -> None:
        """Item ``index`` holds nothing any more; call with the lock held."""
        self._held -= self._held_by.pop(index, 0)
        self._cond.notify_all()

    def _run(self) -> None:
        _worker.prefetcher = self
        while (index := self._claim()) is not None:
            _worker.index = index
            try:
                outcome: tuple[bool, T | BaseException] = (
                    True,
                    self._work(self._items[index]),
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome = (False, exc)
            with self._cond:
                self._outcomes[index] = outcome
                if not outcome[0]:
                    self._release(index)
                    if self._failed is None or index < self._failed:
                        self._failed = index
                self._cond.notify_all()
            # Not kept while waiting for the next item: once taken, it is the consumer's.
            del outcome

    def take(self, item: str) -> T:
        """The result for the next item in order, which must be ``item``."""
        with self._cond:
            expected = self._items[self._taken]
            if item != expected:
                msg = f"results are taken in order: expected {expected!r}, got {item!r}"
                raise RuntimeError(msg)
            self._release(self._taken - 1)  # the consumer is done with the one before
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
