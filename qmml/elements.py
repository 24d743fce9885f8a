"""Per-element data: atomic numbers, masses, valences and bond lengths.

Masses are IUPAC standard atomic weights as tabulated by PySCF.  Bond lengths
(Å) are typical equilibrium single-bond lengths (CRC Handbook / force-field
averages); they define the link-atom scale factor g = d(Q1-H) / d(Q1-M1).
"""

from __future__ import annotations

import numpy as np
from pyscf.data import elements as _pyscf_elements
from pyscf.data import radii as _pyscf_radii

from .units import BOHR_A

SYMBOLS: tuple[str, ...] = tuple(_pyscf_elements.ELEMENTS[1:])
ATOMIC_NUMBERS: dict[str, int] = {s: i + 1 for i, s in enumerate(SYMBOLS)}
MASSES_AMU: dict[str, float] = {s: float(_pyscf_elements.MASSES[i + 1]) for i, s in enumerate(SYMBOLS)}

#: Usual maximum number of covalent partners of a neutral atom; an atom with fewer
#: bonded neighbours than this takes part in a multiple or aromatic bond.
SATURATED_VALENCE: dict[str, int] = {"C": 4, "N": 3, "O": 2, "S": 2, "Si": 4, "P": 3, "B": 3}

#: Typical single-bond equilibrium lengths in Å, keyed by the sorted element pair.
_BOND_LENGTHS_A: dict[tuple[str, str], float] = {
    ("C", "H"): 1.090, ("H", "N"): 1.010, ("H", "O"): 0.960, ("H", "S"): 1.336,
    ("H", "Si"): 1.480, ("H", "P"): 1.420, ("B", "H"): 1.190,
    ("C", "C"): 1.526, ("C", "N"): 1.470, ("C", "O"): 1.430, ("C", "S"): 1.820,
    ("C", "Si"): 1.870, ("C", "P"): 1.840, ("N", "N"): 1.450, ("N", "O"): 1.400,
    ("O", "O"): 1.480, ("O", "P"): 1.610, ("O", "S"): 1.570, ("S", "S"): 2.050,
    ("O", "Si"): 1.630,
}


def covalent_radius_A(atomic_numbers) -> np.ndarray:
    """Covalent radius of each atom (PySCF's table), Å."""
    return _pyscf_radii.COVALENT[np.asarray(atomic_numbers, dtype=np.int64)] * BOHR_A


def normalize_symbol(symbol: str) -> str:
    """Return the canonical capitalization of an element symbol ("CL" -> "Cl").

    Raises
    ------
    ValueError
        If the symbol is not an element.
    """
    s = str(symbol).strip()
    canonical = s[:1].upper() + s[1:].lower()
    if canonical not in ATOMIC_NUMBERS:
        raise ValueError(f"unknown element symbol {symbol!r}")
    return canonical


def bond_length_A(a: str, b: str) -> float:
    """Typical single-bond length between elements ``a`` and ``b`` in Å.

    Raises
    ------
    KeyError
        If the pair is not tabulated.
    """
    key = tuple(sorted((a, b)))
    if key not in _BOND_LENGTHS_A:
        raise KeyError(f"no tabulated {a}-{b} bond length")
    return _BOND_LENGTHS_A[key]
