"""`Hamiltonian`: QM region + environment + QM-environment van der Waals, energy and forces.

Schemes (see DESIGN.md):

    additive     E = E_QM[rho; Q + L in the field of the boundary-modified charges q~] + E_env(R_E) + E_vdW
    subtractive  E = E_QM[rho; Q + L embedded] + E_ML(all atoms) - E_ML(Q + L)

(the subtractive scheme's QM-environment repulsion and dispersion come from the model, so it has no
E_vdW by default; see `qmml.environments.ml` for what the model sees in each scheme).

Forces on every atom k combine the QM centre forces (link atoms split by their placement weights),
the forces on the embedding sites (split by the boundary position map), the environment's own
forces and the charge response -sum_j phi_j dq~_j/dR_k, obtained from the environment as one
vector-Jacobian product with dE/dq = C^T phi.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .system import check_finite_positions
from .periodic.cell import volume
from .potential import Potential, PotentialResult
from .coupling.vdw import LennardJones

SCHEMES = ("additive", "subtractive")


@dataclass(frozen=True, eq=False, kw_only=True)
class Result(PotentialResult):
    """Energy and forces of the whole system at one geometry: a `qmml.PotentialResult` (``energy``,
    ``forces``, ``stress``, ``charges`` with the environment charges on environment atoms and 0 on QM
    atoms, ``energy_std`` the environment's committee spread, ``scf_cycles``, ``details``) and the parts.

    Attributes
    ----------
    env_charges : ndarray (n_env,)
        Environment charges before the boundary scheme, e.
    qm_energy : float
        Embedded QM energy (SCF energy + nuclei-charge interaction), eV.
    env_energy, vdw_energy : float
        Environment-model and QM-environment van der Waals energies, eV.
    site_charges : ndarray (n_sites,)
        Charges the QM region sees after the boundary scheme (and switching), e.
    site_potential : ndarray (n_sites,)
        Potential of the QM nuclei and electrons at the sites, V.
    charge_gradient : ndarray (n_env,)
        dE_QM/dq_j for every environment charge before the boundary scheme (the site potential mapped
        back through the boundary scheme and the switching), V: what the environment's charge response
        and its committee spread act on.

    ``details["timings_s"]`` splits the call's wall time, s: ``environment`` (the model's energy and charges),
    ``qm_embedding_operator``, ``qm_scf``, ``qm_gradient``, ``qm_embedding_response`` (`QMResult.timings_s`),
    ``environment_response`` (the model's forces with the charge response; boundary and switching forces)
    and ``vdw``.
    """

    env_charges: np.ndarray
    qm_energy: float
    env_energy: float
    vdw_energy: float
    site_charges: np.ndarray
    site_potential: np.ndarray
    charge_gradient: np.ndarray

    @property
    def env_energy_std(self) -> float:
        """The environment's committee energy spread, eV (``energy_std``; the old name)."""
        return self.energy_std


class Hamiltonian(Potential):
    """Energy and forces of a partitioned system.

    Parameters
    ----------
    partition : Partition
    qm : PySCFEngine
    environment : Environment or EnvironmentModel
        `FixedCharges`, an `MLEnvironment`, an `MMEnvironment` (QM/MM), a `LayeredEnvironment` (QM/ML/MM),
        or a model from `qmml.load_model` (wrapped in an `MLEnvironment`).
    scheme : {"additive", "subtractive"}
        "subtractive" needs a model that knows every element, QM region included.
    vdw : {"auto", "lj", None}
        QM-environment van der Waals term: "auto" is "lj" on the environment atoms whose QM contact the
        environment does not describe itself (`Environment.qm_contact_atoms`: all of them in the additive
        scheme, none in the subtractive one, the MM atoms of an MM layer); "lj" on every environment atom;
        None also for parity checks.
    vdw_parameters : dict, optional
        Extra Lennard-Jones parameters, element -> (x in Å, D in kcal/mol).
    charge_radii_A : None, float or dict
        Gaussian smearing radius (Å) of the embedding charges: None for point charges, one number
        for all, or element -> radius (a boundary site takes the radius of its main atom).
    embedding_cutoff_A : float, optional
        Switch embedding charges off smoothly, by residue, between ``embedding_cutoff_A -
        switch_width_A`` and ``embedding_cutoff_A`` from the QM centre (see `qmml.switching`);
        None embeds every charge.
    switch_width_A : float
        Width of the switching region, Å.

    Notes
    -----
    A system with a box is periodic: the QM region sees every image of the environment charges and
    of itself (Ewald embedding, `qmml.qm.periodic`; its near/far split is set on the engine with
    ``near_field_A``), the environment model and the van der Waals term use the box, and results
    carry the stress.  Positions are never wrapped; the QM region must be whole.
    """

    def __init__(self, partition, qm, environment, *, scheme: str = "additive", vdw: str | None = "auto",
                 vdw_parameters: dict | None = None, charge_radii_A=None, embedding_cutoff_A: float | None = None,
                 switch_width_A: float = 1.0):
        from .environments.ml import MLEnvironment
        from .ml.model import EnvironmentModel
        from .coupling.switching import ChargeSwitching

        if scheme not in SCHEMES:
            raise InputError(f"scheme={scheme!r} is not one of {SCHEMES}")
        if isinstance(environment, EnvironmentModel):
            environment = MLEnvironment(environment)
        if scheme not in environment.schemes:
            raise InputError(f"scheme={scheme!r} needs an environment model covering all atoms, which this "
                             f"environment ({environment!r}) is not; use scheme='additive'")
        if vdw not in ("auto", "lj", None):
            raise InputError(f"vdw={vdw!r} is not 'auto', 'lj' or None")
        if partition.system.box is not None and embedding_cutoff_A is not None:
            raise InputError("embedding_cutoff_A does not apply in a periodic box: every image of every charge "
                             "is embedded (Ewald); set it to None and choose the engine's near_field_A")
        self.partition = partition
        environment.check(partition, scheme)  # before anything runs
        self.qm = qm
        self.environment = environment
        self.scheme = scheme
        self.vdw = None
        if vdw == "lj":
            self.vdw = LennardJones(partition, vdw_parameters)
        elif vdw == "auto" and len(contact := environment.qm_contact_atoms(partition, scheme)):
            self.vdw = LennardJones(partition, vdw_parameters, env_atoms=contact)
        self.site_radii_A = _site_radii(partition, charge_radii_A)
        self.switching = None if embedding_cutoff_A is None else \
            ChargeSwitching(partition, embedding_cutoff_A, switch_width_A)
        self.scf_history = qm.guess_history()  # this trajectory's converged densities: the next SCF's guess
        qm.check_electrons(partition.qm_elements, partition.qm_positions(partition.system.positions),
                           partition.charge, partition.multiplicity)

    @property
    def system(self):
        return self.partition.system

    def state(self) -> dict:
        """What carries over between MD steps (the SCF density history), for checkpoints."""
        return {"scf_guess": self.scf_history.state()}

    def restore(self, state: dict) -> None:
        if "scf_guess" in state:
            self.scf_history.restore(state["scf_guess"])

    def replica(self) -> "Hamiltonian":
        """This Hamiltonian for another trajectory: same engine, environment and partition, its own SCF
        history (a copy of this one's)."""
        other = copy.copy(self)
        other.scf_history = self.scf_history.copy()
        return other

    def compute(self, positions, *, forces: bool = True, cell=None) -> Result:
        """Energy (eV) and forces (eV/Å) at ``positions`` (Å, shape (n_atoms, 3)).

        ``forces=False`` skips every gradient (scans, energy differences): about half the cost.
        ``cell`` (3x3 lattice vectors as rows, Å) replaces the system's box for this call (NPT).
        """
        part = self.partition
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (part.system.n_atoms, 3):
            raise InputError(f"positions have shape {positions.shape}, expected ({part.system.n_atoms}, 3)")
        check_finite_positions(part.system, positions)
        if cell is None:
            cell = part.system.cell
        elif part.system.cell is None:
            raise InputError("cell= given for a system without a box; build the system with box=[a, b, c, ...]")
        clock = time.perf_counter()
        if cell is not None:
            cell = np.asarray(cell, dtype=np.float64)
            _check_whole(positions[part.qm_atoms], cell)
            env = self.environment.evaluate(positions, part, self.scheme, cell=cell, forces=forces)
        else:
            env = self.environment.evaluate(positions, part, self.scheme, forces=forces)
        timings = {"environment": time.perf_counter() - clock}
        boundary_charges = part.boundary.site_charges(env.charges)
        site_positions = part.boundary.site_positions(positions)
        scale = np.ones(len(boundary_charges))
        if self.switching is not None:
            scale, switch_state = self.switching.factors(positions)
        active = scale > 0  # sites switched off entirely cost nothing in the QM calculation
        site_charges = boundary_charges * scale
        radii = self.site_radii_A
        if radii is not None and np.ndim(radii):
            radii = radii[active]
        key = self.qm.guess_key(part.qm_elements, part.charge, part.multiplicity)
        qm_positions = part.qm_positions(positions)
        qm = self.qm.compute(part.qm_elements, qm_positions, charge=part.charge,
                             multiplicity=part.multiplicity, site_positions=site_positions[active],
                             site_charges=site_charges[active], site_radii_A=radii, forces=forces, cell=cell,
                             dm0=self.scf_history.predict(key, qm_positions))
        self.scf_history.push(key, qm.density, qm_positions)
        timings.update({f"qm_{part_name}": seconds for part_name, seconds in qm.timings_s.items()})
        clock = time.perf_counter()
        potential = np.zeros(len(site_charges))
        potential[active] = qm.site_potential
        gradient = part.boundary.env_charge_gradient(potential * scale)
        total_forces = None
        if forces:
            site_forces = np.zeros((len(site_charges), 3))
            site_forces[active] = qm.site_forces
            total_forces = part.qm_atom_forces(qm.forces) + part.boundary.atom_forces(site_forces)
            total_forces += env.forces(gradient)
            if self.switching is not None:
                total_forces += self.switching.forces(positions, potential * boundary_charges, switch_state)
        vdw_energy = 0.0
        strain = None
        if forces and cell is not None and env.strain_derivative is not None:
            strain = qm.strain_derivative + env.strain_derivative(gradient)
        timings["environment_response"], clock = time.perf_counter() - clock, time.perf_counter()
        if self.vdw is not None:
            vdw_energy, vdw_forces, vdw_strain = self.vdw.compute_with_strain(positions, cell)
            if forces:
                total_forces += vdw_forces
                if strain is not None:
                    strain = strain + vdw_strain
        timings["vdw"] = time.perf_counter() - clock
        charges = np.zeros(part.system.n_atoms)
        charges[part.env_atoms] = env.charges
        return Result(
            energy=qm.energy + env.energy + vdw_energy,
            forces=total_forces,
            stress=None if strain is None else 0.5 * (strain + strain.T) / volume(cell),
            charges=charges,
            energy_std=env.energy_std,
            scf_cycles=qm.scf_cycles,
            details={"scf_strategy": qm.converged_with, "timings_s": timings},
            env_charges=env.charges,
            qm_energy=qm.energy,
            env_energy=env.energy,
            vdw_energy=vdw_energy,
            site_charges=site_charges,
            site_potential=potential,
            charge_gradient=gradient,
        )

    def committee_spread(self, positions, result=None):
        """Committee spreads (`qmml.ml.Uncertainty`) of the environment model at ``positions`` (Å), with the
        QM potential at the sites held fixed; ``result`` is this Hamiltonian's result there (computed,
        without forces, if missing)."""
        if not isinstance(result, Result):  # none, or a result of another kind (a ring polymer's average)
            result = self.compute(positions, forces=False)
        return self.environment.committee_spread(np.asarray(positions, dtype=np.float64), self.partition,
                                                 self.scheme, result.charge_gradient)

    @property
    def environment_model(self):
        return self.environment.model

    @environment_model.setter
    def environment_model(self, model) -> None:
        self.environment.model = model


def _check_whole(qm_positions, cell):
    """The QM region must not be split by the box: each atom within half a box of the first."""
    d = qm_positions - qm_positions[0]
    frac = d @ np.linalg.inv(cell)
    if np.any(np.abs(frac) > 0.5):
        atom = int(np.argmax(np.abs(frac).max(1)))
        raise InputError(f"the QM region is split across the periodic boundary (its atom {atom} lies more than half a "
                         "box from its first atom); unwrap the positions so the QM region is whole")


def _site_radii(partition, radii):
    if radii is None:
        return None
    if isinstance(radii, dict):
        pmap = partition.boundary.positions_map.tocsr()
        out = []
        for s in range(pmap.shape[0]):
            row = pmap.getrow(s)
            main = row.indices[np.argmax(np.abs(row.data))]
            element = partition.system.elements[main]
            if element not in radii:
                raise InputError(f"charge_radii_A has no radius for element {element}; add it")
            out.append(radii[element])
        return np.array(out, dtype=float)
    return float(radii)
