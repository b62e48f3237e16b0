"""The practical floor: a minimal hand-written extractor with requests and json.

    python benchmarks/handwritten_loop.py CONFIG_JSON > out.singer

One request per agent, one Singer RECORD line per tester, written with the
standard library's json; no schema checks, no retries, no state. The benchmark
compares the tap against it.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import requests


def main() -> int:
    config = json.load(open(sys.argv[1], encoding="utf-8"))  # noqa: SIM115, PTH123
    url = f"{config['base_url']}/v1/{config['sid']}/rcs/agenttester/testersbyagent"
    headers = {"api-key": config["api_key"], "Content-Type": "application/json"}
    out = sys.stdout
    with requests.Session() as session:
        for agent in config["agent_numbers"]:
            response = session.get(url, params={"agent_number": agent}, headers=headers, timeout=30)
            response.raise_for_status()
            now = datetime.now(timezone.utc).isoformat()
            for tester in response.json()["data"]:
                out.write(
                    json.dumps(
                        {
                            "type": "RECORD",
                            "stream": "testers",
                            "record": tester,
                            "time_extracted": now,
                        }
                    )
                )
                out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
