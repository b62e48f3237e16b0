"""Draw docs/performance.png from the latency sweep's points; run in .venv-chart.

    .venv-chart/bin/python benchmarks/chart.py POINTS_JSON OUT_PNG

POINTS_JSON is a list of {"latency_ms", "concurrency", "points": [[agents, seconds], ...]}.
matplotlib lives in its own environment (requirements/chart.txt) so that the
benchmarks run in the test environment, which holds only what a tap install
holds besides the tools: numpy there would change what the SDK imports.
"""

from __future__ import annotations

import json
import sys

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    lines = json.loads(open(sys.argv[1], encoding="utf-8").read())  # noqa: PTH123, SIM115
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for line in lines:
        xs, ys = zip(*sorted(line["points"]), strict=True)
        axes.plot(
            xs, ys, marker="o", label=f"{line['latency_ms']} ms, concurrency {line['concurrency']}"
        )
    axes.set_xlabel("agents")
    axes.set_ylabel("wall time (s)")
    axes.set_title("tap-kaleyra-rcs: wall time against agent count")
    axes.grid(visible=True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
