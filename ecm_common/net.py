"""Listening sockets: the one place a port is bound, so every part reports a taken port alike."""

from __future__ import annotations

import socket

from ecm_common.errors import ConfigError


def bind(address: str, port: int, *, option: str | None = None) -> socket.socket:
    """A bound TCP socket on address:port (0: any free port), or one ConfigError naming it."""
    where = f"{option}: " if option else ""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{where}cannot listen on {address}:{port}: {reason}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{where}cannot listen on {address}:{port}: {exc.strerror}") from None
    return sock


def listen(address: str, port: int, *, backlog: int, option: str | None = None) -> socket.socket:
    """A listening socket with the given backlog (see bind)."""
    sock = bind(address, port, option=option)
    sock.listen(backlog)
    return sock


def check_free(address: str, port: int, option: str) -> None:
    """ConfigError when address:port cannot be bound, checked before a run starts anything."""
    if port != 0:
        bind(address, port, option=option).close()
