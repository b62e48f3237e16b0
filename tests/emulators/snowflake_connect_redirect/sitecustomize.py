"""Send target-snowflake's connections to the local fakesnow server.

On ``PYTHONPATH`` only where the Snowflake tests run the loader themselves.
target-snowflake builds its connection URL from ``account`` alone, and
snowflake-sqlalchemy accepts no host, port or protocol, so nothing in its
configuration can point it at 127.0.0.1. When ``FAKESNOW_PORT`` is set, every
``SnowflakeConnection`` goes to ``http://127.0.0.1:FAKESNOW_PORT`` instead, with
timeouts: a fakesnow HTTP 500 is otherwise retried for ever. The loader's own
code does everything else. In a process without the connector this does nothing.
"""

from __future__ import annotations

import functools
import os
import typing as t

PORT = os.environ.get("FAKESNOW_PORT", "")
NETWORK_TIMEOUT = 60


def _redirect() -> None:
    try:
        from snowflake.connector.connection import SnowflakeConnection  # noqa: PLC0415 - only where the connector is
    except ImportError:
        return
    original = SnowflakeConnection.__init__

    @functools.wraps(original)
    def to_fakesnow(self: SnowflakeConnection, *args: t.Any, **kwargs: t.Any) -> None:
        kwargs.update(host="127.0.0.1", port=int(PORT), protocol="http")
        for timeout in ("login_timeout", "network_timeout", "socket_timeout"):
            kwargs.setdefault(timeout, NETWORK_TIMEOUT)
        original(self, *args, **kwargs)

    SnowflakeConnection.__init__ = to_fakesnow  # type: ignore[method-assign]


if PORT:
    _redirect()
