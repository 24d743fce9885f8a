"""`MMEnvironment`: a classical force field (OpenMM) as the environment, or as the outer layer of three.

Two layers (QM/MM): E = E_QM[rho; Q + L in the field of the MM charges] + E_MM(environment) + E_vdW(QM, MM).
The MM energy leaves out every term among the QM atoms and their charges and Lennard-Jones (they need no
parameters, `qmml.mm.forcefield`); bonded terms across a cut bond stay.  Three layers: the MM energy
also leaves out every interaction inside the ML shell, and between the shell and the QM region in the
subtractive scheme (`MMEnvironment.inner_regions`, `qmml.environments.layered`).

The MM charges are fixed, so they have no charge response; the MM atoms' charges embed the QM region.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Environment, EnvironmentEvaluation


class MMEnvironment(Environment):
    """The MM layer: energy, forces and charges from an `qmml.mm.MMForceField`.

    Parameters
    ----------
    forcefield : qmml.mm.MMForceField
        The whole structure parameterized (its ``system`` is the one to partition).
    platform : str
        OpenMM platform: "CPU" (default), "Reference" (double precision), "CUDA", "OpenCL".
    threads : int, optional
        Threads of OpenMM's CPU platform.
    stress : bool
        In a periodic box, give the MM stress (finite strain: 12 OpenMM energies per call, about 12 times the
        MM forces' cost).  False leaves every result of a Hamiltonian with this environment without stress
        (fixed-volume runs, optimizations); constant pressure then refuses to start.
    """

    def __init__(self, forcefield, *, platform: str = "CPU", threads: int | None = None, stress: bool = True):
        self.forcefield = forcefield
        self.stress = bool(stress)
        self.platform = platform
        self.threads = threads
        self._setup = None

    def __repr__(self) -> str:
        return f"MMEnvironment({self.forcefield!r}, platform={self.platform!r})"

    def _prepare(self, partition, scheme: str):
        if self._setup is not None and self._setup[0] is partition and self._setup[1] == scheme:
            return self._setup[2]
        mine, theirs = self.forcefield.system, partition.system
        if mine.n_atoms != theirs.n_atoms or np.any(mine.elements != theirs.elements):
            bad = next((i for i in range(min(mine.n_atoms, theirs.n_atoms)) if mine.elements[i] != theirs.elements[i]),
                       min(mine.n_atoms, theirs.n_atoms))
            raise InputError(f"the partitioned system ({theirs.source}, {theirs.n_atoms} atoms) is not the force field's "
                             f"structure ({mine.n_atoms} atoms; first difference at atom {bad}); partition "
                             "forcefield.system")
        context = self.forcefield.context(partition.qm_atoms, self.inner_regions(partition, scheme),
                                          platform=self.platform, threads=self.threads)
        topology = partition.env_topology_charges
        charges = self.forcefield.charges[partition.env_atoms] if topology is None else topology.copy()
        charges[np.isin(partition.env_atoms, partition.shell_atoms)] = 0.0  # the ML shell's charges are the model's
        self._setup = (partition, scheme, (context, charges))
        return self._setup[2]

    @staticmethod
    def inner_regions(partition, scheme: str) -> list[np.ndarray]:
        """The regions whose internal interactions other layers describe (`MMForceField.context`): none but
        the QM atoms in two layers; with an ML shell, the QM region and the shell together in the subtractive
        scheme (the model describes QM-shell bonds), the shell alone in the additive one (the model does not
        see the QM region, so the force field holds the bonds the QM/ML cut leaves)."""
        if partition.shell is None:
            return []
        if scheme == "subtractive":
            return [np.union1d(partition.qm_atoms, partition.shell_atoms)]
        return [partition.shell_atoms]

    def check(self, partition, scheme: str) -> None:
        """A residue without parameters outside the QM region (`MMForceField.check_parameterized`)."""
        self.forcefield.check_parameterized(partition.qm_atoms)

    def qm_contact_atoms(self, partition, scheme: str) -> np.ndarray:
        """The MM atoms: the force field has no QM-MM repulsion or dispersion (QM atoms are ghosts)."""
        return partition.mm_atoms

    def evaluate(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None, *,
                 forces: bool = True) -> EnvironmentEvaluation:
        context, charges = self._prepare(partition, scheme)
        cell = partition.system.cell if cell is None else cell
        energy, mm_forces = context.compute(positions, cell, forces=forces)

        def atom_forces(_gradient):
            if mm_forces is None:
                raise InputError("this environment evaluation was made with forces=False")
            return mm_forces

        strain = None
        if cell is not None and self.stress:
            def strain(_gradient):
                return context.strain_derivative(positions, cell)
        return EnvironmentEvaluation(energy=energy, charges=charges, forces=atom_forces, strain_derivative=strain)
