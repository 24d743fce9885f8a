"""`MLPotential`: an environment model applied to every atom of a system, as a plain potential.

Used as the cheap inner force of the multiple-time-step integrator and for ML-only dynamics
(equilibrating solvent before a QM/ML run).  Charges are conserved per molecule or per structure as
the model was trained (`EnvironmentModel.charge_groups`).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..system import check_finite_positions
from ..periodic.cell import volume
from ..periodic.neighbours import StackedNeighbours, VerletList
from ..potential import Potential, PotentialResult
from .uncertainty import Uncertainty, require_committee


def charge_groups(model, molecules, topology_charges, total_charge: float, *, per_molecule: bool = False):
    """Charge groups of atoms and each group's charge (e), as ``model`` conserves charge.

    Per structure: one group carrying ``total_charge``.  Per molecule (the model's choice, or
    ``per_molecule=True`` whatever the model): one group per distinct value of ``molecules``, carrying
    its rounded topology charge (0 without topology charges); the caller checks that these add up to
    what it expects.
    """
    if model.charge_groups == "structure" and not per_molecule:
        return np.zeros(len(molecules), dtype=int), np.array([float(total_charge)])
    _, groups = np.unique(molecules, return_inverse=True)
    charges = np.zeros(groups.max() + 1 if len(groups) else 0)
    if topology_charges is not None:
        np.add.at(charges, groups, topology_charges)
        charges = np.round(charges)
    return groups, charges


class MLPotential(Potential):
    """The environment model on all atoms of ``system``.

    Parameters
    ----------
    model : EnvironmentModel
    system : System
        Elements, bonds (molecules), box and topology charges are taken from it.
    total_charge : int, optional
        Charge of the whole system, e; default the rounded sum of the topology charges.  Required
        when the system has no topology charges and the model conserves charge per structure.
    members : sequence of int, optional
        Use only these committee members (``[0]`` for a cheap fast force); default all.
    neighbour_skin_A : float
        Skin of the pair lists kept between calls (`qmml.periodic.neighbours.VerletList`), Å.
    """

    def __init__(self, model, system, *, total_charge: int | None = None, members=None,
                 neighbour_skin_A: float = 1.0):
        if members is not None:
            model = model.select_members(members)
        self.model, self.system = model, system
        model.species(system.atomic_numbers)
        molecules = system.molecule_index
        if total_charge is None and system.charges is None and model.charge_groups == "structure":
            raise InputError(f"{system.source} has no topology charges: pass total_charge= (e) to MLPotential "
                             "(or total_charge: in the job file)")
        total = total_charge if total_charge is not None else \
            round(float(system.charges.sum())) if system.charges is not None else 0
        self.groups, self.group_charges = charge_groups(model, molecules, system.charges, total)
        if round(self.group_charges.sum()) != total:
            raise InputError(f"the system's charge is {total:+d} e (total_charge or topology) but the molecules of "
                             f"{system.source} carry {self.group_charges.sum():+.0f} e; check the topology charges")
        self.molecules = molecules
        self.cell = system.cell
        self.neighbours = VerletList(neighbour_skin_A)
        self._stacked_neighbours = {}  # copies -> the pair lists of compute_copies

    def __repr__(self) -> str:
        return f"MLPotential({self.system.n_atoms} atoms)"

    def compute(self, positions, *, forces: bool = True, cell=None) -> PotentialResult:
        """Energy, forces and charges at ``positions`` (Å); ``cell`` (3x3 rows, Å) replaces the system's
        box for this call (constant-pressure dynamics).

        In a periodic box and with ``forces``, the result's ``stress`` is (1/V) dE/d(strain) of that box,
        symmetric, eV/Å^3 (ASE sign: pressure = -trace/3 plus the kinetic part); None otherwise.
        """
        if cell is None:
            cell = self.cell
        elif self.cell is None:
            raise InputError("cell= given for a system without a box; build the system with box=[a, b, c, ...]")
        check_finite_positions(self.system, np.asarray(positions, dtype=np.float64))
        p = self.model.predict(self.system.atomic_numbers, positions, cell=cell, groups=self.groups,
                               group_charges=self.group_charges, molecules=self.molecules, forces=forces,
                               neighbours=self.neighbours)
        stress = None
        if p.strain_derivative is not None:
            d = p.strain_derivative
            stress = 0.5 * (d + d.T) / volume(cell)
        return PotentialResult(energy=p.energy, forces=p.forces, stress=stress, charges=p.charges,
                               energy_std=p.energy_std)

    def compute_copies(self, positions, *, forces: bool = True, cell=None) -> list[PotentialResult]:
        """Energy, forces and charges at each geometry of ``positions`` (copies, n_atoms, 3), Å, from one model
        call over all copies (`EnvironmentModel.predict` with ``copies``): the same results as `compute` on
        each, without stress, at the cost of one call on copies * n_atoms atoms."""
        x = np.asarray(positions, dtype=np.float64)
        n = self.system.n_atoms
        if x.ndim != 3 or x.shape[1:] != (n, 3):
            raise InputError(f"positions of copies must have shape (copies, {n}, 3), got {x.shape}")
        copies = len(x)
        if cell is None:
            cell = self.cell
        elif self.cell is None:
            raise InputError("cell= given for a system without a box; build the system with box=[a, b, c, ...]")
        for bead in x:
            check_finite_positions(self.system, bead)
        stacked = self._stacked_neighbours.get(copies)
        if stacked is None:
            stacked = self._stacked_neighbours[copies] = StackedNeighbours(copies, self.neighbours.skin)
        n_groups, n_molecules = len(self.group_charges), int(self.molecules.max(initial=-1)) + 1
        offsets = np.arange(copies)[:, None]
        molecules = np.where(self.molecules >= 0, self.molecules + offsets * n_molecules, -1).ravel()
        p = self.model.predict(np.tile(self.system.atomic_numbers, copies), x.reshape(-1, 3), cell=cell,
                               groups=(self.groups + offsets * n_groups).ravel(),
                               group_charges=np.tile(self.group_charges, copies), molecules=molecules,
                               forces=forces, neighbours=stacked, copies=copies)
        forces_ = None if p.forces is None else p.forces.reshape(copies, n, 3)
        charges = p.charges.reshape(copies, n)
        return [PotentialResult(energy=float(e.mean()), forces=None if forces_ is None else forces_[k],
                                charges=charges[k], energy_std=float(e.std()))
                for k, e in enumerate(p.copy_member_energies)]

    def committee_spread(self, positions, result=None) -> Uncertainty:
        """Committee spreads of forces and charges at ``positions`` (Å); ``result`` is not needed."""
        require_committee(self.model)
        p = self.model.predict(self.system.atomic_numbers, np.asarray(positions, dtype=np.float64), cell=self.cell,
                               groups=self.groups, group_charges=self.group_charges, molecules=self.molecules,
                               uncertainty=True, neighbours=self.neighbours)
        return Uncertainty(np.linalg.norm(p.forces_std, axis=1), p.charges_std, 0.0, np.arange(self.system.n_atoms))

    @property
    def environment_model(self):
        return self.model

    @environment_model.setter
    def environment_model(self, model) -> None:
        model.species(self.system.atomic_numbers)
        self.model = model
