"""`QMPotential`: the QM engine on a whole molecule, as a plain potential (gas-phase references,
scans, optimizations and dynamics with no environment)."""

from __future__ import annotations

import copy

import numpy as np

from ..errors import InputError
from ..system import check_finite_positions
from ..potential import Potential, PotentialResult


#: The result of `QMPotential.compute` (the old name of `qmml.PotentialResult` here).
QMPotentialResult = PotentialResult


class QMPotential(Potential):
    """Every atom of ``system`` in the QM engine, in the gas phase.

    Parameters
    ----------
    engine : PySCFEngine
    system : System
    charge : int
        Total charge, e.
    multiplicity : int
    """

    def __init__(self, engine, system, *, charge: int = 0, multiplicity: int = 1):
        if system.n_atoms == 0:
            raise InputError("QMPotential: the system has no atoms")
        self.qm, self.system, self.charge, self.multiplicity = engine, system, int(charge), int(multiplicity)
        self.scf_history = engine.guess_history()
        engine.check_electrons(list(system.elements), system.positions, self.charge, self.multiplicity)

    def __repr__(self) -> str:
        return f"QMPotential({self.qm!r}, {self.system.n_atoms} atoms, charge={self.charge:+d})"

    def state(self) -> dict:
        return {"scf_guess": self.scf_history.state()}

    def restore(self, state: dict) -> None:
        if "scf_guess" in state:
            self.scf_history.restore(state["scf_guess"])

    def replica(self) -> "QMPotential":
        other = copy.copy(self)
        other.scf_history = self.scf_history.copy()
        return other

    def compute(self, positions, *, forces: bool = True, cell=None) -> PotentialResult:
        """Energy (eV) and forces (eV/Å) of the isolated molecule at ``positions`` (Å)."""
        if cell is not None:
            raise InputError("QMPotential is a gas-phase potential: it takes no cell")
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (self.system.n_atoms, 3):
            raise InputError(f"positions have shape {positions.shape}, expected ({self.system.n_atoms}, 3)")
        check_finite_positions(self.system, positions)
        elements = list(self.system.elements)
        key = self.qm.guess_key(elements, self.charge, self.multiplicity)
        r = self.qm.compute(elements, positions, charge=self.charge, multiplicity=self.multiplicity, forces=forces,
                            dm0=self.scf_history.predict(key, positions))
        self.scf_history.push(key, r.density, positions)
        return PotentialResult(energy=r.energy, forces=r.forces, scf_cycles=r.scf_cycles,
                               details={"scf_strategy": r.converged_with})
