"""`QMPotential`: the QM engine on a whole molecule, as a plain potential (gas-phase references,
scans, optimizations and dynamics with no environment)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError


@dataclass(frozen=True, eq=False)
class QMPotentialResult:
    """Energy (eV) and forces (eV/Å) of the isolated molecule."""

    energy: float
    forces: np.ndarray | None
    scf_cycles: int
    details: dict = field(default_factory=dict)


class QMPotential:
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

    def __repr__(self) -> str:
        return f"QMPotential({self.qm!r}, {self.system.n_atoms} atoms, charge={self.charge:+d})"

    def state(self) -> dict:
        return {"scf_guess": self.qm.history.state()}

    def restore(self, state: dict) -> None:
        if "scf_guess" in state:
            self.qm.history.restore(state["scf_guess"])

    def compute(self, positions, *, forces: bool = True) -> QMPotentialResult:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (self.system.n_atoms, 3):
            raise InputError(f"positions have shape {positions.shape}, expected ({self.system.n_atoms}, 3)")
        r = self.qm.compute(list(self.system.elements), positions, charge=self.charge,
                            multiplicity=self.multiplicity, forces=forces)
        return QMPotentialResult(r.energy, r.forces, r.scf_cycles, {"scf_strategy": r.converged_with})
