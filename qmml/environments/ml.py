"""`MLEnvironment`: an `EnvironmentModel` as the environment of a QM/ML Hamiltonian.

Additive scheme (solute in solvent): the model sees the environment atoms only, so
E_env = E_ML(R_E) and the charges q_j(R_E) are those of the solvent by itself.  The QM atoms are
not shown to the model: their interaction with the environment is the QM embedding plus the
QM-environment van der Waals term, and a model trained on solvent would count it twice.

Subtractive scheme (covalent boundary): E_ML(all real atoms) - E_ML(QM atoms + link atoms).  In the
first call the QM atoms are neighbours only (charge group -1, no charge), so the environment charges
depend on every position; the model's explicit Coulomb term acts between environment molecules only
(QM atoms get molecule -1), which removes its QM-environment (and QM-QM) part; the QM embedding
replaces it.  The second call removes the model's own description of the QM region.

Charge groups: a model conserving charge per molecule gets one group per environment molecule (the
environment part of a molecule cut by the boundary is one group); a model conserving charge per
structure gets one group of all environment atoms.  Group charges are the rounded topology charges
(0 without them); the environment as a whole carries ``total_charge - partition.charge``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..ml.model import ONE_PASS_MAX_ATOMS
from ..ml.potential import charge_groups
from ..periodic.neighbours import VerletList
from ..ml.uncertainty import Uncertainty, require_committee
from .base import Environment, EnvironmentEvaluation


class MLEnvironment(Environment):
    """An environment whose energy, forces and charges come from an `EnvironmentModel`.

    Parameters
    ----------
    model : EnvironmentModel
        E.g. ``qmml.load_model("water")``.
    total_charge : int, optional
        Charge of the whole system (QM region + environment), e.  Default: the rounded sum of the
        topology charges, or the QM region's charge (a neutral environment) without them.
    one_pass_max_atoms : int
        Up to this many atoms seen by the model, a step makes one model pass: the charges' autograd graph
        is kept through the QM calculation, and the forces with the charge response cost one backward pass
        (`EnvironmentModel.prepare_response`; memory about 40-60 kB per atom, 150 kB with a Coulomb term,
        benchmarks/RESULTS.md).
        Larger environments make a second pass instead, in memory bounded by the model's chunk size.  The
        forces are the same either way.
    neighbour_skin_A : float
        Skin of the pair lists kept between steps (`qmml.periodic.neighbours.VerletList`), Å.
    """

    def __init__(self, model, *, total_charge: int | None = None, one_pass_max_atoms: int = ONE_PASS_MAX_ATOMS,
                 neighbour_skin_A: float = 1.0):
        self.model = model
        self.total_charge = total_charge
        self.one_pass_max_atoms = int(one_pass_max_atoms)
        self.neighbours = VerletList(neighbour_skin_A)
        self._setup = None

    def __repr__(self) -> str:
        return f"MLEnvironment({len(self.model.elements)} elements, {len(self.model.members)} members)"

    # -- fixed per partition -------------------------------------------------------------
    def _prepare(self, partition, scheme: str) -> dict:
        if self._setup is not None and self._setup["partition"] is partition and self._setup["scheme"] == scheme:
            return self._setup
        system = partition.system
        env = partition.env_atoms
        self.model.species(system.atomic_numbers[env])  # clear error for unknown elements
        env_total = self._env_charge(partition)
        molecules = system.molecule_index
        env_groups, group_charges = charge_groups(self.model, molecules[env], partition.env_topology_charges,
                                                  env_total)
        excess = env_total - group_charges.sum()  # only per-molecule groups can miss the total
        if abs(excess) > 1e-9:
            cut = np.unique(env_groups[np.isin(env, [lk.m1 for lk in partition.links])])
            if len(cut) == 0:
                raise InputError(f"the environment should carry {env_total:+d} e but its molecules carry "
                                 f"{group_charges.sum():+.0f} e; check total_charge= and the QM charge")
            group_charges[cut[0]] += excess  # the cut molecule's environment part takes the rest
        setup = {"partition": partition, "scheme": scheme, "cell": system.cell, "env_groups": env_groups,
                 "group_charges": group_charges}
        if scheme == "subtractive":
            n = system.n_atoms
            groups = np.full(n, -1)
            groups[env] = env_groups
            mol = molecules.copy()
            mol[partition.qm_atoms] = -1
            qm_z = partition.qm_atomic_numbers
            self.model.species(qm_z)  # the subtractive scheme needs a model that knows the QM elements too
            setup.update(groups=groups, molecules=mol, qm_z=qm_z,
                         qm_groups=np.zeros(len(qm_z), dtype=int), qm_molecules=np.full(len(qm_z), -1))
        else:
            setup.update(env_z=system.atomic_numbers[env], env_molecules=molecules[env])
        self._setup = setup
        return setup

    def _env_charge(self, partition) -> int:
        total = self.total_charge
        if total is None:
            charges = partition.system.charges
            total = int(round(float(charges.sum()))) if charges is not None else partition.charge
        return int(total) - partition.charge

    # -- the Environment contract --------------------------------------------------------
    def evaluate(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None, *,
                 forces: bool = True) -> EnvironmentEvaluation:
        s = self._prepare(partition, scheme)
        model, env = self.model, partition.env_atoms
        n_atoms = len(positions)
        cell = s["cell"] if cell is None else cell
        additive = scheme == "additive"
        if additive:
            z, pos = s["env_z"], positions[env]
            call = dict(cell=cell, groups=s["env_groups"], group_charges=s["group_charges"],
                        molecules=s["env_molecules"])
        else:
            z, pos = partition.system.atomic_numbers, positions
            call = dict(cell=cell, groups=s["groups"], group_charges=s["group_charges"], molecules=s["molecules"])
        call["neighbours"] = self.neighbours
        one_pass = forces and len(z) <= self.one_pass_max_atoms
        if one_pass:
            kept = model.prepare_response(z, pos, **call)
            first = kept.prediction
        else:
            first = model.predict(z, pos, forces=False, **call)
        qm_only = None if additive else self._qm_region(positions, partition, s)
        cache = {}

        def model_response(potential):
            if one_pass:
                return kept.forces(potential)
            p = model.predict(z, pos, potential=potential, **call)
            return p.forces, p.strain_derivative

        def response(charge_gradient):
            """One backward pass (or model call) gives both the forces and the strain derivative."""
            if not forces:
                raise InputError("this environment evaluation was made with forces=False")
            key = np.asarray(charge_gradient, dtype=float).tobytes()
            if key not in cache:
                cache.clear()
                if additive:
                    model_forces, strain = model_response(charge_gradient)
                    out = np.zeros((n_atoms, 3))
                    out[env] = model_forces
                else:
                    phi = np.zeros(n_atoms)
                    phi[env] = charge_gradient
                    model_forces, strain = model_response(phi)
                    out = model_forces - partition.qm_atom_forces(qm_only.forces)
                    if strain is not None:
                        # the QM region by itself has open boundaries: dE/d(strain) = -sum_i F_i (x) R_i
                        strain = strain + qm_only.forces.T @ partition.qm_positions(positions)
                cache[key] = (out, strain)
            return cache[key]

        if additive:
            energy, std, charges = first.energy, first.energy_std, first.charges
        else:
            energy, charges = first.energy - qm_only.energy, first.charges[env]
            std = float(np.std(first.member_energies - qm_only.member_energies))
        return EnvironmentEvaluation(energy=energy, charges=charges, forces=lambda g: response(g)[0],
                                     energy_std=std,
                                     strain_derivative=None if cell is None else lambda g: response(g)[1])

    def committee_spread(self, positions, partition, scheme: str, charge_gradient, cell=None) -> Uncertainty:
        """Committee spreads of forces, charges and embedding energy at ``positions`` (Å), with the QM
        potential held fixed: ``charge_gradient`` (V) is dE_QM/dq_j per environment charge
        (`qmml.Result.charge_gradient`).  The force spread includes each member's charge response."""
        model = self.model
        require_committee(model)
        s = self._prepare(partition, scheme)
        cell = s["cell"] if cell is None else cell
        x = np.asarray(positions, dtype=np.float64)
        n, env = len(x), partition.env_atoms
        gradient = np.asarray(charge_gradient, dtype=np.float64)
        force_std = np.zeros(n)
        charge_std = np.zeros(n)
        if scheme == "additive":
            p = model.predict(s["env_z"], x[env], cell=cell, groups=s["env_groups"], group_charges=s["group_charges"],
                              molecules=s["env_molecules"], potential=gradient, uncertainty=True,
                              neighbours=self.neighbours)
            force_std[env] = np.linalg.norm(p.forces_std, axis=1)
            member_charges = p.member_charges
            model_atoms = np.asarray(env)
        else:
            phi = np.zeros(n)
            phi[env] = gradient
            p = model.predict(partition.system.atomic_numbers, x, cell=cell, groups=s["groups"],
                              group_charges=s["group_charges"], molecules=s["molecules"], potential=phi,
                              uncertainty=True, neighbours=self.neighbours)
            force_std = np.linalg.norm(p.forces_std, axis=1)
            member_charges = p.member_charges[:, env]
            model_atoms = np.arange(n)
        charge_std[env] = member_charges.std(0)
        return Uncertainty(force_std, charge_std, float(np.std(member_charges @ gradient)), model_atoms)

    def _qm_region(self, positions, partition, s):
        """The model's prediction for the QM centres by themselves (subtracted in that scheme)."""
        return self.model.predict(s["qm_z"], partition.qm_positions(positions), groups=s["qm_groups"],
                                  group_charges=[partition.charge], molecules=s["qm_molecules"])

    def energy_and_forces(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None):
        """Energy (eV) and forces (eV/Å, all atoms) without any charge response, in one model call
        per structure: the environment's part of a cheap reference potential."""
        s = self._prepare(partition, scheme)
        model, env = self.model, partition.env_atoms
        cell = s["cell"] if cell is None else cell
        if scheme == "additive":
            p = model.predict(s["env_z"], positions[env], cell=cell, groups=s["env_groups"],
                              group_charges=s["group_charges"], molecules=s["env_molecules"], neighbours=self.neighbours)
            forces = np.zeros_like(positions)
            forces[env] = p.forces
            return p.energy, forces
        p = model.predict(partition.system.atomic_numbers, positions, cell=cell, groups=s["groups"],
                          group_charges=s["group_charges"], molecules=s["molecules"], neighbours=self.neighbours)
        q = self._qm_region(positions, partition, s)
        return p.energy - q.energy, p.forces - partition.qm_atom_forces(q.forces)

