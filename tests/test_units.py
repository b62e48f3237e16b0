"""Small pieces of the HTTP and record layers, without a server."""

from __future__ import annotations

import gc
import gzip
import io
import json
import platform
import queue
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from email.utils import formatdate

import pytest
import requests
import urllib3
from urllib3 import exceptions as urllib3_errors

from tap_kaleyra_rcs import errors as errors_module
from tap_kaleyra_rcs.client import (
    RequestPacer,
    _announced_length,
    _host_of,
    decode_testers,
    retry_after_seconds,
    safe_snippet,
    whole_body,
)
from tap_kaleyra_rcs.drift import NOT_EPOCH_MILLISECONDS, DriftPolicy, SchemaChange
from tap_kaleyra_rcs.errors import AgentRequestFailed, MalformedResponse
from tap_kaleyra_rcs.output import _write_all
from tap_kaleyra_rcs.prefetch import OrderedPrefetcher, hold
from tap_kaleyra_rcs.records import build_records, epoch_millis_to_rfc3339
from tap_kaleyra_rcs.startup import CollectorPaused, large_blocks_from_the_system


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(" 1.5 ") == 1.5
    now = time.time()
    assert retry_after_seconds(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(
        30, abs=1
    )
    assert retry_after_seconds(formatdate(now - 30, usegmt=True), now=now) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "Thu, 99 Foo 2026"])
def test_retry_after_that_cannot_be_read_is_ignored(value):
    assert retry_after_seconds(value) is None


def test_snippets_are_short_single_line_and_never_hold_the_secret(monkeypatch):
    monkeypatch.setattr(errors_module, "_SECRETS", {"SECRET123"})
    body = b"<html>\n<p>key=SECRET123 rejected</p>\x00" + b"x" * 500
    one_line = "<html> <p>key=*** rejected</p> " + "x" * 500
    assert safe_snippet(body) == repr(one_line[:120] + "...")
    # Undecodable bytes are shown as replacement characters, control characters
    # as spaces, trimmed; only a body with nothing left says so.
    assert safe_snippet(b"\xff\xfe\x00") == repr("\ufffd\ufffd")
    assert safe_snippet(b"\x00\r\n ") == "(empty body)"
    assert safe_snippet(b"") == "(empty body)"


def test_an_error_message_never_holds_the_key_even_when_the_server_echoes_it(monkeypatch):
    monkeypatch.setattr(errors_module, "_SECRETS", {"SECRET123"})
    with pytest.raises(AgentRequestFailed) as caught:
        decode_testers(b'{"code":"RCS500","message":"bad key SECRET123"}', "1")
    assert "SECRET123" not in str(caught.value)
    assert "***" in str(caught.value)


def test_decode_testers_requires_the_success_code_for_an_empty_answer():
    assert decode_testers(b'{"code":"RCS902","data":null}', "1") == []
    assert decode_testers(b'{"data":[{"id":"a"}]}', "1") == [{"id": "a"}]
    with pytest.raises(MalformedResponse):
        decode_testers(b'{"message":"ok"}', "1")
    with pytest.raises(AgentRequestFailed, match="RCS500"):
        decode_testers(b'{"code":"RCS500","message":"Internal","data":[]}', "1")


@pytest.mark.parametrize(
    "body",
    [
        b'{"code":"RCS902","data":{"id":"a"}}',
        b'{"code":"RCS902","data":"none"}',
        b"[]",
        b"\xff\xfe",
    ],
)
def test_decode_testers_refuses_wrong_shapes(body):
    with pytest.raises(MalformedResponse, match="agent 9"):
        decode_testers(body, "9")


def test_epoch_millis_convert_exactly():
    assert epoch_millis_to_rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert epoch_millis_to_rfc3339(1769708507204) == "2026-01-29T17:41:47.204Z"
    assert epoch_millis_to_rfc3339(-1) == "1969-12-31T23:59:59.999Z"


def _by_datetime(millis: int) -> str:
    moment = datetime(1970, 1, 1) + timedelta(milliseconds=millis)  # noqa: DTZ001 - UTC, as "Z"
    return moment.isoformat(timespec="milliseconds") + "Z"


def test_epoch_millis_agree_with_datetime_at_every_minute_second_and_millisecond():
    day = 20_000 * 86_400_000  # 2024-10-04
    every_minute = [day + minute * 60_000 + (minute % 60) * 1000 for minute in range(24 * 60)]
    every_millisecond = [day + 59_000 + ms for ms in range(1000)]
    for millis in every_minute + every_millisecond:
        assert epoch_millis_to_rfc3339(millis) == _by_datetime(millis)


def test_with_fail_an_impossible_timestamp_fails_naming_the_agent():
    with pytest.raises(MalformedResponse, match="agent 5: tester #0 created_date is not a"):
        build_records("5", [{"id": "a", "created_date": 10**20}], drift=DriftPolicy("fail"))


def test_an_impossible_timestamp_keeps_created_date_and_nulls_created_at():
    batch = build_records("5", [{"id": "a", "created_date": 10**20}])

    assert (batch.records[0]["created_date"], batch.records[0]["created_at"]) == (10**20, None)
    assert batch.changes[SchemaChange("created_date", NOT_EPOCH_MILLISECONDS)] == repr(10**20)


def test_records_are_not_objects_fails():
    with pytest.raises(MalformedResponse, match="tester #1 is a JSON list"):
        build_records("5", [{"id": "a"}, [1, 2]])


class FakeTime:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("rate", [4, 20, 0.5])
def test_pacer_never_lets_more_than_the_rate_start_in_any_second(rate):
    fake = FakeTime()
    pacer = RequestPacer(rate, clock=fake.clock, sleep=fake.sleep)
    starts = []
    for _ in range(60):
        pacer.wait_turn()
        starts.append(fake.now)
    for first in starts:
        assert sum(1 for s in starts if first <= s < first + 1.0) <= max(rate, 1)
    assert starts[-1] - starts[0] <= 59 * 1.06 / rate, "and it does not go needlessly slow"


def test_pacer_hold_delays_every_caller():
    fake = FakeTime()
    pacer = RequestPacer(None, clock=fake.clock, sleep=fake.sleep)
    pacer.wait_turn()
    pacer.hold_all(2)
    pacer.wait_turn()
    assert fake.now == 102
    pacer.wait_turn()
    assert fake.now == 102, "the hold is over: no further wait"


def test_pacer_hold_reaches_callers_already_waiting():
    fake = FakeTime()
    holds = [5.0]

    def sleep_while_someone_gets_a_429(seconds: float) -> None:
        if holds:
            pacer.hold_all(holds.pop())
        fake.sleep(seconds)

    pacer = RequestPacer(10, clock=fake.clock, sleep=sleep_while_someone_gets_a_429)
    pacer.wait_turn()
    pacer.wait_turn()
    assert fake.now >= 105


def test_prefetcher_returns_results_in_order_whatever_finishes_first():
    items = [str(i) for i in range(12)]

    def slow_for_early(item: str) -> str:
        time.sleep(0.02 * (12 - int(item)) / 12)
        return f"r{item}"

    fetcher = OrderedPrefetcher(items, slow_for_early, workers=4, window=6)
    assert [fetcher.take(item) for item in items] == [f"r{i}" for i in items]


def test_prefetcher_holds_no_more_than_its_window():
    workers, window = 3, 5
    items = [str(i) for i in range(20)]
    taken = 0
    ahead: list[int] = []
    lock = threading.Lock()

    def work(item: str) -> str:
        # `take` counts an item as taken just before it returns, so at most one
        # more than `taken` may already be counted when the next item starts.
        with lock:
            ahead.append(int(item) - taken)
        return item

    fetcher = OrderedPrefetcher(items, work, workers=workers, window=window)
    for item in items:
        assert fetcher.take(item) == item
        with lock:
            taken += 1
    assert len(ahead) == len(items)
    assert max(ahead) <= window, "no more than window items ahead of the consumer"


def test_prefetcher_starts_as_many_workers_as_asked():
    gate = threading.Event()

    def work(item: str) -> str:
        gate.wait()
        return item

    items = [str(i) for i in range(20)]
    before = set(threading.enumerate())
    fetcher = OrderedPrefetcher(items, work, workers=3, window=10)
    # The workers are started before the constructor returns, and none can end
    # before the gate opens.
    workers = {t for t in set(threading.enumerate()) - before if t.name.startswith("kaleyra-")}
    assert len(workers) == 3
    gate.set()
    assert [fetcher.take(item) for item in items] == items


def test_prefetcher_raises_the_first_failure_and_starts_no_new_work():
    started: list[str] = []
    release = threading.Event()
    holder: queue.Queue[threading.Thread] = queue.Queue()

    def work(item: str) -> str:
        started.append(item)
        if item == "2":
            raise ValueError(item)
        if item == "1":
            # Keeps one worker busy until the failure has surfaced; the other
            # worker is the one that fails, so no worker is free in between.
            holder.put(threading.current_thread())
            release.wait()
        return item

    items = [str(i) for i in range(50)]
    fetcher = OrderedPrefetcher(items, work, workers=2, window=50)
    with pytest.raises(ValueError, match="2"):
        _take_all(fetcher, items)
    release.set()
    holder.get(timeout=30).join(30)  # the last worker has finished or stopped
    assert sorted(started) == ["0", "1", "2"]


def _held_while_taking(sizes: list[int], budget: int) -> list[dict[str, int]]:
    """What the items had held at each moment one was granted its bytes."""
    items = [str(i) for i in range(len(sizes))]
    in_memory: dict[str, int] = {}
    moments: list[dict[str, int]] = []
    lock = threading.Lock()

    def work(item: str) -> str:
        hold(sizes[int(item)])
        with lock:
            in_memory[item] = sizes[int(item)]
            moments.append(dict(in_memory))
        return item

    fetcher = OrderedPrefetcher(items, work, workers=4, window=8, budget=budget)
    for index, item in enumerate(items):
        with lock:  # taking the next item is being done with the one before
            in_memory.pop(str(index - 1), None)
        assert fetcher.take(item) == item
    return moments


def test_prefetcher_holds_at_most_its_budget_and_the_next_item():
    sizes = [3, 5, 2, 9, 1, 4, 12, 2, 2, 6, 7, 3, 1, 1, 8]

    for held in _held_while_taking(sizes, budget=10):
        assert sum(held.values()) - max(held.values()) <= 10


def test_prefetcher_holds_one_item_at_a_time_when_each_is_larger_than_its_budget():
    for held in _held_while_taking([5] * 12, budget=4):
        assert len(held) == 1, held


WAITED_ON_FAILURE = 30
"""Seconds a test waits for what a correct prefetcher does at once, before it fails."""


def _holding(sizes: dict[str, list[int]], budget: int, gates: dict[str, threading.Event]):
    """A prefetcher over ``sizes``' items: each holds its sizes in turn, says so, then waits."""
    holding = {item: threading.Event() for item in sizes}

    def work(item: str) -> str:
        for size in sizes[item]:
            hold(size)
        holding[item].set()
        if item in gates:
            gates[item].wait(WAITED_ON_FAILURE)
        return item

    fetcher = OrderedPrefetcher(list(sizes), work, workers=len(sizes), window=8, budget=budget)
    return fetcher, holding


def test_prefetcher_lets_items_fill_its_budget_exactly():
    gate = threading.Event()
    fetcher, holding = _holding({"0": [5], "1": [5]}, budget=10, gates={"0": gate, "1": gate})
    try:
        assert holding["1"].wait(WAITED_ON_FAILURE), "5 + 5 bytes fit a budget of 10"
        assert holding["0"].is_set()
    finally:
        gate.set()
    assert [fetcher.take("0"), fetcher.take("1")] == ["0", "1"]


def test_an_items_second_hold_counts_only_what_it_adds():
    # Item 0 holds 4 (its announced length), then 6 (its real size): 6 in all.
    gate = threading.Event()
    fetcher, holding = _holding({"0": [4, 6], "1": [4]}, budget=10, gates={"0": gate, "1": gate})
    try:
        assert holding["1"].wait(WAITED_ON_FAILURE), "6 + 4 bytes fit a budget of 10"
    finally:
        gate.set()
    assert [fetcher.take("0"), fetcher.take("1")] == ["0", "1"]


def test_what_a_taken_item_held_is_free_for_the_next_ones():
    # Item 0 fills the budget. Once the consumer is done with it (taking item 1),
    # items 1 and 2 fit together: item 1 waits for item 2 to hold its bytes.
    sizes = {"0": 10, "1": 5, "2": 5}
    holding = {item: threading.Event() for item in sizes}

    def work(item: str) -> bool:
        hold(sizes[item])
        holding[item].set()
        return item != "1" or holding["2"].wait(WAITED_ON_FAILURE)

    fetcher = OrderedPrefetcher(list(sizes), work, workers=3, window=8, budget=10)
    assert fetcher.take("0")
    assert fetcher.take("1"), "item 2 held its bytes while item 1 was not yet taken"
    assert fetcher.take("2")


def test_prefetcher_workers_are_daemons_and_stop_claiming_once_closed():
    started: list[str] = []
    in_flight = threading.Event()
    release = threading.Event()

    def work(item: str) -> str:
        started.append(item)
        if item == "1":
            in_flight.set()
            release.wait(WAITED_ON_FAILURE)
        return item

    before = set(threading.enumerate())
    fetcher = OrderedPrefetcher([str(i) for i in range(10)], work, workers=1, window=10)
    (worker,) = {t for t in set(threading.enumerate()) - before if t.name.startswith("kaleyra-")}
    assert worker.daemon, "a failing run must not wait for requests still in flight"
    assert fetcher.take("0") == "0"
    assert in_flight.wait(WAITED_ON_FAILURE)
    fetcher.close()
    release.set()
    worker.join(WAITED_ON_FAILURE)
    assert not worker.is_alive()
    assert started == ["0", "1"], "nothing is started after close()"


def test_outside_a_prefetcher_holding_bytes_waits_for_nothing():
    hold(1 << 40)


def _take_all(fetcher: OrderedPrefetcher[str], items: list[str]) -> list[str]:
    return [fetcher.take(item) for item in items]


def test_prefetcher_raises_a_failure_without_waiting_for_slower_earlier_items():
    release = threading.Event()
    finished: list[str] = []

    def work(item: str) -> str:
        if item == "1":
            raise ValueError(item)
        release.wait(60)
        finished.append(item)
        return item

    fetcher = OrderedPrefetcher(["0", "1", "2"], work, workers=2, window=2)
    with pytest.raises(ValueError, match="1"):
        fetcher.take("0")
    assert finished == [], "item 0 was still in flight when the failure was raised"
    release.set()


class TrickleWriter:
    """A raw stdout that writes at most 3 bytes a call, and once writes nothing."""

    def __init__(self) -> None:
        self.data = b""
        self.calls = 0

    def write(self, chunk: memoryview) -> int | None:
        self.calls += 1
        if self.calls == 2:
            return None
        self.data += bytes(chunk[:3])
        return min(3, len(chunk))


def test_output_writes_every_byte_to_a_raw_stdout_that_writes_partially():
    out = TrickleWriter()
    _write_all(out, b'{"type":"STATE"}\n')
    assert out.data == b'{"type":"STATE"}\n'


@pytest.mark.parametrize(
    ("location", "shown"),
    [
        ("https://user:pw@other.example:8443/x?y", "other.example:8443"),
        ("http://127.0.0.1/path", "127.0.0.1"),
        ("/relative/path", ""),
        ("https://host:notaport/", ""),
    ],
)
def test_a_redirect_target_is_named_without_credentials(location, shown):
    assert _host_of(location) == shown


_IMPORT_WATCHED = """
import gc, json, sys
collections = []
def watch(phase, info):  # collections once the SDK's import has begun
    if phase == "start" and "singer_sdk" in sys.modules:
        collections.append(info["generation"])
gc.callbacks.append(watch)
{before}
import tap_kaleyra_rcs.cli
print(json.dumps([len(collections), gc.isenabled(), gc.get_freeze_count()]))
"""


@pytest.mark.parametrize(("before", "collecting"), [("", True), ("gc.disable()", False)])
def test_the_command_imports_the_sdk_with_no_collection_then_collects_as_before(before, collecting):
    """The collector paused through the import, its objects frozen, then as the caller had it."""
    watched = _IMPORT_WATCHED.format(before=before)
    done = subprocess.run(
        [sys.executable, "-c", watched], capture_output=True, text=True, check=True
    )
    ran, enabled, frozen = json.loads(done.stdout)
    assert ran == 0, f"{ran} collections ran during the import"
    assert enabled is collecting
    assert frozen > 50_000, "the imported modules' objects are in the permanent generation"


def test_without_the_pause_the_same_import_starts_collections():
    """What the pause saves exists: the plain import of the SDK starts collections."""
    plain = _IMPORT_WATCHED.replace("import tap_kaleyra_rcs.cli", "import singer_sdk")
    done = subprocess.run(
        [sys.executable, "-c", plain.format(before="")], capture_output=True, text=True, check=True
    )
    ran, enabled, _ = json.loads(done.stdout)
    assert ran > 0
    assert enabled


@pytest.mark.parametrize("collecting", [True, False])
def test_the_pause_holds_for_the_block_then_freezes_and_restores(collecting):
    """In process: paused inside, what exists frozen after, the caller's setting back."""
    was = gc.isenabled()
    gc.enable() if collecting else gc.disable()
    frozen_before = gc.get_freeze_count()
    try:
        with CollectorPaused():
            assert not gc.isenabled()
            made = [[n] for n in range(1000)]  # tracked objects, made while paused
        assert gc.get_freeze_count() >= frozen_before + len(made)
        assert gc.isenabled() is collecting
    finally:
        gc.unfreeze()
        gc.enable() if was else gc.disable()


def test_the_pause_ends_even_when_the_import_fails():
    was = gc.isenabled()
    try:
        with pytest.raises(ImportError), CollectorPaused():
            import tap_kaleyra_rcs.no_such_module  # noqa: F401, PLC0415
        assert gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc parameter")
def test_the_c_allocator_is_told_to_map_large_blocks_on_their_own():
    assert large_blocks_from_the_system()


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ({"Content-Length": "2048"}, 2048),
        ({}, 0),  # chunked, or a server that does not say: held once the body is read
        ({"Content-Length": "-5"}, 0),
        ({"Content-Length": "12 34"}, 0),
        ({"Content-Length": "9" * 19}, 0),  # no real answer is exabytes: not believed
    ],
)
def test_an_answers_announced_length_is_believed_only_when_plausible(headers, length):
    assert _announced_length(headers) == length


class _FailingBody:
    """A response body whose read fails the way urllib3 reports ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, decode_content: bool) -> bytes:
        assert decode_content, "a gzip answer must be decoded as content would be"
        raise self.error


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (urllib3_errors.ProtocolError("cut off", None), requests.exceptions.ChunkedEncodingError),
        (urllib3_errors.DecodeError("bad gzip"), requests.exceptions.ContentDecodingError),
        (urllib3_errors.ReadTimeoutError(None, None, "slow"), requests.ConnectionError),
        (urllib3_errors.SSLError("bad record"), requests.exceptions.SSLError),
    ],
)
def test_a_body_that_fails_midway_raises_what_response_content_would(error, raised):
    response = requests.Response()
    response.raw = _FailingBody(error)
    with pytest.raises(raised) as caught:
        whole_body(response)
    assert caught.value.__cause__ is error
    assert isinstance(caught.value, requests.RequestException), "the retry policy catches it"


def test_a_whole_body_is_read_in_one_go_and_decoded():
    payload = b'{"code":"RCS902","data":[]}'
    response = requests.Response()
    response.raw = urllib3.HTTPResponse(
        body=io.BytesIO(gzip.compress(payload)),
        headers={"Content-Encoding": "gzip"},
        preload_content=False,
    )
    assert whole_body(response) == payload
