"""Fail fast on a Ray address that cannot work, instead of Ray's minutes of retries."""

from __future__ import annotations

import socket

from distgp.exceptions import BackendError, ConfigError

CONNECT_TIMEOUT = 3.0  # seconds


def check_ray_address(
    address: str | None,
    timeout: float = CONNECT_TIMEOUT,
    setting: str = "backend.address",
    fix: str | None = None,
) -> None:
    """Check that ``address`` is well formed and, for ``HOST:PORT``, that something listens there.

    ``setting`` is the key the error names (``agents.address`` for ``distgp optimize``); ``fix``
    replaces the remedy an unreachable address's error ends with.

    ``None``, ``auto`` and ``local`` are left to Ray (``auto`` fails quickly by itself when no
    cluster was started on this machine).
    """
    if address is None or address in ("auto", "local"):
        return
    if address.startswith(("http://", "https://")):
        raise ConfigError(
            f"{address} is a dashboard/Jobs address; give the cluster address HOST:PORT (GCS port, "
            "6379 by default) or use 'ray job submit' to run on the cluster"
        )
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"Ray address {address!r} is not HOST:PORT, ray://HOST:PORT, auto or local"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        fix = fix or f"start it with 'ray start --head' or check the address ({setting})"
        raise BackendError(f"cannot reach the Ray cluster at {address} ({reason}); {fix}") from None
