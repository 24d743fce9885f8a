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
structure gets one group of all environment atoms.  An ML shell (three layers) is a set of separate
capped pieces (`MLShell.fragments`): each piece is a molecule and a charge group, whatever the model.
Group charges are the rounded topology charges (0 without them); the environment as a whole carries
``total_charge - partition.charge``.
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
    layer : {"environment", "shell"}
        What the model describes: every environment atom, or only the partition's ML shell (three layers,
        `qmml.environments.layered`; bonds to the MM layer capped with hydrogens, their charges given to
        the capped atom).
    """

    schemes = ("additive", "subtractive")

    def __init__(self, model, *, total_charge: int | None = None, one_pass_max_atoms: int = ONE_PASS_MAX_ATOMS,
                 neighbour_skin_A: float = 1.0, layer: str = "environment"):
        if layer not in ("environment", "shell"):
            raise InputError(f"layer={layer!r} is not 'environment' or 'shell'")
        self.layer = layer
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
        if self.layer == "shell":
            if partition.shell is None:
                raise InputError("MLEnvironment(layer='shell') needs a partition with an ML shell: "
                                 "partition(..., shell= or shell_radius_A=)")
            shell = partition.shell
            described, caps, qm_caps, env_total = shell.atoms, shell.caps, shell.qm_caps, shell.charge
            topology = system.charges[described] if system.charges is not None else None
            # the shell's covalent pieces are separate capped molecules for the model: each keeps its charge, and
            # the model's Coulomb and fixed terms act between them (one protein chain is many pieces here)
            molecules = np.full(system.n_atoms, -1)
            molecules[described] = shell.fragments
        else:
            if partition.shell is not None:
                raise InputError("this partition has an ML shell, so the environment has an MM layer: use "
                                 "LayeredEnvironment(model, forcefield) (qmml.environments.layered)")
            # two layers: the additive scheme leaves a QM/ML cut bond uncapped (nothing else holds it either)
            described, caps, qm_caps, env_total = env, (), (), self._env_charge(partition)
            topology = partition.env_topology_charges
            molecules = system.molecule_index
        self.model.species(system.atomic_numbers[described])  # clear error for unknown elements
        env_groups, group_charges = charge_groups(self.model, molecules[described], topology, env_total,
                                                  per_molecule=self.layer == "shell")
        excess = env_total - group_charges.sum()  # only per-molecule groups can miss the total
        if abs(excess) > 1e-9:
            cut = np.unique(env_groups[np.isin(described, [lk.m1 for lk in partition.links])])
            if len(cut) == 0:
                raise InputError(f"the environment should carry {env_total:+d} e but its molecules carry "
                                 f"{group_charges.sum():+.0f} e; check total_charge= and the QM charge")
            group_charges[cut[0]] += excess  # the cut molecule's environment part takes the rest
        subtractive = scheme == "subtractive"
        view = np.union1d(partition.qm_atoms, described) if subtractive else described
        if not subtractive:  # the model does not see the QM region: no caps of QM atoms, caps on the bonds to them
            qm = set(partition.qm_atoms.tolist())
            caps = tuple(c for c in caps if c.q1 not in qm) + qm_caps
        groups = np.full(system.n_atoms, -1)
        groups[described] = env_groups
        mol = molecules.copy()
        mol[partition.qm_atoms] = -1
        parents = np.array([c.q1 for c in caps], dtype=int)
        setup = {"partition": partition, "scheme": scheme, "cell": system.cell, "group_charges": group_charges,
                 "view": view, "caps": caps, "described": described,
                 "z": np.concatenate([system.atomic_numbers[view], np.ones(len(caps), dtype=int)]),
                 "groups": np.concatenate([groups[view], groups[parents]]),
                 "molecules": np.concatenate([mol[view], mol[parents]]),
                 # a cap's charge is its parent's: the charges and potential of the model's atoms, per view row
                 "owner": np.concatenate([view, parents])}
        if subtractive:
            qm_z = partition.qm_atomic_numbers
            self.model.species(qm_z)  # the subtractive scheme needs a model that knows the QM elements too
            setup.update(qm_z=qm_z, qm_groups=np.zeros(len(qm_z), dtype=int), qm_molecules=np.full(len(qm_z), -1))
        self._setup = setup
        return setup

    def _env_charge(self, partition) -> int:
        total = self.total_charge
        if total is None:
            charges = partition.system.charges
            total = int(round(float(charges.sum()))) if charges is not None else partition.charge
        return int(total) - partition.charge

    @staticmethod
    def _view_positions(positions, s) -> np.ndarray:
        """Positions of the model's atoms: the viewed atoms, then the caps (placed as link atoms)."""
        if not s["caps"]:
            return positions[s["view"]]
        caps = [(1.0 - c.g) * positions[c.q1] + c.g * positions[c.m1] for c in s["caps"]]
        return np.concatenate([positions[s["view"]], np.array(caps)])

    @staticmethod
    def _atom_forces(view_forces, n_atoms, s) -> np.ndarray:
        """Forces on all atoms from forces on the model's atoms (caps split by their weights)."""
        out = np.zeros((n_atoms, 3))
        view = s["view"]
        out[view] = view_forces[:len(view)]
        for k, c in enumerate(s["caps"]):
            f = view_forces[len(view) + k]
            out[c.q1] += (1.0 - c.g) * f
            out[c.m1] += c.g * f
        return out

    def _env_values(self, per_atom_view, partition, s) -> np.ndarray:
        """Per environment atom: the sum of a model quantity over its view rows (own + its caps)."""
        full = np.zeros(partition.system.n_atoms)
        np.add.at(full, s["owner"], per_atom_view)
        return full[partition.env_atoms]

    def _call(self, s, cell) -> dict:
        return dict(cell=cell, groups=s["groups"], group_charges=s["group_charges"], molecules=s["molecules"],
                    neighbours=self.neighbours)

    # -- the Environment contract --------------------------------------------------------
    def check(self, partition, scheme: str) -> None:
        """Elements the model does not know, a shell where none is expected (or the reverse), charges that do
        not add up: the errors of preparing the model's view."""
        self._prepare(partition, scheme)

    def qm_contact_atoms(self, partition, scheme: str) -> np.ndarray:
        """The described atoms in the additive scheme (the model does not see the QM region); none in the
        subtractive one (the model's short range acts between QM and environment)."""
        s = self._prepare(partition, scheme)
        return s["described"] if scheme == "additive" else np.zeros(0, dtype=int)

    def evaluate(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None, *,
                 forces: bool = True) -> EnvironmentEvaluation:
        s = self._prepare(partition, scheme)
        model = self.model
        n_atoms = len(positions)
        cell = s["cell"] if cell is None else cell
        additive = scheme == "additive"
        z, pos, call = s["z"], self._view_positions(positions, s), self._call(s, cell)
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
                phi = np.zeros(n_atoms)
                phi[partition.env_atoms] = charge_gradient
                model_forces, strain = model_response(phi[s["owner"]])
                out = self._atom_forces(model_forces, n_atoms, s)
                if not additive:
                    out -= partition.qm_atom_forces(qm_only.forces)
                    if strain is not None:
                        # the QM region by itself has open boundaries: dE/d(strain) = -sum_i F_i (x) R_i
                        strain = strain + qm_only.forces.T @ partition.qm_positions(positions)
                cache[key] = (out, strain)
            return cache[key]

        charges = self._env_values(first.charges, partition, s)
        if additive:
            energy, std = first.energy, first.energy_std
        else:
            energy = first.energy - qm_only.energy
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
        phi = np.zeros(n)
        phi[env] = gradient
        p = model.predict(s["z"], self._view_positions(x, s), potential=phi[s["owner"]], uncertainty=True,
                          **self._call(s, cell))
        view = s["view"]
        force_std = np.zeros(n)
        force_std[view] = np.linalg.norm(p.forces_std[:len(view)], axis=1)
        member_charges = np.array([self._env_values(q, partition, s) for q in p.member_charges])
        charge_std = np.zeros(n)
        charge_std[env] = member_charges.std(0)
        return Uncertainty(force_std, charge_std, float(np.std(member_charges @ gradient)), np.asarray(view))

    def _qm_region(self, positions, partition, s):
        """The model's prediction for the QM centres by themselves (subtracted in that scheme)."""
        return self.model.predict(s["qm_z"], partition.qm_positions(positions), groups=s["qm_groups"],
                                  group_charges=[partition.charge], molecules=s["qm_molecules"])

    def energy_and_forces(self, positions: np.ndarray, partition, scheme: str = "additive", cell=None):
        """Energy (eV) and forces (eV/Å, all atoms) without any charge response, in one model call
        per structure: the environment's part of a cheap reference potential."""
        s = self._prepare(partition, scheme)
        cell = s["cell"] if cell is None else cell
        p = self.model.predict(s["z"], self._view_positions(positions, s), **self._call(s, cell))
        forces = self._atom_forces(p.forces, len(positions), s)
        if scheme == "additive":
            return p.energy, forces
        q = self._qm_region(positions, partition, s)
        return p.energy - q.energy, forces - partition.qm_atom_forces(q.forces)
