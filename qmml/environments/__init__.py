"""Environment descriptions: fixed charges now, machine-learned models in `qmml.ml`."""

from .base import Environment, EnvironmentEvaluation
from .fixed_charges import FixedCharges

__all__ = ["Environment", "EnvironmentEvaluation", "FixedCharges"]
