"""Energy drift of a run: the slope of the conserved energy, the NVE quality measure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..errors import InputError


@dataclass(frozen=True)
class EnergyDrift:
    """Least-squares slope of the conserved energy.

    Attributes
    ----------
    eV_per_ps : float
        Drift of the whole system, eV/ps.
    eV_per_ps_per_atom : float
    hartree_per_ps_per_atom : float
        The figure usually quoted for QM/MM (e.g. below 1e-5 Eh/ps/atom is good).
    fluctuation_eV : float
        Standard deviation of the conserved energy about the fitted line, eV.
    """

    eV_per_ps: float
    eV_per_ps_per_atom: float
    hartree_per_ps_per_atom: float
    fluctuation_eV: float


def energy_drift(time_fs=None, conserved_eV=None, *, n_atoms: int, thermo=None) -> EnergyDrift:
    """Drift of the conserved energy, from arrays or from a ``thermo.csv`` written by `qmml.ThermoLog`.

    Parameters
    ----------
    time_fs, conserved_eV : array_like, optional
        Times (fs) and conserved energies (eV); or give ``thermo``.
    n_atoms : int
    thermo : path, optional
        A thermo CSV with ``time_fs`` and ``conserved_eV`` columns.
    """
    if thermo is not None:
        path = Path(thermo)
        if not path.is_file():
            raise InputError(f"{path}: no such thermo file")
        table = np.genfromtxt(path, delimiter=",", names=True)
        if "time_fs" not in table.dtype.names or "conserved_eV" not in table.dtype.names:
            raise InputError(f"{path}: needs the columns time_fs and conserved_eV (a qmml ThermoLog CSV)")
        time_fs, conserved_eV = table["time_fs"], table["conserved_eV"]
    t = np.asarray(time_fs, dtype=float) / units.FS_PER_PS
    e = np.asarray(conserved_eV, dtype=float)
    if len(t) < 3 or len(t) != len(e):
        raise InputError(f"energy_drift needs matching time and energy series of at least 3 points (got {len(t)}, {len(e)})")
    slope, intercept = np.polyfit(t, e, 1)
    residual = e - (slope * t + intercept)
    per_atom = slope / n_atoms
    return EnergyDrift(float(slope), float(per_atom), float(per_atom / units.HARTREE_EV), float(residual.std()))
