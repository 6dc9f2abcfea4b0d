"""Sharding training points over agents, and digests that tell whether a shard changed."""

from __future__ import annotations

import numpy as np

from distgp.exceptions import InputDataError

SHARD_METHODS = ("random", "contiguous")


def shard_indices(
    n: int, agents: int, method: str = "random", groups: np.ndarray | None = None, seed: int = 0
) -> list[np.ndarray]:
    """Split ``n`` training points over ``agents`` shards; each shard gets at least 2 points.

    Args:
        method: ``random`` (default; a seeded permutation), ``contiguous`` (consecutive blocks, as
            the paper) or ``column`` (one shard per distinct value of ``groups``, e.g. a site id;
            with more sites than agents, sites are dealt to agents round-robin).
    """
    if agents < 1:
        raise InputDataError(f"agents must be at least 1, got {agents}")
    if method == "column":
        if groups is None:
            raise InputDataError("sharding by column needs a CSV with that column")
        labels = site_labels(groups)
        if len(labels) < agents:
            raise InputDataError(
                f"the shard column has {len(labels)} distinct value(s) but {agents} agents were "
                f"asked for; use at most {len(labels)} agents"
            )
        shards = [np.flatnonzero(np.isin(groups, labels[a::agents])) for a in range(agents)]
    elif method in SHARD_METHODS:
        if 2 * agents > n:
            raise InputDataError(
                f"{agents} agents need at least {2 * agents} training points (2 each), "
                f"but there are {n}; use at most {n // 2} agents"
            )
        order = (
            np.arange(n) if method == "contiguous" else np.random.default_rng(seed).permutation(n)
        )
        shards = [np.sort(part) for part in np.array_split(order, agents)]
    else:
        raise InputDataError(
            f"unknown shard method {method!r}; use random, contiguous or column:NAME"
        )
    small = [i for i, s in enumerate(shards) if len(s) < 2]
    if small and method == "column":
        raise InputDataError(
            f"shard of agent {small[0]} (site {agent_sites(groups, agents, small[0])}) holds "
            "fewer than 2 points; use fewer agents (sites are pooled), or drop that site's rows"
        )
    if small:
        raise InputDataError(f"shard(s) {small} hold fewer than 2 points; use fewer agents")
    return shards


def site_labels(groups: np.ndarray) -> list:
    """The distinct values of a shard column, in order of first appearance (agent ``a`` of
    ``N`` gets sites ``a, a + N, ...``)."""
    return list(dict.fromkeys(np.asarray(groups).tolist()))


def agent_sites(groups: np.ndarray, agents: int, agent: int) -> str:
    """The sites dealt to ``agent`` of ``agents`` (:func:`shard_indices`), for messages."""
    return ", ".join(map(str, site_labels(groups)[agent::agents]))


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 (hex) of the float64 values of ``arrays``, in order: one-way, it reveals no
    value, and tells whether data changed."""
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, float).tobytes())
    return digest.hexdigest()
