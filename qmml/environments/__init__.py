"""What the QM region is embedded in: fixed charges, a force field (`mm`), an ML model (`ml`), an ML shell in a
force field (`layered`)."""

from .base import Environment, EnvironmentEvaluation
from .fixed_charges import FixedCharges
from .mm import MMEnvironment

__all__ = ["Environment", "EnvironmentEvaluation", "FixedCharges", "MMEnvironment"]
