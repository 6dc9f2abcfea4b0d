"""Consensus ADMM with agent-held duals, differential quantisation and the wire encoding."""

from distgp.consensus.admm import ADMMCoordinator, ADMMOptions, RoundRecord
from distgp.consensus.quantizer import DeltaCoder
from distgp.consensus.wire import Packed, decode, encode

__all__ = [
    "ADMMCoordinator",
    "ADMMOptions",
    "DeltaCoder",
    "Packed",
    "RoundRecord",
    "decode",
    "encode",
]
