"""Fixtures shared by the test modules."""

from __future__ import annotations

import typing as t

import pytest

from tests.support import RunningSandbox


@pytest.fixture
def sandbox() -> t.Iterator[t.Callable[..., RunningSandbox]]:
    """Start sandboxes with a given scenario; all are stopped after the test."""
    started: list[RunningSandbox] = []

    def start(spec: dict[str, t.Any] | None = None) -> RunningSandbox:
        running = RunningSandbox(spec)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
