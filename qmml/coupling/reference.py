"""`MLReference`: the QM/ML Hamiltonian with its QM region described by an ML model, not by QM.

It is the cheap force of the multiple-time-step integrator.  Everything the Hamiltonian computes
cheaply stays exactly as it is (the environment model, the QM-environment van der Waals term), and
only the QM region's energy is replaced by an ML model of the QM centres (atoms + link atoms) by
themselves:

    additive     E_ref = E_ML'(Q + L) + E_env(R_E) + E_vdW
    subtractive  E_ref = E_ML'(Q + L) + E_ML(all) - E_ML(Q + L)   (= E_ML(all) with the same model)

so the outer-step correction E - E_ref = E_QM[embedded] - E_ML'(Q + L) holds only the embedding (slow,
intermolecular) and the difference between two descriptions of the same bonds (small).  Using a
different model for the solvent in the inner and outer forces would instead leave the difference of
two O-H stretch force fields, oscillating every 9 fs, in the 2 fs outer step, which resonates.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..potential import Potential, PotentialResult


class MLReference(Potential):
    """Cheap reference potential of a `Hamiltonian` (see module docstring).

    Parameters
    ----------
    hamiltonian : Hamiltonian
        With an ML environment.
    qm_model : EnvironmentModel, optional
        Model for the QM centres; it must know their elements.  Default: the environment model
        (which suits the subtractive scheme, where it knows every element).
    members : sequence of int, optional
        Committee members of ``qm_model`` to use (default all).  Fewer is cheaper but rougher: with one
        member of `organic` the SN2 benchmark heated up and failed within 1 ps at a 2 fs outer step,
        with all three it stayed stable.
    """

    def __init__(self, hamiltonian, qm_model=None, *, members=None):
        from ..environments.ml import MLEnvironment

        if not isinstance(hamiltonian.environment, MLEnvironment):
            raise InputError("MLReference needs a Hamiltonian with an ML environment (environment type 'ml')")
        self.hamiltonian = hamiltonian
        self.system = hamiltonian.system
        part = hamiltonian.partition
        model = hamiltonian.environment.model if qm_model is None else qm_model
        self.qm_model = model.select_members(members) if members is not None else model
        self.qm_z = part.qm_atomic_numbers
        self.qm_model.species(self.qm_z)
        molecule = part.system.molecule_index
        self.qm_molecules = np.concatenate([molecule[part.qm_atoms], [molecule[lk.q1] for lk in part.links]])

    def __repr__(self) -> str:
        return f"MLReference({self.hamiltonian.scheme}, {len(self.qm_z)} QM centres)"

    @property
    def partition(self):
        return self.hamiltonian.partition

    def compute(self, positions, *, forces: bool = True, cell=None) -> PotentialResult:
        """Energy (eV) and forces (eV/Å) of the cheap reference at ``positions`` (Å)."""
        if cell is not None:
            raise InputError("MLReference is the fast force of a multiple-time-step run, which keeps the box fixed: "
                             "it takes no cell")
        ham, part = self.hamiltonian, self.hamiltonian.partition
        positions = np.asarray(positions, dtype=np.float64)
        energy, total = ham.environment.energy_and_forces(positions, part, ham.scheme)
        qm = self.qm_model.predict(self.qm_z, part.qm_positions(positions), groups=np.zeros(len(self.qm_z), int),
                                   group_charges=[part.charge], molecules=self.qm_molecules)
        energy += qm.energy
        total = total + part.qm_atom_forces(qm.forces)
        if ham.vdw is not None:
            e_vdw, f_vdw = ham.vdw.compute(positions)
            energy += e_vdw
            total += f_vdw
        return PotentialResult(energy=energy, forces=total if forces else None)
