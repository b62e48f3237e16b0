"""Make every connection attempt fail, so a probe can never reach a cloud service."""

from __future__ import annotations

import socket


class NetworkForbidden(RuntimeError):
    """A probe tried to open a network connection."""


def forbid_network() -> None:
    """Replace the socket calls that open connections with ones that raise."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkForbidden(f"network access attempted: {args!r} {kwargs!r}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign,assignment]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]
