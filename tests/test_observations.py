"""The raw history streams: testers_observations and testers_sync_run_agents, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import sys

import jsonschema
import msgspec
import pytest

from tap_kaleyra_rcs import output
from tap_kaleyra_rcs.drift import KEEP
from tap_kaleyra_rcs.observations import RUN_FIELDS, observations, with_inherited_stream_map
from tap_kaleyra_rcs.output import SingerOutput, lines_of
from tap_kaleyra_rcs.phones import PhoneHasher
from tap_kaleyra_rcs.records import AgentTesters, build_records, load_schema
from tap_kaleyra_rcs.runs import RunSummary
from tap_kaleyra_rcs.tap import TapKaleyraRcs
from tests.support import run_tap

MAP = "phoneno[:16] if phoneno else None"
"""A stream map on phoneno (its first 16 characters), for the map inheritance tests."""
KEY = "Observe-KEY-wXq7zLm9"


def test_every_tester_every_run_is_observed_with_its_run_agent_and_place(sandbox, tmp_path):
    api = sandbox(
        {"agents": 3, "testers_per_agent": 4, "agent_overrides": {"48901": {"testers": 0}}}
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    testers = run.records
    observed = run.records_of("testers_observations")
    (record,) = run.records_of("testers_sync_runs")
    schema = load_schema("testers_observations")
    for observation in observed:
        jsonschema.validate(observation, schema)
    assert [{k: o[k] for k in o if k not in RUN_FIELDS} for o in observed] == testers
    assert {o["run_id"] for o in observed} == {record["run_id"]}
    assert {o["run_started_at"] for o in observed} == {record["started_at"]}
    assert [(o["synced_agent_no"], o["position"]) for o in observed] == [
        (agent, place) for agent in ("48900", "48902") for place in range(4)
    ]
    extracted = {
        m["record"]["agent_no"]: m["time_extracted"]
        for m in run.of_type("RECORD")
        if m["stream"] == "testers"
    }
    assert {o["synced_agent_no"]: o["received_at"] for o in observed} == extracted
    # Observations are history: never versioned, never activated.
    assert not any("version" in m for m in run.messages if m.get("stream") != "testers")


def test_each_synced_agent_is_recorded_empty_ones_included(sandbox, tmp_path):
    api = sandbox(
        {"agents": 3, "testers_per_agent": 2, "agent_overrides": {"48901": {"testers": 0}}}
    )
    run = run_tap(api.config(), tmp_path)

    assert run.returncode == 0, run.stderr
    agents = run.records_of("testers_sync_run_agents")
    (record,) = run.records_of("testers_sync_runs")
    for agent in agents:
        jsonschema.validate(agent, load_schema("testers_sync_run_agents"))
    assert [(a["agent_no"], a["testers"]) for a in agents] == [
        ("48900", 2),
        ("48901", 0),
        ("48902", 2),
    ]
    assert {(a["run_id"], a["run_started_at"]) for a in agents} == {
        (record["run_id"], record["started_at"])
    }
    observed_at = {
        o["synced_agent_no"]: o["received_at"] for o in run.records_of("testers_observations")
    }
    assert {a["agent_no"]: a["received_at"] for a in agents if a["testers"]} == observed_at


def test_a_failed_run_sends_what_it_received_and_no_run_records(sandbox, tmp_path):
    api = sandbox(
        {
            "agents": 3,
            "testers_per_agent": 3,
            "agent_overrides": {"48902": {"faults": [{"status": 500, "times": "always"}]}},
        }
    )
    # One agent at a time, so 48900 and 48901 are answered before 48902 fails.
    config = api.config(max_retries=1, emit_activate_version_messages=True, max_concurrent_agents=1)
    run = run_tap(config, tmp_path)

    assert run.returncode == 1
    observed = run.records_of("testers_observations")
    assert [o["synced_agent_no"] for o in observed] == ["48900"] * 3 + ["48901"] * 3
    assert run.records_of("testers_sync_run_agents") == []
    assert run.records_of("testers_sync_runs") == []
    assert run.of_type("ACTIVATE_VERSION") == []


def test_a_duplicate_id_is_named_counted_and_every_copy_observed(sandbox, tmp_path):
    api = sandbox({"agents": 2, "testers_per_agent": 3})
    first = api.scenario.testers("48900")[0]["id"]
    api.use(
        {
            "agents": 2,
            "testers_per_agent": 3,
            "agent_overrides": {
                "48900": {"set": {"2": {"id": first}}},
                "48901": {"set": {"1": {"id": first}}},
            },
        }
    )
    run = run_tap(api.config(max_concurrent_agents=1), tmp_path)

    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "already seen in this run" in line]
    assert len(warnings) == 2
    assert "WARNING" in warnings[0]
    assert (
        f"agent 48900: 1 tester id(s) already seen in this run: '{first}' (also under 48900)"
        in warnings[0]
    )
    assert (
        f"agent 48901: 1 tester id(s) already seen in this run: '{first}' (also under 48900)"
        in warnings[1]
    )
    assert "synced 6 testers from 2 agents (0 with no testers)" in run.stderr
    assert "; 0 retries; 2 duplicate ids" in run.stderr
    (record,) = run.records_of("testers_sync_runs")
    assert record["duplicate_ids"] == 2
    copies = [o for o in run.records_of("testers_observations") if o["id"] == first]
    assert [(o["synced_agent_no"], o["position"]) for o in copies] == [
        ("48900", 0),
        ("48900", 2),
        ("48901", 1),
    ]


def test_observations_alone_are_sent_without_the_testers_stream(sandbox, tmp_path):
    api = sandbox({"agents": 2, "testers_per_agent": 2})
    catalog = json.loads(run_tap(api.config(), tmp_path, "--discover").stdout)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] != "testers"
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))

    run = run_tap(api.config(), tmp_path, "--catalog", str(tmp_path / "catalog.json"))

    assert run.returncode == 0, run.stderr
    assert run.records == []
    assert len(run.records_of("testers_observations")) == 4
    assert len(run.records_of("testers_sync_run_agents")) == 2
    assert [m["stream"] for m in run.of_type("SCHEMA")].count("testers_observations") == 1


def test_a_stream_map_on_testers_reaches_the_observations(sandbox, tmp_path):
    api = sandbox({"agents": 1, "testers_per_agent": 3})
    # The key hashes each number first; the map on testers then maps the hash, in
    # both streams.
    config = api.config(phoneno_hash_key=KEY, stream_maps={"testers": {"phoneno": MAP}})
    run = run_tap(config, tmp_path)

    assert run.returncode == 0, run.stderr
    clear = [tester["phoneno"] for tester in api.scenario.testers("48900")]
    keyed = [hmac.new(KEY.encode(), phone.encode(), hashlib.sha256).hexdigest() for phone in clear]
    assert [r["phoneno"] for r in run.records] == [phone[:16] for phone in keyed]
    assert [o["phoneno"] for o in run.records_of("testers_observations")] == [
        phone[:16] for phone in keyed
    ]
    assert not any(phone in run.stdout for phone in clear)
    assert "testers_observations uses the stream map given for testers" in run.stderr


def test_an_own_stream_map_for_observations_is_kept():
    own = {"testers": {"phoneno": MAP}, "testers_observations": {"phoneno": "__NULL__"}}
    assert with_inherited_stream_map(own) is own
    assert with_inherited_stream_map({}) == {}


def test_an_inherited_map_keeps_the_run_fields_and_not_the_alias_or_keys():
    testers = {
        "__alias__": "devices",
        "__source__": "testers",
        "__key_properties__": ["id"],
        "__filter__": "status == 'ACTIVE'",
        "__else__": None,
        "id": "id",
        "phoneno": MAP,
    }
    inherited = with_inherited_stream_map({"testers": testers})["testers_observations"]

    assert inherited == {
        "__filter__": "status == 'ACTIVE'",
        "__else__": None,
        "id": "id",
        "phoneno": MAP,
        **{field: field for field in RUN_FIELDS},
    }
    assert with_inherited_stream_map({"testers": None}) == {
        "testers": None,
        "testers_observations": None,
    }
    without_else = with_inherited_stream_map({"testers": {"phoneno": MAP}})
    assert without_else["testers_observations"] == {"phoneno": MAP}


def test_an_observation_is_the_tester_with_its_run_agent_place_and_arrival():
    batch = AgentTesters("48901", [{"id": "a", "agent_no": "48901"}, {"id": "b", "agent_no": "x"}])
    run = RunSummary()

    observed = observations(batch, run)

    assert observed == [
        {
            "run_id": run.run_id,
            "run_started_at": run.started_at,
            "synced_agent_no": "48901",
            "position": place,
            "received_at": batch.extracted_at,
            **tester,
        }
        for place, tester in enumerate(batch.records)
    ]
    assert [list(o)[:5] for o in observed] == [list(RUN_FIELDS)] * 2


VARIED_TESTERS = [
    {"id": "a", "agent_no": "48901", "phoneno": "919900000001", "created_date": 1769708507204},
    {"id": 17, "agent_no": "48901", "phoneno": None, "status": None, "carrierid": "404"},
    {"id": "ünï-☃", "agent_no": "48901", "status": 'say "hi"\\ \n\u2028 \U0001f600'},
    {"id": "d", "agent_no": "48901", "tags": ["new", {"nested": None}], "carrierid": "x"},
    {"id": "e", "agent_no": "", "override_dcs_check": "TRUE", "created_date": None},
    {"id": "f", "agent_no": "48901", "created_date": 10**18, "test_status": "ACCEPTED"},
    {"id": "g", "agent_no": "48901", "phoneno": "+44 7700 900123"},
]
"""Testers the API might send: unicode, escapes, nulls, coerced values and drift."""


class _Stdout:
    """A stand-in for ``sys.stdout`` that keeps what is written to its buffer."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def flush(self) -> None:
        """Nothing to flush: the bytes stay in ``buffer``."""


@pytest.mark.parametrize("phones", [None, PhoneHasher("Splice-KEY-0123456789")])
@pytest.mark.parametrize("kept", [True, False], ids=["lines-kept", "encoded-again"])
def test_observations_spliced_from_the_tester_lines_equal_those_encoded_anew(
    phones, kept, monkeypatch
):
    # Chunks of 3 lines: positions must carry on from one chunk to the next.
    monkeypatch.setattr(output, "LINES_PER_WRITE", 3)
    # A very large agent's lines are encoded again for its observations.
    monkeypatch.setattr(output, "LINES_KEPT", len(VARIED_TESTERS) if kept else 2)
    batch = build_records("48901", [dict(tester) for tester in VARIED_TESTERS], phones, KEEP)
    run = RunSummary()
    stdout = _Stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    writer = SingerOutput()

    writer.write_records("testers", lines_of(batch), batch.extracted_at)
    fields = {"run_id": run.run_id, "run_started_at": run.started_at, "synced_agent_no": "48901"}
    writer.write_observations("testers_observations", lines_of(batch), fields, batch.extracted_at)
    writer.flush()

    encoded_anew = [
        {
            "type": "RECORD",
            "stream": stream,
            "record": record,
            "time_extracted": batch.extracted_at,
        }
        for stream, records in (
            ("testers", batch.records),
            ("testers_observations", observations(batch, run)),
        )
        for record in records
    ]
    sent = stdout.buffer.getvalue()
    assert [json.loads(line) for line in sent.splitlines()] == encoded_anew
    assert sent == b"".join(msgspec.json.encode(m) + b"\n" for m in encoded_anew)
    assert "drifted_fields" in batch.records[3]
    assert batch.records[1]["phoneno"] is None
    assert (batch.lines is not None) is kept


def _sync_in_process(config: dict, capfd) -> list[dict]:
    TapKaleyraRcs(config=config).sync_all()
    return [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.strip()]


def _spy(method, calls: list[str]):
    def spy(self, stream, *args):
        calls.append(stream)
        method(self, stream, *args)

    return spy


def test_in_process_each_agent_is_observed_once_right_after_its_testers(
    sandbox, capfd, monkeypatch
):
    api = sandbox({"agents": 2, "testers_per_agent": 3})
    direct = []
    for method in ("write_records", "write_observations"):
        monkeypatch.setattr(SingerOutput, method, _spy(getattr(SingerOutput, method), direct))

    messages = _sync_in_process(api.config(emit_activate_version_messages=True), capfd)

    streams = [m.get("stream") for m in messages if m["type"] in {"RECORD", "SCHEMA"}]
    assert streams[:9] == ["testers"] * 4 + ["testers_observations"] * 4 + ["testers"]
    observed = [m for m in messages if m.get("stream") == "testers_observations"]
    assert [m["type"] for m in observed] == ["SCHEMA"] + ["RECORD"] * 6
    assert not any("version" in m for m in observed)
    activated = [m["stream"] for m in messages if m["type"] == "ACTIVATE_VERSION"]
    assert activated == ["testers"]
    assert direct == ["testers", "testers_observations"] * 2, "both on the direct path"
    for message in observed[1:]:
        assert message["time_extracted"] == message["record"]["received_at"]
    records = [m for m in messages if m["type"] == "RECORD"]
    (run,) = [m["record"] for m in records if m["stream"] == "testers_sync_runs"]
    agents = [m["record"] for m in records if m["stream"] == "testers_sync_run_agents"]
    assert [(a["run_id"], a["agent_no"]) for a in agents] == [
        (run["run_id"], "48900"),
        (run["run_id"], "48901"),
    ]


def test_in_process_a_map_on_testers_sends_observations_through_the_sdk(sandbox, capfd):
    api = sandbox({"agents": 1, "testers_per_agent": 2})
    config = api.config(stream_maps={"testers": {"phoneno": "__NULL__"}})

    messages = _sync_in_process(config, capfd)

    observed = [
        m["record"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "testers_observations"
    ]
    assert len(observed) == 2
    assert all("phoneno" not in record for record in observed)
    assert all(set(RUN_FIELDS) <= set(record) for record in observed)


def test_on_the_sdks_path_an_agents_records_go_out_together_not_one_write_each(
    sandbox, capfd, monkeypatch
):
    api = sandbox({"agents": 2, "testers_per_agent": 5})
    config = api.config(stream_maps={"testers": {"phoneno": "__NULL__"}})
    writes: list[bytes] = []
    write_all = output._write_all

    def counted(out, data: bytes) -> None:
        writes.append(bytes(data))
        write_all(out, data)

    monkeypatch.setattr(output, "_write_all", counted)

    messages = _sync_in_process(config, capfd)

    records = [m for m in messages if m["type"] == "RECORD"]
    assert len(records) == 2 * 5 * 2 + 3, "testers, observations, run records"
    streams = (b'"stream":"testers",', b'"stream":"testers_observations",')
    with_records = [w for w in writes if any(b'"type":"RECORD",' + s in w for s in streams)]
    assert len(with_records) <= 2 * 2, "at most one write an agent for each stream"


def test_what_was_written_before_a_failure_inside_an_agent_still_goes_out(monkeypatch):
    stdout = _Stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    writer = SingerOutput()

    def fail_inside_an_agent() -> None:
        with writer.whole():
            writer.write_lines(b'{"type":"RECORD"}\n')
            raise ValueError("map failed")

    with pytest.raises(ValueError, match="map failed"):
        fail_inside_an_agent()

    assert stdout.buffer.getvalue() == b'{"type":"RECORD"}\n'
