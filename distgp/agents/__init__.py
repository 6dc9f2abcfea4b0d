"""Agents (a private shard and the local solver) and the backends that carry their messages."""

from distgp.agents.agent import Agent, AgentSettings, SolveReply, StepReply
from distgp.agents.backends import AgentFailure, Backend, InlineBackend, RayBackend, make_backend

__all__ = [
    "Agent",
    "AgentFailure",
    "AgentSettings",
    "Backend",
    "InlineBackend",
    "RayBackend",
    "SolveReply",
    "StepReply",
    "make_backend",
]
