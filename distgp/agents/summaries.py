"""What agents report about their shards before learning, gathered by the driver: columns,
date units and aggregate statistics (:class:`~distgp.data.ShardSummary`), never a data point."""

from __future__ import annotations

from typing import Any

from distgp.agents.backends import AgentFailure, Backend
from distgp.data import ShardSummary
from distgp.exceptions import BackendError, InputDataError


def answered(replies: dict[int, Any]) -> dict[int, Any]:
    """Results of a call every agent must answer (set-up, evaluation)."""
    failed = [r for r in replies.values() if isinstance(r, AgentFailure)]
    if failed:
        f = failed[0]
        raise BackendError(
            f"agent {f.agent} failed during set-up or evaluation ({f.reason}: {f.detail})"
        )
    return replies


def gather_summaries(backend: Backend, min_points: int) -> tuple[dict[int, dict], ShardSummary]:
    """Every agent's summary and their merge. A shard with the lowest agent's input columns in
    another order is asked to take them in that order (shard files are matched to each other
    by column name, as ``--test`` files and ``distgp predict`` inputs are to the training
    data), and one whose dates are counted in a coarser unit than another's (a weekly site
    beside a daily one) to count them in the finest."""
    replies = answered(backend.broadcast("summary", min_points))
    first = list(replies[min(replies)]["columns"])
    units = finest_units([r["time_units"] for r in replies.values()])
    asked = {
        j: (min_points, first, units)
        for j, r in replies.items()
        if sorted(r["columns"]) == sorted(first)
        and (list(r["columns"]) != first or _in_other_units(r["time_units"], units))
    }
    if asked:
        replies.update(answered(backend.call("summary", asked)))
    return replies, merge_summaries(replies)


def shard_view(summary: dict) -> dict:
    """How the run holds an agent's shard, from its summary: what a rebuilt agent is set up
    with (:meth:`distgp.agents.agent.Agent.setup`), so that it takes its file as the run did
    and refuses one that changed."""
    return {k: summary[k] for k in ("columns", "time_units", "digest")}


def finest_units(units: list[dict[str, str]]) -> dict[str, str]:
    """Per date column, the finest of the shards' units (days before weeks before months)."""
    from distgp.calendar import UNITS

    finest: dict[str, str] = {}
    for read in units:
        for column, unit in read.items():
            known = finest.get(column)
            if known is None or UNITS.index(unit) > UNITS.index(known):
                finest[column] = unit
    return finest


def _in_other_units(read: dict[str, str], units: dict[str, str]) -> bool:
    return any(unit != units[column] for column, unit in read.items())


def merge_summaries(replies: dict[int, dict]) -> ShardSummary:
    """Merge the agents' summaries; shards must have the same columns, in the same order."""
    columns = {j: list(r["columns"]) for j, r in replies.items()}
    first = columns[min(columns)]
    for j, names in sorted(columns.items()):
        if names != first:
            raise InputDataError(
                f"shard of agent {j} has columns {', '.join(names)} but agent {min(columns)}'s "
                f"has {', '.join(first)}; every shard needs the same input columns"
            )
    units = {j: r["time_units"] for j, r in replies.items()}
    lowest = min(units)
    for j, read in sorted(units.items()):
        for column in first:
            mine, theirs = read.get(column), units[lowest].get(column)
            if mine == theirs:
                continue
            if mine is None or theirs is None:
                raise InputDataError(
                    f"column {column} holds {'numbers' if mine is None else 'dates'} in the "
                    f"shard of agent {j} but {'numbers' if theirs is None else 'dates'} in "
                    f"agent {lowest}'s; write it the same way in every shard"
                )
            raise InputDataError(  # gather_summaries asks every shard for the finest unit
                f"the dates of column {column} are counted in {mine}s in the shard of agent "
                f"{j} but in {theirs}s in agent {lowest}'s"
            )
    return ShardSummary.merge([ShardSummary.from_wire(replies[j]) for j in sorted(replies)])
