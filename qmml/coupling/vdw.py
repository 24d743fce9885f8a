"""QM-environment van der Waals: Lennard-Jones repulsion and dispersion.

Electrostatic embedding alone lets an anion's density collapse onto environment hydrogens; the
Lennard-Jones term keeps QM and environment atoms apart.  Parameters are the UFF ones (Rappé et al.,
J. Am. Chem. Soc. 114, 10024 (1992)): per element a minimum-energy distance x (Å) and well depth D
(kcal/mol), combined geometrically, x_ij = sqrt(x_i x_j), D_ij = sqrt(D_i D_j), in

    E_ij = D_ij [ (x_ij / r)^12 - 2 (x_ij / r)^6 ].

Polar hydrogens (bonded to N, O or S) take the CHARMM TIP3P hydrogen parameters instead of UFF's
(x = 0.449 Å, D = 0.046 kcal/mol; MacKerell et al., J. Phys. Chem. B 102, 3586 (1998)): UFF's
hydrogen is sized for C-H, and with it every hydrogen bond between the QM region and the
environment (Cl- ... H-O, O-H ... O) would be pushed ~1 Å apart by several kcal/mol; as in
biomolecular force fields, the heavy atoms' repulsion alone sets the hydrogen-bond distance.

Pairs are QM atoms (not link atoms) with environment atoms; pairs closer than three bonds
(1-2 and 1-3 across a cut bond) are excluded, as in force fields.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from .. import units
from ..errors import InputError
from ..periodic.cell import minimum_image

#: UFF (x_i in Å, D_i in kcal/mol).
UFF_PARAMETERS: dict[str, tuple[float, float]] = {
    "H": (2.886, 0.044), "Li": (2.451, 0.025), "B": (4.083, 0.180), "C": (3.851, 0.105), "N": (3.660, 0.069),
    "O": (3.500, 0.060), "F": (3.364, 0.050), "Na": (2.983, 0.030), "Mg": (3.021, 0.111), "Si": (4.295, 0.402),
    "P": (4.147, 0.305), "S": (4.035, 0.274), "Cl": (3.947, 0.227), "K": (3.812, 0.035), "Ca": (3.399, 0.238),
    "Zn": (2.763, 0.124), "Br": (4.189, 0.251), "I": (4.500, 0.339),
}


#: Polar hydrogens (bonded to one of these elements): CHARMM TIP3P H (x in Å, D in kcal/mol).
POLAR_HYDROGEN_PARAMETERS = (0.449, 0.046)
POLAR_HYDROGEN_PARTNERS = ("N", "O", "S")


class LennardJones:
    """QM-environment Lennard-Jones with UFF parameters (see module docstring).

    Parameters
    ----------
    partition : Partition
    parameters : dict, optional
        Element -> (x in Å, D in kcal/mol); overrides or extends `UFF_PARAMETERS`.
    env_atoms : array_like of int, optional
        The environment atoms it acts on (default: all); see `qmml.environments.Environment.qm_contact_atoms`.
    """

    def __init__(self, partition, parameters: dict | None = None, env_atoms=None):
        table = {**UFF_PARAMETERS, **(parameters or {})}
        system = partition.system
        missing = sorted({e for e in system.elements if e not in table})
        if missing:
            raise InputError(f"no Lennard-Jones parameters for {', '.join(missing)}; pass "
                             "vdw_parameters={'El': (x_A, D_kcal_per_mol)} to the Hamiltonian")
        params = [table[e] for e in system.elements]
        if "H" not in (parameters or {}):  # explicit H parameters from the caller win
            graph = system.bond_graph
            for i in np.where(system.elements == "H")[0]:
                if any(system.elements[j] in POLAR_HYDROGEN_PARTNERS for j in graph.neighbors(int(i))):
                    params[i] = POLAR_HYDROGEN_PARAMETERS
        x = np.array([p[0] for p in params])
        d = np.array([p[1] for p in params]) * units.KCAL_PER_MOL_EV
        self.qm_atoms = partition.qm_atoms
        self.env_atoms = partition.env_atoms if env_atoms is None else np.asarray(env_atoms, dtype=int)
        self.box = system.box
        self.x = np.sqrt(np.outer(x[self.qm_atoms], x[self.env_atoms]))
        self.depth = np.sqrt(np.outer(d[self.qm_atoms], d[self.env_atoms]))
        env_column = {a: j for j, a in enumerate(self.env_atoms)}
        for i, q in enumerate(self.qm_atoms):
            for a in nx.single_source_shortest_path_length(system.bond_graph, int(q), cutoff=2):
                if a in env_column:
                    self.depth[i, env_column[a]] = 0.0

    def compute(self, positions: np.ndarray, cell=None) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces on all atoms (n_atoms, 3), eV/Å; ``cell`` (3x3 rows, Å) overrides the
        system's box (each QM-environment pair at its nearest image)."""
        energy, forces, _ = self.compute_with_strain(positions, cell)
        return energy, forces

    def compute_with_strain(self, positions: np.ndarray, cell=None):
        """Energy (eV), forces (eV/Å) and the strain derivative dE/d(strain) (3, 3), eV."""
        d = positions[self.env_atoms][None, :, :] - positions[self.qm_atoms][:, None, :]
        if cell is not None:
            d = minimum_image(d, cell)
        elif self.box is not None:
            from MDAnalysis.lib.distances import minimize_vectors

            d = minimize_vectors(d.reshape(-1, 3), self.box).reshape(d.shape)
        r2 = np.einsum("ijx,ijx->ij", d, d)
        s6 = (self.x * self.x / r2) ** 3
        energy = float(np.sum(self.depth * (s6 * s6 - 2.0 * s6)))
        # dE/dr * (1/r) = D (-12 s12 + 12 s6) / r^2
        coef = self.depth * 12.0 * (s6 - s6 * s6) / r2
        pair_gradient = coef[:, :, None] * d  # dE/dR of the environment atom of each pair
        forces = np.zeros_like(positions)
        forces[self.env_atoms] -= pair_gradient.sum(axis=0)
        forces[self.qm_atoms] += pair_gradient.sum(axis=1)
        strain = np.einsum("ija,ijb->ab", pair_gradient, d)
        return energy, forces, strain
