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


class ShellBoundaryRestraint:
    """A flat-bottomed wall that keeps the ML shell's small molecules in and the MM layer's out (FIRES-like).

    The three-layer partition fixes which molecules the ML model describes; a shell water that wandered into the
    bulk would carry the model's description with it.  Each whole small molecule (a water, an ion: at most
    ``max_atoms`` atoms) of the shell is kept within ``radius_A`` of the QM region, each of the MM layer beyond
    it: E = k/2 (r - R)^2 for a shell molecule with r > R, k/2 (R - r)^2 for an MM molecule with r < R.  r is
    the molecule's distance from the QM atoms as a smooth minimum over its atoms and the QM atoms,
    r = -s ln sum exp(-r_ij / s) with s = ``softness_A`` (minimum image in a box), the distance that
    ``shell_radius_A`` selects by.  A flat bottom and a fixed membership: nothing changes discontinuously
    (Rowley & Roux, J. Chem. Theory Comput. 8, 3526 (2012) move R with the farthest inner molecule instead).

    Parameters
    ----------
    partition : Partition
        A three-layer partition (``partition(..., shell=...)``).
    force_constant : float
        k, eV/Å².
    radius_A : float, optional
        R, Å; default halfway between the farthest shell molecule and the nearest MM molecule at the partition's
        positions (an error when they overlap: then give it).
    max_atoms : int
        Molecules with at most this many atoms are restrained (waters, ions; not the protein).
    softness_A : float
        s of the smooth minimum, Å.
    """

    def __init__(self, partition, force_constant: float = 10.0, radius_A: float | None = None, max_atoms: int = 3,
                 softness_A: float = 0.1):
        if partition.shell is None:
            raise InputError("ShellBoundaryRestraint needs a three-layer partition: partition(..., shell= or "
                             "shell_radius_A=)")
        if not np.isfinite(force_constant) or force_constant <= 0:
            raise InputError(f"ShellBoundaryRestraint: force_constant={force_constant} must be a positive number "
                             "in eV/Å²")
        system = partition.system
        molecules = system.molecule_index
        small = np.bincount(molecules)[molecules] <= max_atoms
        inner = np.flatnonzero(small & np.isin(np.arange(system.n_atoms), partition.shell_atoms))
        outer = np.flatnonzero(small & np.isin(np.arange(system.n_atoms), partition.mm_atoms))
        self.atoms = np.r_[inner, outer]
        _, self.molecule = np.unique(molecules[self.atoms], return_inverse=True)
        self.n_molecules = int(self.molecule.max()) + 1 if len(self.atoms) else 0
        self.inner_molecule = np.zeros(self.n_molecules, dtype=bool)
        self.inner_molecule[self.molecule[:len(inner)]] = True
        self.qm_atoms, self.cell = partition.qm_atoms, system.cell
        self.force_constant, self.softness_A = float(force_constant), float(softness_A)
        if radius_A is None:
            r = self._distances(system.positions)[0]
            r_in, r_out = r[self.inner_molecule], r[~self.inner_molecule]
            if len(r_in) == 0 or len(r_out) == 0 or r_in.max() >= r_out.min():
                raise InputError("ShellBoundaryRestraint: no radius separates the shell's small molecules from the "
                                 "MM layer's at these positions (choose the shell by shell_radius_A, or give "
                                 "radius_A)")
            radius_A = 0.5 * (r_in.max() + r_out.min())
        self.radius_A = float(radius_A)

    def __repr__(self) -> str:
        return (f"ShellBoundaryRestraint({int(self.inner_molecule.sum())} shell and "
                f"{int((~self.inner_molecule).sum())} MM molecules, R={self.radius_A:.2f} Å, "
                f"k={self.force_constant:g} eV/Å²)")

    def _distances(self, positions):
        """Smooth-minimum distance of every molecule (Å) and its derivative weights over the atom pairs."""
        from ..periodic.cell import minimum_image

        x = np.asarray(positions, dtype=np.float64)
        d = minimum_image(x[self.atoms][:, None, :] - x[self.qm_atoms][None, :, :], self.cell)
        r = np.linalg.norm(d, axis=2)
        s = self.softness_A
        shift = np.full(self.n_molecules, np.inf)
        np.minimum.at(shift, self.molecule, r.min(axis=1))
        w = np.exp(-(r - shift[self.molecule][:, None]) / s)
        total = np.zeros(self.n_molecules)
        np.add.at(total, self.molecule, w.sum(axis=1))
        distance = shift - s * np.log(total)
        weights = w / total[self.molecule][:, None]  # d(distance)/d(r_ij)
        return distance, d, r, weights

    def compute(self, positions) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/Å, shape (n_atoms, 3)) at ``positions`` (Å)."""
        distance, d, r, weights = self._distances(positions)
        stretch = np.where(self.inner_molecule, np.maximum(distance - self.radius_A, 0.0),
                           np.minimum(distance - self.radius_A, 0.0))
        energy = 0.5 * self.force_constant * float(np.sum(stretch ** 2))
        # dE/dx_a = k stretch_m sum_j w_aj (x_a - x_j) / r_aj for atom a of molecule m
        coef = (self.force_constant * stretch[self.molecule])[:, None] * weights / r
        pair = coef[:, :, None] * d
        forces = np.zeros(np.shape(positions))
        forces[self.atoms] -= pair.sum(axis=1)
        np.add.at(forces, self.qm_atoms, pair.sum(axis=0))
        return energy, forces


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
