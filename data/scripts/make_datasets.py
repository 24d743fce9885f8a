"""Regenerate the GFN2-xTB datasets behind the shipped environment models.

    python data/scripts/make_datasets.py water   data/datasets   # ~25 min on 1 core
    python data/scripts/make_datasets.py organic data/datasets   # ~30 min on 1 core

Configurations come from Langevin trajectories driven by GFN2-xTB itself (tblite), so every saved
frame is labelled by the step that produced it.  Sampling uses deuterium masses and a 1 fs step:
Langevin dynamics samples the Boltzmann distribution of configurations whatever the masses, and
heavier hydrogens allow a longer step.  Clusters feel a flat-bottom wall on their oxygens during
sampling only (it keeps molecules from evaporating); labels never include it.  Test sets are
separate trajectories (other sizes or seeds) from the training sets.

Needs ``pip install tblite rdkit`` (rdkit only for the organic set).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from qmml import units
from qmml.ml.dataset import Dataset, Frame
from qmml.errors import QmmlError
from qmml.ml.labelling import XTBLabeller, molecules_from_distances

WATER_DENSITY_PER_A3 = 0.0334  # molecules per Å^3 at 1 g/cm^3
OH, HOH = 0.9572, np.radians(104.52)


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array([[a*a+b*b-c*c-d*d, 2*(b*c-a*d), 2*(b*d+a*c)],
                     [2*(b*c+a*d), a*a-b*b+c*c-d*d, 2*(c*d-a*b)],
                     [2*(b*d-a*c), 2*(c*d+a*b), a*a-b*b-c*c+d*d]])


def water(rng, centre):
    local = np.array([[0, 0, 0], [OH, 0, 0], [OH * np.cos(HOH), OH * np.sin(HOH), 0]])
    return centre + local @ random_rotation(rng).T


def place_waters(rng, n, *, radius=None, cell=None, existing=(), min_dist=2.7):
    """Random non-overlapping waters in a sphere (radius) or a periodic cubic cell."""
    centres = [np.asarray(p) for p in existing]
    atoms = []
    tries = 0
    while len(atoms) < n:
        tries += 1
        if tries > 20000:
            raise RuntimeError("could not place waters; lower the density")
        if cell is not None:
            c = rng.uniform(0, cell, 3)
            d = [np.linalg.norm((c - p) - cell * np.round((c - p) / cell)) for p in centres]
        else:
            c = rng.uniform(-radius, radius, 3)
            if np.linalg.norm(c) > radius:
                continue
            d = [np.linalg.norm(c - p) for p in centres]
        if d and min(d) < min_dist:
            continue
        centres.append(c)
        atoms.append(water(rng, c))
    return np.concatenate(atoms) if atoms else np.zeros((0, 3))


def langevin_frames(labeller, elements, x, *, temperature_K, steps, every, burn_in, rng, wall=None,
                    timestep_fs=1.0, friction_per_fs=0.02):
    """BAOAB Langevin trajectory; yields (positions, label) every ``every`` steps after ``burn_in``."""
    z = np.asarray(elements)
    m = np.where(z == 1, 2.014, [units_mass(e) for e in z])[:, None]  # deuterium for sampling only
    kT = units.BOLTZMANN_EV_PER_K * temperature_K
    v = rng.normal(size=x.shape) * np.sqrt(kT / (m * units.AMU_A2_PER_FS2_EV))
    c1 = np.exp(-friction_per_fs * timestep_fs)
    c2 = np.sqrt((1 - c1 * c1) * kT / (m * units.AMU_A2_PER_FS2_EV))
    acc = 1.0 / (m * units.AMU_A2_PER_FS2_EV)  # (eV/Å) -> Å/fs^2

    def force(x):
        label = labeller(x)
        f = label.forces + (wall(x) if wall else 0.0)
        return label, f

    label, f = force(x)
    for step in range(1, steps + 1):
        v = v + 0.5 * timestep_fs * f * acc
        x = x + 0.5 * timestep_fs * v
        v = c1 * v + c2 * rng.normal(size=x.shape)
        x = x + 0.5 * timestep_fs * v
        label, f = force(x)
        v = v + 0.5 * timestep_fs * f * acc
        if step > burn_in and step % every == 0:
            yield x.copy(), label


def units_mass(z):
    from qmml.elements import MASSES_AMU, SYMBOLS

    return MASSES_AMU[SYMBOLS[int(z) - 1]]


def oxygen_wall(elements, radius, k=1.0):
    oxygen = np.asarray(elements) == 8

    def wall(x):
        centre = x[oxygen].mean(0)
        d = x - centre
        r = np.linalg.norm(d, axis=1, keepdims=True)
        excess = np.clip(r - radius, 0, None) * oxygen[:, None]
        return -k * excess * d / np.maximum(r, 1e-12)
    return wall


def run_system(dataset, name, elements, x, *, charge, molecule, molecule_charges, cell, temperature_K, steps,
               every, burn_in, seed, wall=None):
    rng = np.random.default_rng(seed)
    labeller = XTBLabeller(elements, charge=charge, cell=cell)
    t0, n0 = time.time(), len(dataset)
    frames = langevin_frames(labeller, elements, x, temperature_K=temperature_K, steps=steps, every=every,
                             burn_in=burn_in, rng=rng, wall=wall)
    while True:
        try:
            pos, label = next(frames)
        except StopIteration:
            break
        except QmmlError as err:  # keep the frames so far; a failed SCF ends only this trajectory
            print(f"{name}: trajectory stopped early: {err}", flush=True)
            break
        dataset.append(Frame(np.asarray(elements), pos, label.energy, label.forces, label.charges, molecule,
                             np.asarray(molecule_charges, float), None if cell is None else np.asarray(cell)))
    print(f"{name}: {len(elements)} atoms, {len(dataset) - n0} frames, {time.time() - t0:.0f} s", flush=True)


def water_cluster(rng, n):
    radius = (3 * n / (4 * np.pi * WATER_DENSITY_PER_A3)) ** (1 / 3)
    x = place_waters(rng, n, radius=radius)
    return np.tile([8, 1, 1], n), x, radius


def water_sets(out: Path, splits=("train", "test")):
    meta = {"reference": "GFN2-xTB (tblite 0.8), Mulliken charges",
            "sampling": "Langevin 1 fs, deuterium masses, clusters with a flat-bottom O wall"}
    for split, clusters, boxes, seed0 in (("train", (4, 8, 12, 16, 24, 32), (16, 16), 0),
                                         ("test", (6, 20, 28), (16,), 100)):
        if split not in splits:
            continue
        ds = Dataset(metadata={**meta, "split": split, "description": f"liquid water {split} set"})
        for k, n in enumerate(clusters):
            rng = np.random.default_rng(seed0 + k)
            z, x, radius = water_cluster(rng, n)
            for T in (300, 400):
                run_system(ds, f"water cluster {n} {T} K", z, x, charge=0, molecule=np.repeat(np.arange(n), 3),
                           molecule_charges=np.zeros(n), cell=None, temperature_K=T,
                           steps=400 if split == "train" else 160, every=4, burn_in=40, seed=seed0 + 10 * k + T,
                           wall=oxygen_wall(z, radius + 1.0))
        for k, n in enumerate(boxes):
            rng = np.random.default_rng(seed0 + 50 + k)
            length = (n / WATER_DENSITY_PER_A3) ** (1 / 3)
            x = place_waters(rng, n, cell=length, min_dist=2.5)
            run_system(ds, f"water box {n}", np.tile([8, 1, 1], n), x, charge=0,
                       molecule=np.repeat(np.arange(n), 3), molecule_charges=np.zeros(n),
                       cell=np.eye(3) * length, temperature_K=330, steps=200 if split == "train" else 120,
                       every=4, burn_in=40, seed=seed0 + 60 + k)
        ds.save(out / f"water_{split}.npz")


# -- organic ------------------------------------------------------------------------------
AMINO_ACID_SIDE_CHAINS = {
    "GLY": "[H]", "ALA": "C", "SER": "CO", "CYS": "CS", "VAL": "C(C)C", "THR": "[C@H](O)C", "LEU": "CC(C)C",
    "ILE": "[C@H](CC)C", "MET": "CCSC", "PRO": None, "PHE": "Cc1ccccc1", "TYR": "Cc1ccc(O)cc1",
    "TRP": "Cc1c[nH]c2ccccc12", "HIS": "Cc1c[nH]cn1", "ASN": "CC(N)=O", "GLN": "CCC(N)=O", "ASP": "CC(=O)[O-]",
    "GLU": "CCC(=O)[O-]", "LYS": "CCCC[NH3+]", "ARG": "CCCNC(N)=[NH2+]",
}
SMALL_MOLECULES = [
    "C", "CC", "CO", "CCO", "CC(C)=O", "CC(=O)O", "CC(=O)[O-]", "CN", "C[NH3+]", "NC=O", "CNC(C)=O", "c1ccccc1",
    "Cc1ccccc1", "Oc1ccccc1", "c1c[nH]cn1", "c1ccncc1", "CSC", "CS", "NC(N)=O", "[NH3+]CC(=O)[O-]", "CS(C)=O",
    "OCC(O)CO", "CC#N", "C1CCOC1",
]


def capped(residue):
    if residue == "PRO":
        return "CC(=O)N1CCC[C@H]1C(=O)NC"
    side = AMINO_ACID_SIDE_CHAINS[residue]
    return "CC(=O)NC(" + side + ")C(=O)NC" if side != "[H]" else "CC(=O)NCC(=O)NC"


def embed(smiles, seed):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise RuntimeError(f"rdkit could not embed {smiles}")
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    x = mol.GetConformer().GetPositions()
    return z, x - x.mean(0), int(Chem.GetFormalCharge(mol))


def solvate(rng, z, x, n_water, ions=()):
    """Add ions and waters in a shell around a solute (cluster)."""
    radius = np.max(np.linalg.norm(x, axis=1)) + 3.0 if len(x) else 3.0
    extra_z, extra_x = [], []
    for ion in ions:
        while True:
            p = rng.uniform(-radius, radius, 3)
            if np.linalg.norm(p) < radius and (len(x) == 0 or np.min(np.linalg.norm(x - p, axis=1)) > 2.8) and \
                    all(np.linalg.norm(p - q) > 3.5 for q in extra_x):
                break
        extra_z.append(ion)
        extra_x.append(p)
    anchors = list(x[z > 1]) + extra_x
    while True:  # grow the sphere until the waters fit around the solute
        try:
            w = place_waters(rng, n_water, radius=radius, existing=anchors, min_dist=2.8)
            break
        except RuntimeError:
            radius += 0.5
    z_all = np.concatenate([z, np.array(extra_z, int), np.tile([8, 1, 1], n_water)])
    x_all = np.concatenate([x, np.array(extra_x).reshape(-1, 3), w])
    return z_all, x_all, radius


def organic_sets(out: Path, splits=("train", "test")):
    meta = {"reference": "GFN2-xTB (tblite 0.8), Mulliken charges",
            "sampling": "Langevin 1 fs, deuterium masses; solvated clusters with a flat-bottom O wall"}
    residues = list(AMINO_ACID_SIDE_CHAINS)
    systems = [(f"Ace-{r}-NMe", capped(r), 0, ()) for r in residues]
    systems += [(s, s, 0, ()) for s in SMALL_MOLECULES]
    systems += [(f"Ace-{r}-NMe + 6 H2O", capped(r), 6, ()) for r in ("ALA", "SER", "ASP", "LYS", "CYS", "HIS")]
    systems += [(f"{s} + 5 H2O", s, 5, ()) for s in ("CC(=O)[O-]", "C[NH3+]", "CO", "CS", "NC=O")]
    systems += [("Na+ + 8 H2O", "", 8, (11,)), ("Cl- + 8 H2O", "", 8, (17,)), ("NaCl + 12 H2O", "", 12, (11, 17)),
                ("Ace-GLU-NMe + Na+ + 6 H2O", capped("GLU"), 6, (11,)),
                ("Ace-ARG-NMe + Cl- + 6 H2O", capped("ARG"), 6, (17,))]
    test_names = {"Ace-ALA-NMe", "Ace-LYS-NMe", "Ace-MET-NMe", "Ace-TRP-NMe", "Ace-ASP-NMe", "CNC(C)=O", "c1ccccc1",
                  "CS", "Ace-SER-NMe + 6 H2O", "Na+ + 8 H2O", "Cl- + 8 H2O", "C[NH3+] + 5 H2O"}
    for split in splits:
        ds = Dataset(metadata={**meta, "split": split,
                               "description": f"capped amino acids, small organics, water, Na+/Cl- ({split} set)"})
        for k, (name, smiles, n_water, ions) in enumerate(systems):
            if split == "test" and name not in test_names:
                continue
            seed = k + (1000 if split == "test" else 0)
            rng = np.random.default_rng(seed)
            z, x, q = embed(smiles, seed) if smiles else (np.zeros(0, int), np.zeros((0, 3)), 0)
            wall = None
            if n_water or ions:
                z, x, radius = solvate(rng, z, x, n_water, ions)
                wall = oxygen_wall(z, radius + 1.0)
            ion_charge = {11: 1, 17: -1}
            charge = q + sum(ion_charge[i] for i in ions)
            molecule = molecules_from_distances(z, x)
            mol_q = np.zeros(molecule.max() + 1)
            for i in np.flatnonzero(np.isin(z, (11, 17))):
                mol_q[molecule[i]] = ion_charge[int(z[i])]
            if q:
                mol_q[molecule[0]] = q  # the solute is molecule 0 (its atoms come first)
            for T in ((300, 450) if split == "train" else (350,)):
                run_system(ds, f"{name} {T} K", z, x, charge=charge, molecule=molecule, molecule_charges=mol_q,
                           cell=None, temperature_K=T, steps=240 if split == "train" else 120, every=8, burn_in=24,
                           seed=seed * 7 + T, wall=wall)
        ds.save(out / f"organic_{split}.npz")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("water", "organic"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--split", choices=("train", "test"), action="append",
                        help="generate only this split (repeatable; default both)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    {"water": water_sets, "organic": organic_sets}[args.which](args.out, tuple(args.split or ("train", "test")))
    sys.exit(0)
