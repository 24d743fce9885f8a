"""`Hamiltonian`: QM region + environment + QM-environment van der Waals, energy and forces.

Additive scheme (see DESIGN.md):

    E = E_QM[rho; Q + L in the field of the boundary-modified charges q~] + E_env + E_vdW

Forces on every atom k combine the QM centre forces (link atoms split by their placement weights),
the forces on the embedding sites (split by the boundary position map), the environment's own
forces and the charge response -sum_j phi_j dq~_j/dR_k, obtained from the environment as one
vector-Jacobian product with dE/dq = C^T phi.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .vdw import LennardJones

SCHEMES = ("additive", "subtractive")


@dataclass(frozen=True, eq=False)
class Result:
    """Energy and forces of the whole system at one geometry.

    Attributes
    ----------
    energy : float
        Total energy, eV.
    forces : ndarray (n_atoms, 3) or None
        Forces on all real atoms, eV/Å (link-atom forces are already distributed); None from
        ``compute(..., forces=False)``.
    env_charges : ndarray (n_env,)
        Environment charges before the boundary scheme, e.
    qm_energy : float
        Embedded QM energy (SCF energy + nuclei-charge interaction), eV.
    env_energy, vdw_energy : float
        Environment-model and QM-environment van der Waals energies, eV.
    site_charges : ndarray (n_sites,)
        Charges the QM region sees after the boundary scheme, e.
    site_potential : ndarray (n_sites,)
        Potential of the QM nuclei and electrons at the sites, V.
    scf_cycles : int
    """

    energy: float
    forces: np.ndarray | None
    env_charges: np.ndarray
    qm_energy: float
    env_energy: float
    vdw_energy: float
    site_charges: np.ndarray
    site_potential: np.ndarray
    scf_cycles: int
    details: dict = field(default_factory=dict)


class Hamiltonian:
    """Energy and forces of a partitioned system.

    Parameters
    ----------
    partition : Partition
    qm : PySCFEngine
    environment : Environment
        E.g. `FixedCharges` or an ML model.
    scheme : {"additive", "subtractive"}
        Only "additive" is available with fixed charges.
    vdw : {"lj", None}
        QM-environment van der Waals term; None switches it off (parity checks, or when the
        environment model supplies it).
    vdw_parameters : dict, optional
        Extra Lennard-Jones parameters, element -> (x in Å, D in kcal/mol).
    charge_radii_A : None, float or dict
        Gaussian smearing radius (Å) of the embedding charges: None for point charges, one number
        for all, or element -> radius (a boundary site takes the radius of its main atom).
    """

    def __init__(self, partition, qm, environment, *, scheme: str = "additive", vdw: str | None = "lj",
                 vdw_parameters: dict | None = None, charge_radii_A=None):
        if scheme not in SCHEMES:
            raise InputError(f"scheme={scheme!r} is not one of {SCHEMES}")
        if scheme == "subtractive":
            raise InputError("scheme='subtractive' needs an environment model covering all atoms, which this "
                             f"environment ({environment!r}) is not; use scheme='additive'")
        if vdw not in ("lj", None):
            raise InputError(f"vdw={vdw!r} is not 'lj' or None")
        if partition.system.box is not None:
            warnings.warn("the periodic box is ignored by the electrostatic embedding (every site is taken at its "
                          "stored position, no images): keep the structure whole around the QM region", stacklevel=2)
        self.partition = partition
        self.qm = qm
        self.environment = environment
        self.scheme = scheme
        self.vdw = LennardJones(partition, vdw_parameters) if vdw == "lj" else None
        self.site_radii_A = _site_radii(partition, charge_radii_A)

    def compute(self, positions, *, forces: bool = True) -> Result:
        """Energy (eV) and forces (eV/Å) at ``positions`` (Å, shape (n_atoms, 3)).

        ``forces=False`` skips every gradient (scans, energy differences): about half the cost.
        """
        part = self.partition
        positions = np.asarray(positions, dtype=np.float64)
        if positions.shape != (part.system.n_atoms, 3):
            raise InputError(f"positions have shape {positions.shape}, expected ({part.system.n_atoms}, 3)")
        env = self.environment.evaluate(positions, part)
        site_charges = part.boundary.site_charges(env.charges)
        qm = self.qm.compute(part.qm_elements, part.qm_positions(positions), charge=part.charge,
                             multiplicity=part.multiplicity, site_positions=part.boundary.site_positions(positions),
                             site_charges=site_charges, site_radii_A=self.site_radii_A, forces=forces)
        total_forces = None
        if forces:
            total_forces = part.qm_atom_forces(qm.forces) + part.boundary.atom_forces(qm.site_forces)
            total_forces += env.forces(part.boundary.env_charge_gradient(qm.site_potential))
        vdw_energy = 0.0
        if self.vdw is not None:
            vdw_energy, vdw_forces = self.vdw.compute(positions)
            if forces:
                total_forces += vdw_forces
        return Result(
            energy=qm.energy + env.energy + vdw_energy,
            forces=total_forces,
            env_charges=env.charges,
            qm_energy=qm.energy,
            env_energy=env.energy,
            vdw_energy=vdw_energy,
            site_charges=site_charges,
            site_potential=qm.site_potential,
            scf_cycles=qm.scf_cycles,
            details={"scf_strategy": qm.converged_with},
        )


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
