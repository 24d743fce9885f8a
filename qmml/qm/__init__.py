"""The quantum region: PySCF engine and embedding integrals."""

from .engine import PySCFEngine, QMResult
from .potential import QMPotential, QMPotentialResult

__all__ = ["PySCFEngine", "QMResult", "QMPotential", "QMPotentialResult"]
