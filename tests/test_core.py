"""The Meltano SDK's standard tap tests, run against a sandbox over real HTTP."""

from __future__ import annotations

from singer_sdk.testing import get_tap_test_class

from tap_kaleyra_rcs.tap import TapKaleyraRcs
from tests.support import RunningSandbox

# The standard suite needs its config when the class is built, at collection.
# This sandbox lives on a daemon thread for the whole test session.
# One agent's testers carry a field the schema lacks, so every record stream
# has a drifted_fields value for the suite to find (and the suite runs on drift).
_SANDBOX = RunningSandbox(
    {
        "agents": 4,
        "testers_per_agent": 25,
        "agent_overrides": {"48903": {"extra_fields": {"brand_id": "b-1"}}},
    }
)

TestTapKaleyraRcs = get_tap_test_class(
    tap_class=TapKaleyraRcs,
    config=_SANDBOX.config(),
)
