"""Regenerate the embedding-fidelity set: 8 solutes, each with its nearest 16 waters.

    OMP_NUM_THREADS=1 python data/scripts/make_embedding_set.py [--only NAME ...] [--steps 500]

For each solute (Cl-, Na+, acetate, methylammonium, methanol, N-methylacetamide, imidazole, water):

1. the solute: RDKit ETKDG + MMFF94 (one atom for the ions), randomly rotated (seeded) and centred
   in the periodic 128-water box ``data/structures/water_box.pdb`` (15.65 Å, 1.0 g/cm^3);
2. waters are unwrapped around the box centre (whole molecules, nearest image of their oxygen) and
   every water with an atom within 2.2 Å of a solute atom is removed (the count is recorded);
3. a cluster of the solute + its nearest 30 waters (oxygen distance to any solute atom) is relaxed
   with GFN2-xTB (``qmml.ml.XTBLabeller``): 30 steps of steepest descent with 0.05 Å capped steps
   (removes the clashes of the cut), then 500 steps (0.5 ps) of BAOAB Langevin dynamics at 300 K,
   1 fs, friction 0.02/fs, deuterium masses (as ``data/scripts/make_datasets.py``), with a
   flat-bottom wall (1 eV/Å^2) that keeps every water oxygen within its starting distance + 1 Å of
   the solute's centroid, so no water evaporates;
4. from the last frame, the solute and its nearest 16 waters (by oxygen distance to any solute atom,
   whole molecules) are written to ``data/structures/embedding_set/NAME.xyz``: solute atoms first,
   then the waters as O, H, H; the comment line records the solute's charge (e), the atom counts and
   how the structure was made.

GFN2-xTB keeps Na+ at 3.0-3.15 Å from its six nearest water oxygens (also after a steepest-descent
minimization of the final cluster), longer than the ~2.4 Å of experiment: the Na+ structure is GFN2's,
and the benchmark compares all its energies at that one geometry.

Deterministic for a given tblite/RDKit build (seeds per solute); about 2 minutes per solute on one
core (~0.2 s per GFN2 step for ~100 atoms).  ``benchmarks/embedding_fidelity.py`` reads the files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_datasets, the shared sampling loop
BOX_PDB = ROOT / "data" / "structures" / "water_box.pdb"
OUT = ROOT / "data" / "structures" / "embedding_set"

#: name -> (SMILES or element symbol, charge in e).  Order = order of the benchmark tables.
SOLUTES: dict[str, tuple[str, int]] = {
    "chloride": ("Cl", -1),
    "sodium": ("Na", +1),
    "acetate": ("CC(=O)[O-]", -1),
    "methylammonium": ("C[NH3+]", +1),
    "methanol": ("CO", 0),
    "n_methylacetamide": ("CNC(C)=O", 0),
    "imidazole": ("c1c[nH]cn1", 0),
    "water": ("O", 0),
}

CLASH_A = 2.2          # remove box waters with any atom closer than this to a solute atom
N_RELAX_WATERS = 30    # waters in the GFN2-xTB cluster that relaxes the shell
N_KEEP_WATERS = 16     # waters kept in the benchmark structure
TEMPERATURE_K = 300.0
TIMESTEP_FS = 1.0
FRICTION_PER_FS = 0.02
WALL_K_EV_A2 = 1.0
WALL_MARGIN_A = 1.0


def read_water_box(path: Path = BOX_PDB):
    """Water positions (n_waters, 3 atoms O H H, 3), Å, and the cubic box length, Å."""
    xyz, box = [], None
    for line in path.read_text().splitlines():
        if line.startswith("CRYST1"):
            box = float(line[6:15])
        elif line.startswith(("ATOM", "HETATM")):
            xyz.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    if box is None or len(xyz) % 3:
        raise ValueError(f"{path}: expected a CRYST1 record and whole O,H,H waters")
    return np.array(xyz).reshape(-1, 3, 3), box


def build_solute(name: str, rng: np.random.Generator):
    """Element symbols and positions (Å, centroid at the origin, random orientation) of one solute."""
    from scipy.spatial.transform import Rotation

    spec, charge = SOLUTES[name]
    if spec in ("Cl", "Na"):
        return [spec], np.zeros((1, 3)), charge
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(spec))
    if Chem.GetFormalCharge(mol) != charge:
        raise ValueError(f"{name}: SMILES {spec} has charge {Chem.GetFormalCharge(mol)}, expected {charge}")
    params = AllChem.ETKDGv3()
    params.randomSeed = int(rng.integers(1, 2**31 - 1))
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise RuntimeError(f"{name}: RDKit could not embed {spec}")
    if AllChem.MMFFOptimizeMolecule(mol, maxIters=2000) != 0:
        raise RuntimeError(f"{name}: MMFF94 did not converge for {spec}")
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    x = mol.GetConformer().GetPositions()
    if name == "n_methylacetamide":  # the trans amide (H-N-C=O 180 degrees) dominates in water
        hnco = _dihedral_deg(x, _nma_hnco(mol))
        if abs(hnco) < 150:
            raise RuntimeError(f"N-methylacetamide embedded as cis (H-N-C=O {hnco:.0f} deg); change the seed")
    x = x - x.mean(0)
    x = x @ Rotation.random(random_state=int(rng.integers(2**31 - 1))).as_matrix().T
    return elements, x, charge


def _nma_hnco(mol):
    n = next(a for a in mol.GetAtoms() if a.GetSymbol() == "N")
    h = next(b.GetIdx() for b in n.GetNeighbors() if b.GetSymbol() == "H")
    c = next(b for b in n.GetNeighbors() if any(x.GetSymbol() == "O" for x in b.GetNeighbors()))
    o = next(x.GetIdx() for x in c.GetNeighbors() if x.GetSymbol() == "O")
    return h, n.GetIdx(), c.GetIdx(), o


def _dihedral_deg(x, idx):
    p0, p1, p2, p3 = (x[i] for i in idx)
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - (b0 @ b1) * b1, b2 - (b2 @ b1) * b1
    return float(np.degrees(np.arctan2(np.cross(b1, v) @ w, v @ w)))


def solvate(solute_x: np.ndarray, waters: np.ndarray, box: float):
    """Put the solute at the box centre; waters unwrapped around it, clashing ones removed.

    Returns the solute positions, the kept waters (n, 3, 3) sorted by oxygen distance to the solute
    (Å) and the number of waters removed.
    """
    centre = np.full(3, box / 2)
    solute = solute_x + centre
    shift = -box * np.round((waters[:, 0] - centre) / box)  # nearest image of each oxygen, whole molecule
    waters = waters + shift[:, None, :]
    d = np.linalg.norm(waters[:, :, None, :] - solute[None, None, :, :], axis=-1)  # (water, atom, solute atom)
    clash = (d < CLASH_A).any(axis=(1, 2))
    waters = waters[~clash]
    order = np.argsort(np.linalg.norm(waters[:, 0, None, :] - solute[None], axis=-1).min(1))
    return solute, waters[order], int(clash.sum())


def nearest_waters(solute: np.ndarray, waters: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` waters (n, 3, 3) whose oxygen is closest to any solute atom, nearest first."""
    d = np.linalg.norm(waters[:, 0, None, :] - solute[None], axis=-1).min(1)
    return waters[np.argsort(d, kind="stable")[:n]]


def relax_cluster(elements, x, n_solute: int, charge: int, *, steps: int, seed: int, log=print):
    """GFN2-xTB steepest descent then BAOAB Langevin of a solute + water cluster (see module docstring).

    Returns the final positions (Å) and the GFN2 energy of the last frame (eV).
    """
    from qmml.elements import ATOMIC_NUMBERS
    from qmml.ml import XTBLabeller

    z = np.array([ATOMIC_NUMBERS[e] for e in elements])
    labeller = XTBLabeller(z, charge=charge)
    oxygen = np.zeros(len(z), bool)
    oxygen[n_solute::3] = True  # water oxygens only; the solute moves freely
    centre0 = x[:n_solute].mean(0)
    radius = np.linalg.norm(x[oxygen] - centre0, axis=1).max() + WALL_MARGIN_A

    def wall(x):
        d = x - x[:n_solute].mean(0)
        r = np.linalg.norm(d, axis=1, keepdims=True)
        excess = np.clip(r - radius, 0, None) * oxygen[:, None]
        return -WALL_K_EV_A2 * excess * d / np.maximum(r, 1e-12)

    def force(x):
        label = labeller(x)
        return label, label.forces + wall(x)

    # capped steepest descent: the 2.2 Å cut leaves close contacts that a 1 fs step should not meet
    label, f = force(x)
    for _ in range(30):
        step = 0.01 * f  # Å per eV/Å
        step *= np.minimum(1.0, 0.05 / np.maximum(np.linalg.norm(step, axis=1, keepdims=True), 1e-12))
        x = x + step
        label, f = force(x)
    log(f"    after descent: E = {label.energy:.3f} eV, max |F| = {np.linalg.norm(f, axis=1).max():.2f} eV/Å")

    from make_datasets import langevin_frames  # the BAOAB loop with deuterium masses of the shipped datasets

    rng = np.random.default_rng(seed)
    every = 100 if steps % 100 == 0 else steps  # the last frame is always the one returned
    for k, (x, label) in enumerate(langevin_frames(labeller, z, x, temperature_K=TEMPERATURE_K, steps=steps,
                                                   every=every, burn_in=0, rng=rng, wall=wall,
                                                   timestep_fs=TIMESTEP_FS, friction_per_fs=FRICTION_PER_FS), 1):
        log(f"    step {every * k}: E = {label.energy:.3f} eV")
    return x, float(label.energy)


def write_xyz(path: Path, elements, x, comment: str) -> None:
    lines = [str(len(elements)), comment]
    lines += [f"{e:<2s} {p[0]:12.6f} {p[1]:12.6f} {p[2]:12.6f}" for e, p in zip(elements, x)]
    path.write_text("\n".join(lines) + "\n")


def read_xyz(path: Path):
    """Elements, positions (Å) and the ``key=value`` fields of the comment line of one set file."""
    lines = Path(path).read_text().splitlines()
    n = int(lines[0])
    info = dict(item.split("=", 1) for item in lines[1].split() if "=" in item)
    elements = [ln.split()[0] for ln in lines[2:2 + n]]
    x = np.array([[float(v) for v in ln.split()[1:4]] for ln in lines[2:2 + n]])
    return elements, x, info


def make_one(name: str, seed: int, steps: int, log=print) -> Path:
    rng = np.random.default_rng(1000 + seed)
    waters, box = read_water_box()
    elements, sx, charge = build_solute(name, rng)
    solute, waters, removed = solvate(sx, waters, box)
    cluster_waters = waters[:N_RELAX_WATERS]
    n_solute = len(elements)
    all_elements = elements + ["O", "H", "H"] * len(cluster_waters)
    x = np.concatenate([solute, cluster_waters.reshape(-1, 3)])
    log(f"{name}: {n_solute} solute atoms, charge {charge:+d}, {removed} box waters removed, "
        f"relaxing with {len(cluster_waters)} waters ({len(all_elements)} atoms)")
    t0 = time.perf_counter()
    x, energy = relax_cluster(all_elements, x, n_solute, charge, steps=steps, seed=seed, log=log)
    keep = nearest_waters(x[:n_solute], x[n_solute:].reshape(-1, 3, 3), N_KEEP_WATERS)
    out_x = np.concatenate([x[:n_solute], keep.reshape(-1, 3)])
    out_el = elements + ["O", "H", "H"] * N_KEEP_WATERS
    d_min = np.linalg.norm(keep.reshape(-1, 3)[:, None] - x[None, :n_solute], axis=-1).min()
    comment = (f"solute={name} charge={charge} n_solute={n_solute} n_waters={N_KEEP_WATERS} seed={seed} "
               f"removed_box_waters={removed} relaxed=GFN2-xTB_cluster_{len(cluster_waters)}w_"
               f"{steps}x{TIMESTEP_FS:g}fs_{TEMPERATURE_K:g}K E_gfn2_relax_cluster_eV={energy:.6f}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.xyz"
    write_xyz(path, out_el, out_x, comment)
    log(f"{name}: wrote {path.relative_to(ROOT)} ({len(out_el)} atoms, closest water atom {d_min:.2f} Å), "
        f"{time.perf_counter() - t0:.0f} s")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(SOLUTES), help="regenerate only these solutes")
    parser.add_argument("--steps", type=int, default=500, help="Langevin steps of 1 fs (default 500)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    for seed, name in enumerate(SOLUTES):
        if args.only and name not in args.only:
            continue
        make_one(name, seed, args.steps)
        sys.stdout.flush()
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
