"""Regenerate the main job's structure: Cl- + CH3Cl (SN2 reactant complex) in a droplet of water.

    python data/scripts/make_sn2_water.py

Builds the ion-dipole complex Cl- ... CH3-Cl (collinear, C...Cl- 3.2 Å), surrounds it with waters on a
jittered lattice (radius 9 Å, data/scripts/make_structures.py), removes clashes by relaxing the water
around the fixed solute with the shipped `organic` model (which knows Cl and C; 200 Langevin steps),
then equilibrates everything with the main job's own Hamiltonian at a cheaper QM level (HF/3-21G,
density fitting, in the ML water model; 600 steps of 0.5 fs Langevin dynamics at 300 K, friction
20/ps).  Writes data/structures/sn2_water.{psf,pdb} (topology charges: Cl- -1, CH3Cl neutral
OPLS-like, TIP3P water; only the totals are used by the ML environment).  Deterministic for a given
torch/numpy/PySCF build; a few minutes on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_structures import OUT, water_bonds, water_droplet, write_pdb, write_psf  # noqa: E402

import qmml  # noqa: E402
from qmml.md.integrators import drift, kick, thermostat  # noqa: E402

C_CL_A, C_H_A, NUCLEOPHILE_A = 1.79, 1.09, 3.2


def solute_atoms():
    """Cl- on the -z axis, CH3Cl along +z with the methyl hydrogens towards the nucleophile."""
    angle = np.deg2rad(108.5)  # Cl-C-H
    hydrogens = [C_H_A * np.array([np.sin(angle) * np.cos(phi), np.sin(angle) * np.sin(phi), np.cos(angle)])
                 for phi in np.deg2rad([0.0, 120.0, 240.0])]
    rows = [("CL1", "Cl", -1.0, (0, 0, -NUCLEOPHILE_A), "CLA", 1),
            ("C1", "C", -0.10, (0, 0, 0), "MCL", 2),
            ("CL2", "Cl", -0.20, (0, 0, C_CL_A), "MCL", 2)]
    rows += [(f"H{k + 1}", "H", 0.10, tuple(h), "MCL", 2) for k, h in enumerate(hydrogens)]
    return [dict(name=n, element=e, charge=q, pos=np.array(p, float), resname=r, resid=i, segid="SOLU")
            for n, e, q, p, r, i in rows]


def relax_water(atoms, bonds, steps=200, seed=3):
    elements = [a["element"] for a in atoms]
    system = qmml.System.from_arrays(elements, [a["pos"] for a in atoms], bonds=bonds,
                                     charges=[a["charge"] for a in atoms])
    potential = qmml.MLPotential(qmml.load_model("organic"), system)
    free = np.array([a["segid"] == "SOLV" for a in atoms])
    masses = system.masses
    gen = np.random.Generator(np.random.PCG64(seed))
    x, v = system.positions.copy(), np.zeros_like(system.positions)
    forces = potential.compute(x).forces * free[:, None]
    for _ in range(steps):  # BAOAB on the waters only
        v = kick(v, forces, masses, 0.25)
        x = drift(x, v * free[:, None], 0.25)
        v = thermostat(v, masses, 0.5, 300.0, 0.02, gen) * free[:, None]
        x = drift(x, v, 0.25)
        forces = potential.compute(x).forces * free[:, None]
        v = kick(v, forces, masses, 0.25)
    for a, p in zip(atoms, x):
        a["pos"] = p
    return atoms


def equilibrate(atoms, bonds, steps=600, seed=5):
    elements = [a["element"] for a in atoms]
    system = qmml.System.from_arrays(elements, [a["pos"] for a in atoms], bonds=bonds,
                                     residues=[a["resid"] for a in atoms], resnames=[a["resname"] for a in atoms],
                                     charges=[a["charge"] for a in atoms])
    part = qmml.partition(system, "resname CLA MCL", charge=-1, boundary="none")
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "3-21g", density_fit=True), qmml.load_model("water"))
    sim = qmml.Simulation(ham, qmml.Langevin(0.5, 300.0, friction_per_ps=20.0, seed=seed), temperature_K=300,
                          seed=seed, progress=True).run(steps)
    for a, p in zip(atoms, sim.state.positions):
        a["pos"] = p
    return atoms


def main():
    solute = solute_atoms()
    solute_bonds = [(1, 2), (1, 3), (1, 4), (1, 5)]
    waters = water_droplet(np.array([a["pos"] for a in solute]), radius=9.0)
    for k, a in enumerate(waters):
        a["resid"] = 3 + k // 3
    atoms = solute + waters
    bonds = solute_bonds + water_bonds(len(solute), len(waters) // 3)
    atoms = equilibrate(relax_water(atoms, bonds), bonds)
    write_psf(OUT / "sn2_water.psf", atoms, bonds)
    write_pdb(OUT / "sn2_water.pdb", atoms, bonds)
    print(f"wrote {OUT}/sn2_water.psf/.pdb: Cl- + CH3Cl + {len(waters) // 3} waters ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
