"""Regenerate the active-site tutorial's structure: the capped dipeptide Ace-Ser-His-NMe in a water droplet.

    python data/scripts/make_peptide_water.py      # ~2 min on 2 cores; needs rdkit (pip install 'qmml[datagen]')

Builds Ace-Ser-His-NMe (neutral histidine protonated at ND1, HID; residue name HIS) from SMILES with
RDKit: 30 seeded ETKDG conformers, MMFF-optimized; keeps the lowest-energy conformer whose Ser OG lies within
3.5 Å of a histidine ring nitrogen (a Ser-His contact, as in a catalytic dyad).  Atom names follow the PDB
(ACE: CH3 C O HH31-33; SER: N H CA HA CB HB2 HB3 OG HG C O; HIS: ... CG ND1 HD1 CD2 HD2 CE1 HE1 NE2; NME: N H
CH3 HH31-33).  Topology charges: Gasteiger charges shifted so each residue is neutral (the ML model predicts
its own; only residue totals matter to qmml).  Waters on a jittered lattice within 11 Å of the peptide centre
(data/scripts/make_structures.py), relaxed around the fixed peptide with the shipped `organic` model, then
everything for 200 Langevin steps (0.5 fs, 300 K, friction 20/ps) with the same model.  Writes
data/structures/peptide_water.{psf,pdb}.  Deterministic for a given RDKit/torch build.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_structures import OUT, MASSES, water_bonds, water_droplet, write_pdb, write_psf  # noqa: E402

import qmml  # noqa: E402
from qmml.md.integrators import drift, kick, thermostat  # noqa: E402

MASSES.setdefault("N", 14.007)
SMILES = "CC(=O)N[C@@H](CO)C(=O)N[C@@H](Cc1cnc[nH]1)C(=O)NC"
# (residue, resid, name) of the SMILES heavy atoms in order, and the names of the hydrogens on each
HEAVY = [("ACE", 1, "CH3"), ("ACE", 1, "C"), ("ACE", 1, "O"),
         ("SER", 2, "N"), ("SER", 2, "CA"), ("SER", 2, "CB"), ("SER", 2, "OG"), ("SER", 2, "C"), ("SER", 2, "O"),
         ("HIS", 3, "N"), ("HIS", 3, "CA"), ("HIS", 3, "CB"), ("HIS", 3, "CG"), ("HIS", 3, "CD2"),
         ("HIS", 3, "NE2"), ("HIS", 3, "CE1"), ("HIS", 3, "ND1"), ("HIS", 3, "C"), ("HIS", 3, "O"),
         ("NME", 4, "N"), ("NME", 4, "CH3")]
HYDROGENS = {"CH3": ["HH31", "HH32", "HH33"], "N": ["H"], "CA": ["HA"], "CB": ["HB2", "HB3"], "OG": ["HG"],
             "CD2": ["HD2"], "CE1": ["HE1"], "ND1": ["HD1"]}


def peptide_atoms(n_conformers: int = 30, seed: int = 11):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(SMILES))
    labels = [None] * mol.GetNumAtoms()
    for i, label in enumerate(HEAVY):
        labels[i] = label
        hydrogens = [a.GetIdx() for a in mol.GetAtomWithIdx(i).GetNeighbors() if a.GetSymbol() == "H"]
        names = HYDROGENS.get(label[2], [])
        if len(hydrogens) != len(names):
            raise RuntimeError(f"{label}: {len(hydrogens)} hydrogens in the SMILES, {len(names)} names")
        for h, name in zip(hydrogens, names):
            labels[h] = (label[0], label[1], name)
    conformers = AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, randomSeed=seed)
    energies = [e for _, e in AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)]
    where = {(r, n): i for i, (r, _, n) in enumerate(labels)}
    og, ring_n = where["SER", "OG"], [where["HIS", "ND1"], where["HIS", "NE2"]]

    def contact(cid):
        x = mol.GetConformer(cid).GetPositions()
        return min(np.linalg.norm(x[og] - x[n]) for n in ring_n)

    candidates = [c for c in conformers if contact(c) < 3.5] or list(conformers)
    best = min(candidates, key=lambda c: energies[c])
    x = mol.GetConformer(best).GetPositions()
    x -= x.mean(axis=0)
    AllChem.ComputeGasteigerCharges(mol)
    q = np.array([a.GetDoubleProp("_GasteigerCharge") for a in mol.GetAtoms()])
    resid = np.array([lab[1] for lab in labels])
    for r in np.unique(resid):  # neutral residues
        q[resid == r] -= q[resid == r].mean()
    atoms = [dict(name=n, element=mol.GetAtomWithIdx(i).GetSymbol(), charge=float(q[i]), pos=x[i], resname=r,
                  resid=k, segid="PEP") for i, (r, k, n) in enumerate(labels)]
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    print(f"conformer {best}: MMFF {energies[best]:.2f} kcal/mol, Ser OG - His N {contact(best):.2f} Å")
    return atoms, bonds


def langevin(atoms, bonds, *, steps, free, seed, friction_per_fs=0.02):
    """BAOAB with the shipped organic model on every atom; only ``free`` atoms move."""
    system = qmml.System.from_arrays([a["element"] for a in atoms], [a["pos"] for a in atoms], bonds=bonds,
                                     charges=[a["charge"] for a in atoms])
    potential = qmml.MLPotential(qmml.load_model("organic"), system, total_charge=0)
    masses, mask = system.masses, free[:, None]
    gen = np.random.Generator(np.random.PCG64(seed))
    x, v = system.positions.copy(), np.zeros_like(system.positions)
    forces = potential.compute(x).forces * mask
    for _ in range(steps):
        v = kick(v, forces, masses, 0.25)
        x = drift(x, v * mask, 0.25)
        v = thermostat(v, masses, 0.5, 300.0, friction_per_fs, gen) * mask
        x = drift(x, v, 0.25)
        forces = potential.compute(x).forces * mask
        v = kick(v, forces, masses, 0.25)
    for a, p in zip(atoms, x):
        a["pos"] = p
    return atoms


def main():
    peptide, peptide_bonds = peptide_atoms()
    waters = water_droplet(np.array([a["pos"] for a in peptide]), radius=11.0)
    for k, a in enumerate(waters):
        a["resid"] = 5 + k // 3
    atoms = peptide + waters
    bonds = peptide_bonds + water_bonds(len(peptide), len(waters) // 3)
    solvent = np.array([a["segid"] == "SOLV" for a in atoms])
    atoms = langevin(atoms, bonds, steps=200, free=solvent, seed=3)
    atoms = langevin(atoms, bonds, steps=200, free=np.ones(len(atoms), bool), seed=5)
    x = np.array([a["pos"] for a in atoms])
    stretched = [(i, j) for i, j in bonds if np.linalg.norm(x[i] - x[j]) > 1.6]
    if stretched:
        raise RuntimeError(f"bonds broke during equilibration: {stretched}")
    write_psf(OUT / "peptide_water.psf", atoms, bonds)
    write_pdb(OUT / "peptide_water.pdb", atoms, bonds)
    print(f"wrote {OUT}/peptide_water.psf/.pdb: Ace-Ser-His-NMe + {len(waters) // 3} waters ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
