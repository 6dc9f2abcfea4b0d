"""Agents (a private shard and the local solver) and the backends that carry their messages."""

from distgp.agents.agent import Agent, AgentSettings, ShardArrays, ShardFile
from distgp.agents.backends import AgentFailure, Backend, InlineBackend, RayBackend, make_backend

__all__ = [
    "Agent",
    "AgentFailure",
    "AgentSettings",
    "Backend",
    "InlineBackend",
    "RayBackend",
    "ShardArrays",
    "ShardFile",
    "make_backend",
]
