"""The quantum region: PySCF engine and embedding integrals."""

from .engine import PySCFEngine, QMResult

__all__ = ["PySCFEngine", "QMResult"]
