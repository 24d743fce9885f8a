"""Collective variables: functions of the atom positions that restraints bias and analyses follow.

Each variable has ``value(positions)`` (Å) and ``gradient(positions)`` (dimensionless, shape
(n_atoms, 3)), and a ``name`` used as the column label of `qmml.md.CollectiveVariableLog`.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def _atom_index(i, name: str) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or i < 0:
        raise InputError(f"{name}: atom index {i!r} must be a non-negative integer (0-based)")
    return int(i)


class Distance:
    """Distance between atoms ``i`` and ``j`` (0-based), Å.

    Parameters
    ----------
    i, j : int
        Atom indices (0-based).
    name : str, optional
        Column name in logs (default ``d_i_j``).
    """

    def __init__(self, i: int, j: int, name: str | None = None):
        self.i, self.j = _atom_index(i, "Distance"), _atom_index(j, "Distance")
        if self.i == self.j:
            raise InputError(f"Distance: both atoms are {i}; give two different atoms")
        self.name = name or f"d_{self.i}_{self.j}"

    def __repr__(self) -> str:
        return f"Distance({self.i}, {self.j})"

    def _vector(self, positions):
        x = np.asarray(positions, dtype=np.float64)
        if max(self.i, self.j) >= len(x):
            raise InputError(f"{self!r}: the system has only {len(x)} atoms")
        return x[self.i] - x[self.j]

    def value(self, positions) -> float:
        return float(np.linalg.norm(self._vector(positions)))

    def gradient(self, positions) -> np.ndarray:
        r = self._vector(positions)
        unit = r / np.linalg.norm(r)
        out = np.zeros(np.shape(positions))
        out[self.i] += unit
        out[self.j] -= unit
        return out


class DistanceDifference:
    """``d(a) - d(b)`` for two `Distance` pairs, Å: the usual SN2 or proton-transfer coordinate.

    Parameters
    ----------
    name : str, optional
        Column name in logs.
    first, second : tuple of two ints
        Atom pairs (0-based).  For Cl(a)- + CH3-Cl(b), ``first=(C, Cl_a)`` and ``second=(C, Cl_b)``
        give a coordinate that is positive in the reactant complex, 0 at a symmetric transition
        state and negative in the product.
    """

    def __init__(self, first, second, name: str | None = None):
        self.first, self.second = Distance(*first), Distance(*second)
        self.name = name or f"{self.first.name}-{self.second.name}"

    def __repr__(self) -> str:
        return f"DistanceDifference({(self.first.i, self.first.j)}, {(self.second.i, self.second.j)})"

    def value(self, positions) -> float:
        return self.first.value(positions) - self.second.value(positions)

    def gradient(self, positions) -> np.ndarray:
        return self.first.gradient(positions) - self.second.gradient(positions)
