"""The run summary and its record, in process (the subprocess tests see them end to end)."""

from __future__ import annotations

import datetime as dt
import random
import tracemalloc
import uuid

import pytest

from tap_kaleyra_rcs import errors as errors_module
from tap_kaleyra_rcs import runs as runs_module
from tap_kaleyra_rcs.errors import SettingsInvalid
from tap_kaleyra_rcs.records import AgentTesters
from tap_kaleyra_rcs.runs import (
    MOST_DUPLICATES_NAMED,
    Duplicate,
    FinishedRun,
    RunSummary,
    SeenIds,
    duplicates_warning,
)


def _batch(agent: str, testers: int) -> AgentTesters:
    return AgentTesters(agent, [{"id": f"{agent}-{i}"} for i in range(testers)])


def _finished(retries: int = 0, *testers_per_agent: int) -> FinishedRun:
    summary = RunSummary()
    for index, testers in enumerate(testers_per_agent):
        summary.count(_batch(str(48900 + index), testers))
    return summary.finish(retries)


def test_the_record_counts_agents_empty_agents_testers_and_retries():
    record = _finished(3, 4, 0, 2, 0).record()

    assert uuid.UUID(record.pop("run_id"))
    started = dt.datetime.fromisoformat(record.pop("started_at"))
    finished = dt.datetime.fromisoformat(record.pop("finished_at"))
    assert started.utcoffset() == finished.utcoffset() == dt.timedelta(0)
    assert started <= finished
    assert record == {
        "agents": 4,
        "agents_without_testers": 2,
        "testers": 6,
        "retries": 3,
        "duplicate_ids": 0,
        "skipped_agents": None,
        "held_agents": None,
        "schema_changes": 0,
    }


def test_the_line_says_the_same_as_the_record():
    line = _finished(1, 5, 0).line()

    assert line.startswith("synced 5 testers from 2 agents (1 with no testers) in ")
    assert line.endswith(" s; 1 retry; 0 duplicate ids")
    seconds = float(line.split(" in ")[1].split(" s;")[0])
    assert 0 <= seconds < 60


@pytest.mark.parametrize(
    ("testers_per_agent", "retries", "says"),
    [
        ((1,), 1, "synced 1 tester from 1 agent (0 with no testers)"),
        ((1,), 1, "; 1 retry; 0 duplicate ids"),
        ((0, 2), 2, "synced 2 testers from 2 agents (1 with no testers)"),
        ((0, 2), 2, "; 2 retries; 0 duplicate ids"),
    ],
)
def test_the_line_counts_in_words_people_read(testers_per_agent, retries, says):
    assert says in _finished(retries, *testers_per_agent).line()


def test_agents_left_out_are_named_in_the_line_and_the_record():
    summary = RunSummary()
    summary.count(_batch("48900", 2))
    summary.skipped_agents += ["48901", "48903"]
    summary.held_agents += ["48902", "48904"]
    run = summary.finish(0)

    assert run.line().endswith(
        "; skipped as unknown to Kaleyra: 48901, 48903"
        "; not synced, testers all gone at once: 48902, 48904"
    )
    assert run.line().startswith("synced 2 testers from 1 agent ")
    record = run.record()
    assert (record["skipped_agents"], record["held_agents"]) == ("48901,48903", "48902,48904")
    assert [a["agent_no"] for a in run.agent_records()] == ["48900"]


def test_the_line_gives_the_time_from_start_to_finish(monkeypatch):
    clock = iter([1000.0, 1002.46])
    monkeypatch.setattr(runs_module.time, "monotonic", lambda: next(clock))
    summary = RunSummary()
    summary.count(_batch("48900", 1))

    assert " in 2.5 s; " in summary.finish(0).line()


def test_an_id_seen_again_in_the_run_is_a_duplicate_under_one_agent_or_two():
    summary = RunSummary()
    first = AgentTesters("48900", [{"id": "a"}, {"id": "b"}, {"id": "a"}])
    second = AgentTesters("48901", [{"id": "b"}, {"id": "c"}, {"id": "a"}])

    assert summary.count(first) == [Duplicate("a", "48900", "48900")]
    assert summary.count(second) == [
        Duplicate("b", "48900", "48901"),
        Duplicate("a", "48900", "48901"),
    ]
    finished = summary.finish(0)
    assert finished.record()["duplicate_ids"] == 3
    assert finished.line().endswith("; 0 retries; 3 duplicate ids")
    assert finished.agent_records() == [
        {
            "run_id": finished.run_id,
            "run_started_at": finished.started_at,
            "agent_no": batch.agent,
            "received_at": batch.extracted_at,
            "testers": 3,
        }
        for batch in (first, second)
    ]


def test_the_duplicates_warning_names_ids_where_first_seen_and_counts_the_rest():
    duplicates = [Duplicate(f"id-{i}", "48900", "48901") for i in range(MOST_DUPLICATES_NAMED + 2)]

    warning = duplicates_warning(duplicates)

    assert warning.startswith(f"agent 48901: {MOST_DUPLICATES_NAMED + 2} tester id(s) already seen")
    assert "'id-0' (also under 48900), 'id-1' (also under 48900)" in warning
    assert f"'id-{MOST_DUPLICATES_NAMED - 1}'" in warning
    assert f"'id-{MOST_DUPLICATES_NAMED}'" not in warning
    assert " and 2 more." in warning
    assert " and 1 more." in duplicates_warning(duplicates[: MOST_DUPLICATES_NAMED + 1])
    assert " more" not in duplicates_warning(duplicates[:MOST_DUPLICATES_NAMED])


def test_the_duplicates_warning_in_full():
    warning = duplicates_warning([Duplicate("a1", "48900", "48902")])

    assert warning == (
        "agent 48902: 1 tester id(s) already seen in this run: 'a1' (also under 48900). "
        "Every copy is loaded; the models keep the one under the highest agent number, "
        "the last in its list (docs/models.md). Ask Kaleyra why one tester is listed twice."
    )


def test_the_duplicates_warning_redacts_an_id_that_echoes_the_key(monkeypatch):
    key = "k3y-abcdefgh-12345678"
    monkeypatch.setattr(errors_module, "_SECRETS", {key})

    warning = duplicates_warning([Duplicate(f"x{key}y", "48900", "48900")])

    assert key not in warning
    assert "x" in warning


def test_every_run_has_its_own_id():
    assert _finished(0, 1).run_id != _finished(0, 1).run_id


@pytest.mark.parametrize(
    ("problems", "line"),
    [
        (["sid: required"], "1 setting problem (listed above); first: sid: required"),
        (
            ["sid: required", "pod: must be one of in, na"],
            "2 setting problems (listed above); first: sid: required",
        ),
    ],
)
def test_settings_problems_end_in_one_line_naming_the_first(problems, line):
    error = SettingsInvalid(problems)

    assert str(error) == line
    assert error.problems == problems


def test_seen_ids_name_each_repeat_and_its_first_agent_as_a_dict_of_every_id_would():
    # Enough ids that every part of the table doubles several times.
    rng = random.Random(26)  # noqa: S311 - test data, not secrets
    agents = [str(48900 + index) for index in range(60)]
    listed = [[f"{agent}-{rng.randrange(40_000)}" for _ in range(1_000)] for agent in agents]
    for later in listed[1:]:
        later[::97] = rng.sample([tester for earlier in listed[:3] for tester in earlier], 11)
    seen = SeenIds()
    first_agent: dict[str, str] = {}

    for agent, tester_ids in zip(agents, listed, strict=True):
        expected = []
        for tester_id in tester_ids:
            if tester_id in first_agent:
                expected.append((tester_id, first_agent[tester_id]))
            else:
                first_agent[tester_id] = agent
        assert seen.add(agent, tester_ids) == expected


def test_seen_ids_keep_about_13_bytes_a_tester_and_4_mb_of_buckets():
    tester_ids = [str(uuid.UUID(int=number)) for number in range(200_000)]
    tracemalloc.start()
    try:
        seen = SeenIds()
        for start in range(0, len(tester_ids), 1_000):
            seen.add(str(start), tester_ids[start : start + 1_000])
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()

    assert kept < 4.5e6 + 14 * len(tester_ids)


def test_two_ids_with_one_fingerprint_are_named_as_a_duplicate_by_the_later_id(monkeypatch):
    # The documented bound: about n^2 / 2^65 for n ids. Here forced.
    monkeypatch.setattr(runs_module, "hash", len, raising=False)
    seen = SeenIds()

    assert seen.add("48900", ["ab"]) == []
    assert seen.add("48901", ["cd"]) == [("cd", "48900")]


def test_past_65535_agents_the_first_agent_is_still_named():
    seen = SeenIds()
    for number in range(70_000):
        seen.add(str(number), [f"id-{number}"])

    assert seen.add("last", ["id-69999", "id-3"]) == [("id-69999", "69999"), ("id-3", "3")]


def test_a_fingerprint_straddling_two_entries_of_a_bucket_is_not_a_match(monkeypatch):
    # y's entry is its 8 bytes then agent 0's index (4 zero bytes); x's 8 bytes
    # are the last 4 of y's fingerprint followed by those zeros, in the same bucket
    # (the same low 16 bits): found at offset 4, inside y's entry, not at one.
    x_key = b"\x05\x00\x07\x00" + b"\x00" * 4
    y_key = b"\x05\x00\x01\x02" + x_key[:4]
    fingerprints = {
        "x": int.from_bytes(x_key, "little", signed=True),
        "y": int.from_bytes(y_key, "little", signed=True),
    }
    monkeypatch.setattr(runs_module, "hash", fingerprints.__getitem__, raising=False)
    seen = SeenIds()

    assert seen.add("48900", ["y"]) == []
    assert seen.add("48901", ["x"]) == []
    assert seen.add("48902", ["x", "y"]) == [("x", "48901"), ("y", "48900")]


def test_the_first_aligned_match_is_found_between_two_straddling_ones(monkeypatch):
    # x's last 4 bytes are agent 1's index, so every fingerprint of agent 1 that
    # ends in x's first 4 bytes holds x straddling its entry and the owner after it.
    x_key = b"\x05\x00\x07\x00" + (1).to_bytes(4, "little")
    keys = {
        "q": b"\x06\x00" + b"\x00" * 6,  # agent 0's, in another bucket
        "y": b"\x05\x00\x01\x02" + x_key[:4],
        "x": x_key,
        "y2": b"\x05\x00\x03\x04" + x_key[:4],
    }
    fingerprints = {name: int.from_bytes(key, "little", signed=True) for name, key in keys.items()}
    monkeypatch.setattr(runs_module, "hash", fingerprints.__getitem__, raising=False)
    seen = SeenIds()
    assert seen.add("48900", ["q"]) == []
    assert seen.add("48901", ["y", "x", "y2"]) == []  # x at 4 (straddling), 12, 28 (straddling)

    assert seen.add("48902", ["x"]) == [("x", "48901")]


def test_ids_spread_over_every_bucket():
    seen = SeenIds()
    rng = random.Random(7)  # noqa: S311 - ids, not secrets
    seen.add("48900", [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(100_000)])
    used = sum(1 for bucket in seen._buckets if bucket)
    # 100,000 ids in 65,536 buckets leave about 65,536 x e^(-100,000/65,536) empty:
    # 51,300 used, give or take a few hundred; half the buckets could hold at most 32,768.
    assert used > 48_000
