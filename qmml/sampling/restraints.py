"""Restraints: bias potentials on collective variables, for umbrella sampling, scans and walls.

`Restrained` adds restraints to any potential (a `Hamiltonian`, `MLPotential` or `QMPotential`)
and is itself a potential, so simulations, optimizations and scans use it unchanged.  The bias
energy is part of the returned energy (the conserved quantity of a restrained run includes it);
``result.details["restraint_energy"]`` holds it separately.  Units: eV, Å.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..periodic.cell import volume
from ..potential import PotentialWrapper


class HarmonicRestraint:
    """``E = k/2 (s - centre)^2`` on a collective variable ``s``.

    Parameters
    ----------
    variable : collective variable
        E.g. `qmml.colvars.Distance` or `qmml.colvars.DistanceDifference`.
    centre : float
        Å (for distance-like variables).
    force_constant : float
        ``k`` in eV/Å².  In umbrella sampling the window width is ``sqrt(kT/k)``: 0.13 Å for
        k = 1.5 eV/Å² at 300 K.
    """

    def __init__(self, variable, centre: float, force_constant: float):
        if not np.isfinite(force_constant) or force_constant <= 0:
            raise InputError(f"HarmonicRestraint on {variable!r}: force_constant={force_constant} must be a "
                             "positive number in eV/Å²")
        self.variable, self.centre, self.force_constant = variable, float(centre), float(force_constant)

    def __repr__(self) -> str:
        return f"HarmonicRestraint({self.variable!r}, centre={self.centre:g}, force_constant={self.force_constant:g})"

    def energy(self, value: float) -> float:
        """Bias energy (eV) at a value of the variable; vectorized over arrays of values."""
        return 0.5 * self.force_constant * (np.asarray(value) - self.centre) ** 2

    def compute(self, positions) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/Å, shape (n_atoms, 3)) at ``positions`` (Å)."""
        s = self.variable.value(positions)
        return float(self.energy(s)), -self.force_constant * (s - self.centre) * self.variable.gradient(positions)


class Restrained(PotentialWrapper):
    """A potential plus restraints.

    Parameters
    ----------
    potential : qmml.Potential
        E.g. a `Hamiltonian`, an `MLPotential` or another wrapper.
    restraints : sequence of restraints
        E.g. `HarmonicRestraint`.
    """

    def __init__(self, potential, restraints):
        super().__init__(potential)
        self.restraints = list(restraints)
        if not self.restraints:
            raise InputError("Restrained: no restraints given; use the potential itself")

    def __repr__(self) -> str:
        return f"Restrained({self.potential!r}, {self.restraints!r})"

    def compute(self, positions, *, forces: bool = True, cell=None):
        """The potential's result with the restraints' energy and forces added; ``cell`` (periodic
        potentials) is passed on, and the bias's strain derivative added to the stress."""
        return self._biased(self.potential.compute(positions, forces=forces, cell=cell), positions, forces, cell)

    def compute_copies(self, positions, *, forces: bool = True, cell=None) -> list:
        """The wrapped potential's `compute_copies` (one model call for an `MLPotential`'s beads), each copy with
        the restraints added."""
        results = self.potential.compute_copies(positions, forces=forces, cell=cell)
        return [self._biased(r, x, forces, cell) for r, x in zip(results, positions)]

    def _biased(self, result, positions, forces: bool, cell):
        bias, bias_forces = 0.0, np.zeros(np.shape(positions))
        for restraint in self.restraints:
            e, f = restraint.compute(positions)
            bias += e
            bias_forces += f
        changes = {"energy": result.energy + bias}
        if forces:
            changes["forces"] = result.forces + bias_forces
            if result.stress is not None:
                # the collective variables are functions of the positions alone: dE/d(strain) = -sum F (x) R
                box = cell if cell is not None else self.system.cell
                w = -bias_forces.T @ np.asarray(positions)
                changes["stress"] = result.stress + 0.5 * (w + w.T) / volume(box)
        changes["details"] = {**result.details, "restraint_energy": bias}
        return replace(result, **changes)
