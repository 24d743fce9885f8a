"""Regenerate the periodic NaCl(aq) box: 4 Na+ + 4 Cl- in 120 waters, a 15.65 Å cube (1.73 M).

    OMP_NUM_THREADS=1 python data/scripts/make_electrolyte.py

Starting point: the shipped water test set's periodic frame (16 GFN2-xTB-sampled waters in a
7.82 Å cube, data/datasets/water_test.npz) repeated twice along each lattice vector (128 waters,
1.00 g/cm^3).  Eight waters, chosen by a seeded farthest-point pick so that no two ions start
closer than ~6 Å and like charges alternate, are replaced by ions placed at their oxygen
positions (4 Na+, 4 Cl-).  Composition and density:

* 120 H2O + 4 NaCl in V = 3832 Å^3: c = 4 / (N_A V) = 1.73 mol/L, b = 1.85 mol/kg,
  rho = 1.038 g/cm^3 (experiment at 1.7 M: ~1.066 g/cm^3; the box is kept at the water box's
  size rather than compressed further, the model's own density is not known).

The structure is then relaxed with the shipped ``organic`` model (which knows Na and Cl; full
committee): the ions sit in water-shaped cavities, so the first solvation shell must turn round;
300 steps of 0.25 fs of heavily damped Langevin dynamics (300 K, friction 50/ps) do that.  No
minimizer: it finds the model's unphysical holes (see `relax`).  docs/examples/ion_transport.py
equilibrates further before measuring anything.  Writes
data/structures/nacl_water.{pdb,psf} (CRYST1 box, one residue per water TIP3 / ion SOD, CLA;
topology charges TIP3P and +-1: only the total, 0 e, is used by the structure-conserved model).
Deterministic for a given torch/numpy build; about 4 minutes on one core.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_structures import MASSES, OUT, water_bonds, write_pdb, write_psf  # noqa: E402

import qmml  # noqa: E402
from qmml.ml import Dataset  # noqa: E402

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "water_test.npz"
N_PAIRS = 4
SEED = 11
MASSES.setdefault("Na", 22.990)  # write_psf looks masses up here


def water_box():
    """128 waters (O H H order) in a periodic cube: the dataset frame repeated 2x2x2."""
    frame = next(f for f in Dataset.load(DATASET) if f.cell is not None)
    cell = np.asarray(frame.cell)
    images = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)]) @ cell
    positions = np.concatenate([np.asarray(frame.positions) + s for s in images])
    return positions, 2 * np.diag(cell)


def minimum_image(d, box):
    return d - box * np.round(d / box)


def pick_ion_sites(oxygens, box, n, seed):
    """Farthest-point pick of 2n water oxygens (minimum-image distances), seeded first pick."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(oxygens)))]
    nearest = np.linalg.norm(minimum_image(oxygens - oxygens[chosen[0]], box), axis=1)
    while len(chosen) < 2 * n:
        k = int(np.argmax(nearest))
        chosen.append(k)
        nearest = np.minimum(nearest, np.linalg.norm(minimum_image(oxygens - oxygens[k], box), axis=1))
    return chosen


def build(n_pairs=N_PAIRS, seed=SEED):
    """Atoms (dicts as make_structures writes them), bonds and box of the unrelaxed electrolyte."""
    positions, box = water_box()
    oxygens = positions[0::3]
    sites = pick_ion_sites(oxygens, box, n_pairs, seed)
    # alternate charges along the farthest-point order: neighbouring picks get opposite signs
    ions = [("SOD", "Na", +1.0) if k % 2 == 0 else ("CLA", "Cl", -1.0) for k in range(len(sites))]
    ions.sort(key=lambda ion: ion[1] != "Na")  # Na first, then Cl
    order = [s for k, s in enumerate(sites) if k % 2 == 0] + [s for k, s in enumerate(sites) if k % 2 == 1]
    atoms, resid = [], 1
    for (resname, element, charge), site in zip(ions, order):
        name = "SOD" if element == "Na" else "CLA"
        atoms.append({"name": name, "element": element, "charge": charge, "pos": oxygens[site],
                      "resname": resname, "resid": resid, "segid": "ION"})
        resid += 1
    n_ions = len(atoms)
    for k in sorted(set(range(len(oxygens))) - set(sites)):
        for name, element, charge, d in (("OH2", "O", -0.834, 0), ("H1", "H", 0.417, 1),
                                         ("H2", "H", 0.417, 2)):
            atoms.append({"name": name, "element": element, "charge": charge, "pos": positions[3 * k + d],
                          "resname": "TIP3", "resid": resid, "segid": "WAT"})
        resid += 1
    bonds = water_bonds(n_ions, (len(atoms) - n_ions) // 3)
    return atoms, bonds, box


def to_system(atoms, bonds, box):
    return qmml.System.from_arrays([a["element"] for a in atoms], np.array([a["pos"] for a in atoms]), box=box,
                                   bonds=bonds, residues=[a["resid"] for a in atoms],
                                   resnames=[a["resname"] for a in atoms], names=[a["name"] for a in atoms],
                                   charges=[a["charge"] for a in atoms])


def bond_lengths(system, x):
    b = np.asarray(system.bonds)
    return np.linalg.norm(x[b[:, 0]] - x[b[:, 1]], axis=1)


def relax(system, steps=300, seed=SEED):
    """Heavily damped Langevin dynamics (0.25 fs, 50/ps, 300 K) with the full committee.

    No energy minimization: the model has unphysical low-energy regions (a proton jumping between
    waters and collapsing onto an oxygen) that a minimizer, or dynamics with a single committee
    member, can fall into; the committee mean stays physical here.  The result is checked.
    """
    potential = qmml.MLPotential(qmml.load_model("organic"), system, total_charge=0)
    sim = qmml.Simulation(potential, qmml.Langevin(0.25, 300.0, friction_per_ps=50.0, seed=seed),
                          temperature_K=300.0, seed=seed, progress=False).run(steps)
    x = sim.state.positions
    longest = bond_lengths(system, x).max()
    if longest > 1.3:
        raise RuntimeError(f"relaxation broke a water (O-H {longest:.2f} Å); change SEED or shorten the run")
    print(f"relaxed: {steps} steps, T = {sim.temperature():.0f} K, longest O-H {longest:.3f} Å, "
          f"largest force {np.linalg.norm(sim.state.forces, axis=1).max():.2f} eV/Å")
    return x


def describe(atoms, box):
    n_ion = sum(a["segid"] == "ION" for a in atoms) // 2
    n_w = sum(a["resname"] == "TIP3" for a in atoms) // 3
    volume_L = np.prod(box) * 1e-27
    mass_g = sum(MASSES[a["element"]] for a in atoms) / qmml.units.AVOGADRO
    return (f"{n_ion} Na+ + {n_ion} Cl- + {n_w} waters, box {box.round(3).tolist()} Å: "
            f"{n_ion / qmml.units.AVOGADRO / volume_L:.2f} mol/L, "
            f"{n_ion / (n_w * 18.015e-3):.2f} mol/kg, {mass_g / (volume_L * 1e3):.3f} g/cm^3")


def main():
    atoms, bonds, box = build()
    x = relax(to_system(atoms, bonds, box))
    # wrap whole molecules (by their first atom) into the box for a tidy file
    first = {}
    for i, a in enumerate(atoms):
        first.setdefault(a["resid"], i)
    for i, a in enumerate(atoms):
        a["pos"] = x[i] - box * np.floor(x[first[a["resid"]]] / box)
    write_psf(OUT / "nacl_water.psf", atoms, bonds)
    pdb = OUT / "nacl_water.pdb"
    write_pdb(pdb, atoms, bonds)
    lines = pdb.read_text().splitlines()
    cryst = f"CRYST1{box[0]:9.3f}{box[1]:9.3f}{box[2]:9.3f}{90.0:7.2f}{90.0:7.2f}{90.0:7.2f} P 1           1"
    lines[0] = "REMARK   qmml shipped structure (data/scripts/make_electrolyte.py)"
    pdb.write_text("\n".join([lines[0], cryst] + lines[1:]) + "\n")
    print(f"wrote {pdb} and nacl_water.psf: {describe(atoms, box)}")


if __name__ == "__main__":
    main()
