"""Consensus layer: stochastic quantiser with bit accounting and the ADMM coordinator (no Ray)."""

from distgp.consensus.admm import ADMMCoordinator, ADMMOptions, RoundRecord
from distgp.consensus.quantizer import Quantizer, float_bits

__all__ = ["ADMMCoordinator", "ADMMOptions", "Quantizer", "RoundRecord", "float_bits"]
