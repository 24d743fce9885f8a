"""Regenerate the active-site tutorial's structure: the capped dipeptide Ace-Ser-His-NMe in a water droplet.

    OMP_NUM_THREADS=1 python data/scripts/make_peptide_water.py   # ~9 min on 1 core; needs rdkit
                                                                   # (pip install 'qmml[datagen]'); no downloads

Peptide.  Ace-Ser-His-NMe with neutral histidine protonated at ND1 (HID, residue name HIS), built from SMILES
with RDKit: 30 seeded ETKDG conformers, each MMFF94-optimized.  Kept: the lowest-MMFF conformer with a Ser-His
hydrogen bond as in a catalytic dyad (Ser OG within 3.5 Å of His NE2, the acceptor of HID), else the lowest one
with OG within 3.5 Å of either ring N, else the most extended one.  Atom names follow the PDB: ACE (resid 1: CH3
C O HH31-33), SER (2: N H CA HA CB HB2 HB3 OG HG C O), HIS (3: N H CA HA CB HB2 HB3 CG ND1 HD1 CD2 HD2 CE1 HE1
NE2 C O), NME (4: N H CH3 HH31-33); segid PEP.  The names come from the SMILES atom order (heavy atoms) and
their bonded hydrogens, checked against the expected element and hydrogen count of every named atom.
Charges: AMBER ff14SB (= ff94/ff99SB for these residues; ACE, SER, HID, NME), every residue neutral.

Water.  TIP3P geometry and charges, residue TIP3 (OH2 H1 H2), resid 5.., segid SOLV, on the jittered 3.1 Å
lattice of data/scripts/make_structures.py within 10.5 Å of the peptide centre.  make_structures.water_droplet
keeps a site only if all its atoms are 2.6 Å from every placed atom, which forbids hydrogen bonds and fills
about 40% of the sites (61 waters here, under half the liquid density); this script uses the same lattice but tries
up to 30 seeded orientations per site and a hydrogen-bond-aware test (heavy-heavy 2.7 Å, any pair with H 1.8 Å),
giving a droplet near liquid density (131 waters).

Relaxation with the shipped ML models (`qmml.MLPotential`, total charge 0) in a subtractive ML/ML scheme:
E = E_organic(all) - E_organic(waters) + E_water(waters), i.e. the peptide and its contacts with water from
`organic`, water-water from `water`.  `organic` alone does not keep this droplet intact: trained on clusters of
at most 8 waters, it pulls water oxygens to 2.3 Å and transfers a proton between waters (H3O+ / OH-, which it
puts eV below two waters) within ~150 fs of 300 K dynamics, with or without the peptide.  Schedule: capped
steepest descent of the water around the fixed peptide (50 steps), BAOAB Langevin of the water around the fixed
peptide (200 steps of 0.5 fs, 300 K, friction 50/ps), then of everything (300 steps, friction 20/ps), and a
short quench of everything (100 capped steepest-descent steps of at most 0.02 Å) so that the shipped structure
starts without large thermal forces.  A flat-bottom wall (1 eV/Å², 1.5 Å beyond the droplet radius) on the
water oxygens keeps the droplet together; safety nets that should rarely act (the script prints how often
they did): flat-bottom bond guards (50 eV/Å² beyond 1.15x a bond's starting length) and a repulsion between
heavy atoms of different molecules closer than 2.5 Å (10 eV/Å²).  Checks at the end: no bond longer than 1.3x
its starting length, every hydrogen closest to its bonded atom (no dissociated water, no proton transfer),
peptide and every water neutral.

Writes data/structures/peptide_water.{psf,pdb} (PDB with CONECT records).  Deterministic for a given
RDKit/torch build and thread count.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_structures import MASSES, OUT, TIP3P_CHARGES, water_bonds, write_pdb, write_psf  # noqa: E402

import qmml  # noqa: E402
from qmml.md.integrators import drift, kick, thermostat  # noqa: E402

MASSES.setdefault("N", 14.007)
SMILES = "CC(=O)N[C@@H](CO)C(=O)N[C@@H](Cc1cnc[nH]1)C(=O)NC"  # L-Ser, L-His (ND1-H)
# (residue, resid, name) of the SMILES heavy atoms, in SMILES order
HEAVY = [("ACE", 1, "CH3"), ("ACE", 1, "C"), ("ACE", 1, "O"),
         ("SER", 2, "N"), ("SER", 2, "CA"), ("SER", 2, "CB"), ("SER", 2, "OG"), ("SER", 2, "C"), ("SER", 2, "O"),
         ("HIS", 3, "N"), ("HIS", 3, "CA"), ("HIS", 3, "CB"), ("HIS", 3, "CG"), ("HIS", 3, "CD2"),
         ("HIS", 3, "NE2"), ("HIS", 3, "CE1"), ("HIS", 3, "ND1"), ("HIS", 3, "C"), ("HIS", 3, "O"),
         ("NME", 4, "N"), ("NME", 4, "CH3")]
# names of the hydrogens on each heavy atom (by heavy-atom name; the same in every residue)
HYDROGENS = {"CH3": ["HH31", "HH32", "HH33"], "N": ["H"], "CA": ["HA"], "CB": ["HB2", "HB3"], "OG": ["HG"],
             "CD2": ["HD2"], "CE1": ["HE1"], "ND1": ["HD1"]}
# AMBER ff14SB charges (e); each residue sums to 0
FF14SB = {
    "ACE": {"HH31": 0.1123, "CH3": -0.3662, "HH32": 0.1123, "HH33": 0.1123, "C": 0.5972, "O": -0.5679},
    "SER": {"N": -0.4157, "H": 0.2719, "CA": -0.0249, "HA": 0.0843, "CB": 0.2117, "HB2": 0.0352, "HB3": 0.0352,
            "OG": -0.6546, "HG": 0.4275, "C": 0.5973, "O": -0.5679},
    "HIS": {"N": -0.4157, "H": 0.2719, "CA": 0.0188, "HA": 0.0881, "CB": -0.0462, "HB2": 0.0402, "HB3": 0.0402,
            "CG": -0.0266, "ND1": -0.3811, "HD1": 0.3649, "CE1": 0.2057, "HE1": 0.1392, "NE2": -0.5727,
            "CD2": 0.1292, "HD2": 0.1147, "C": 0.5973, "O": -0.5679},  # HID
    "NME": {"N": -0.4157, "H": 0.2719, "CH3": -0.1490, "HH31": 0.0976, "HH32": 0.0976, "HH33": 0.0976},
}
# atom order in the written files (PDB order: backbone, then side chain outwards, then C O)
ATOM_ORDER = {
    "ACE": ["CH3", "C", "O", "HH31", "HH32", "HH33"],
    "SER": ["N", "H", "CA", "HA", "CB", "HB2", "HB3", "OG", "HG", "C", "O"],
    "HIS": ["N", "H", "CA", "HA", "CB", "HB2", "HB3", "CG", "ND1", "HD1", "CD2", "HD2", "CE1", "HE1", "NE2", "C", "O"],
    "NME": ["N", "H", "CH3", "HH31", "HH32", "HH33"],
}
CONTACT_A = 3.5              # Ser OG ... His ring N for a "dyad" conformer
DROPLET_RADIUS_A = 10.5      # water oxygens within this distance of the peptide centre
WALL_A, WALL_K = DROPLET_RADIUS_A + 1.5, 1.0   # flat-bottom wall on water O: radius (Å), force constant (eV/Å²)
BOND_GUARD, BOND_GUARD_K = 1.15, 50.0  # flat-bottom bond restraints: onset (x start length), eV/Å²
CONTACT_GUARD, CONTACT_GUARD_K = 2.5, 10.0  # repulsive heavy-atom contacts between molecules: onset (Å), eV/Å²


def peptide_atoms(n_conformers: int = 30, seed: int = 11):
    """Atoms (dicts as in make_structures) and bonds of Ace-Ser-His-NMe, centred at the origin."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(SMILES))
    labels: list = [None] * mol.GetNumAtoms()
    for i, (resname, resid, name) in enumerate(HEAVY):
        atom = mol.GetAtomWithIdx(i)
        if atom.GetSymbol() != name[0]:
            raise RuntimeError(f"SMILES atom {i} is {atom.GetSymbol()}, named {resname} {name}")
        labels[i] = (resname, resid, name)
        hydrogens = [a.GetIdx() for a in atom.GetNeighbors() if a.GetSymbol() == "H"]
        names = HYDROGENS.get(name, [])
        if len(hydrogens) != len(names):
            raise RuntimeError(f"{resname} {name}: {len(hydrogens)} hydrogens in the SMILES, {len(names)} names")
        for h, hname in zip(hydrogens, names):
            labels[h] = (resname, resid, hname)
    if any(lab is None for lab in labels) or len(set(labels)) != len(labels):
        raise RuntimeError("atom naming is incomplete or ambiguous")

    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    conformers = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    energies = [e for _, e in AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)]
    where = {(r, n): i for i, (r, _, n) in enumerate(labels)}
    og, nd1, ne2 = where["SER", "OG"], where["HIS", "ND1"], where["HIS", "NE2"]

    def distance(cid, i, j):
        x = mol.GetConformer(cid).GetPositions()
        return float(np.linalg.norm(x[i] - x[j]))

    def extent(cid):
        x = mol.GetConformer(cid).GetPositions()
        return float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()))

    dyad = [c for c in conformers if distance(c, og, ne2) < CONTACT_A]
    contact = [c for c in conformers if min(distance(c, og, nd1), distance(c, og, ne2)) < CONTACT_A]
    if dyad or contact:
        best, why = min(dyad or contact, key=lambda c: energies[c]), "Ser-His contact"
    else:
        best, why = max(conformers, key=extent), "no Ser-His contact found: most extended"
    x = mol.GetConformer(best).GetPositions()
    x -= x.mean(axis=0)
    print(f"conformer {best} of {len(conformers)} ({why}): MMFF {energies[best]:.2f} kcal/mol, "
          f"OG-NE2 {distance(best, og, ne2):.2f} Å, OG-ND1 {distance(best, og, nd1):.2f} Å")
    order = sorted(range(len(labels)), key=lambda i: (labels[i][1], ATOM_ORDER[labels[i][0]].index(labels[i][2])))
    new = {old: k for k, old in enumerate(order)}
    atoms = [dict(name=n, element=mol.GetAtomWithIdx(i).GetSymbol(), charge=FF14SB[r][n], pos=x[i], resname=r,
                  resid=k, segid="PEP") for i, (r, k, n) in ((i, labels[i]) for i in order)]
    bonds = sorted(tuple(sorted((new[b.GetBeginAtomIdx()], new[b.GetEndAtomIdx()]))) for b in mol.GetBonds())
    return atoms, bonds


def water_droplet(solute: np.ndarray, radius: float, spacing: float = 3.1, seed: int = 7, tries: int = 30,
                  heavy_min: float = 2.7, hydrogen_min: float = 1.8, solute_elements=None):
    """TIP3P waters on make_structures' jittered lattice, up to ``tries`` orientations per site.

    A water is kept if its O is ``heavy_min`` from every heavy atom and every pair involving a hydrogen is
    ``hydrogen_min`` apart (hydrogen bonds allowed).  Resids from 5.
    """
    rng = np.random.default_rng(seed)
    centre = solute.mean(axis=0)
    grid = np.arange(-radius, radius + 1e-9, spacing)
    oh, angle = 0.9572, np.deg2rad(104.52)
    local = np.array([[0, 0, 0], [oh, 0, 0], [oh * np.cos(angle), oh * np.sin(angle), 0]])
    placed = [np.asarray(p, float) for p in solute]
    is_h = [e == "H" for e in solute_elements]
    atoms, resid = [], 5
    for x in grid:
        for y in grid:
            for z in grid:
                o = centre + np.array([x, y, z]) + rng.normal(scale=0.15, size=3)
                if np.linalg.norm(o - centre) > radius:
                    continue
                others, others_h = np.asarray(placed), np.asarray(is_h)
                near = np.linalg.norm(others - o, axis=1) < heavy_min + 2.0
                others, others_h = others[near], others_h[near]
                for _ in range(tries):
                    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                    xyz = o + local @ q.T
                    d = np.linalg.norm(others[None, :, :] - xyz[:, None, :], axis=2)  # (3, n)
                    limit = np.where(others_h[None, :] | np.array([False, True, True])[:, None], hydrogen_min,
                                     heavy_min)
                    if (d >= limit).all():
                        break
                else:
                    continue
                placed.extend(xyz)
                is_h.extend([False, True, True])
                for name, element, p in zip(("OH2", "H1", "H2"), "OHH", xyz):
                    atoms.append(dict(name=name, element=element, charge=TIP3P_CHARGES[name], pos=p,
                                      resname="TIP3", resid=resid, segid="SOLV"))
                resid += 1
    return atoms


class Droplet:
    """Forces for the relaxation: organic(all) - organic(waters) + water(waters), a wall and guards.

    Wall: flat-bottom harmonic on the water oxygens beyond ``WALL_A`` from ``centre``.  Bond guards: flat-bottom
    harmonic on every bond beyond ``BOND_GUARD`` times its starting length.  Contact guards: harmonic repulsion
    between heavy atoms of different molecules closer than ``CONTACT_GUARD``.
    """

    def __init__(self, atoms, bonds, centre):
        system = qmml.System.from_arrays([a["element"] for a in atoms], [a["pos"] for a in atoms], bonds=bonds,
                                         charges=[a["charge"] for a in atoms])
        self.system, self.centre = system, np.asarray(centre)
        self.ml = qmml.MLPotential(qmml.load_model("organic"), system, total_charge=0)
        # water-water from the water model: + E_water(waters) - E_organic(waters)
        self.water = np.array([k for k, a in enumerate(atoms) if a["segid"] == "SOLV"])
        wsys = qmml.System.from_arrays([atoms[k]["element"] for k in self.water], system.positions[self.water],
                                       bonds=water_bonds(0, len(self.water) // 3),
                                       charges=[atoms[k]["charge"] for k in self.water])
        self.water_ml = qmml.MLPotential(qmml.load_model("water"), wsys, total_charge=0)
        self.water_organic = qmml.MLPotential(qmml.load_model("organic"), wsys, total_charge=0)
        self.oxygens = np.array([k for k, a in enumerate(atoms) if a["name"] == "OH2"])
        self.i, self.j = np.array(bonds).T
        self.guard = BOND_GUARD * np.linalg.norm(system.positions[self.i] - system.positions[self.j], axis=1)
        self.evaluations = self.bond_hits = self.contact_hits = 0  # evaluations; those in which a guard acted
        molecules = system.molecule_index
        self.heavy = np.array([k for k, a in enumerate(atoms) if a["element"] != "H"])
        self.other = molecules[self.heavy][:, None] != molecules[self.heavy][None, :]

    def forces(self, x):
        self.evaluations += 1
        f = np.array(self.ml.compute(x).forces, dtype=np.float64)
        w = x[self.water]
        f[self.water] += self.water_ml.compute(w).forces - self.water_organic.compute(w).forces
        r = x[self.oxygens] - self.centre
        d = np.linalg.norm(r, axis=1)
        out = np.maximum(d - WALL_A, 0.0)
        f[self.oxygens] -= (WALL_K * out / np.maximum(d, 1e-12))[:, None] * r
        b = x[self.i] - x[self.j]
        length = np.linalg.norm(b, axis=1)
        beyond = np.maximum(length - self.guard, 0.0)
        self.bond_hits += bool(beyond.any())
        pull = (BOND_GUARD_K * beyond / length)[:, None] * b
        np.add.at(f, self.i, -pull)
        np.add.at(f, self.j, pull)
        y = x[self.heavy]
        r = y[:, None, :] - y[None, :, :]
        d = np.linalg.norm(r, axis=2)
        close = np.where(self.other, np.maximum(CONTACT_GUARD - d, 0.0), 0.0)
        self.contact_hits += bool(close.any())
        f[self.heavy] += ((CONTACT_GUARD_K * close / np.maximum(d, 1e-12))[:, :, None] * r).sum(axis=1)
        return f


def steepest_descent(potential, x, free, steps=50, max_step=0.05):
    """Capped steepest descent of the ``free`` atoms (removes close contacts before dynamics)."""
    for _ in range(steps):
        f = potential.forces(x) * free[:, None]
        x = x + f * (max_step / max(np.linalg.norm(f, axis=1).max(), max_step))
    return x


def langevin(potential, x, free, *, steps, seed, friction_per_fs, dt_fs=0.5, temperature_K=300.0):
    """BAOAB; only ``free`` atoms move."""
    masses, mask = potential.system.masses, free[:, None]
    gen = np.random.Generator(np.random.PCG64(seed))
    v = np.zeros_like(x)
    forces = potential.forces(x) * mask
    for _ in range(steps):
        v = kick(v, forces, masses, dt_fs / 2)
        x = drift(x, v * mask, dt_fs / 2)
        v = thermostat(v, masses, dt_fs, temperature_K, friction_per_fs, gen) * mask
        x = drift(x, v, dt_fs / 2)
        forces = potential.forces(x) * mask
        v = kick(v, forces, masses, dt_fs / 2)
    return x


def check(atoms, bonds, x0, x):
    """Raise if a bond stretched beyond 1.3x, a hydrogen left its atom, or a residue is charged."""
    i, j = np.array(bonds).T
    stretch = np.linalg.norm(x[i] - x[j], axis=1) / np.linalg.norm(x0[i] - x0[j], axis=1)
    if stretch.max() > 1.3:
        k = int(stretch.argmax())
        raise RuntimeError(f"bond {i[k]}-{j[k]} stretched {stretch[k]:.2f}x during relaxation")
    partner = {}
    for a, b in bonds:
        for h, heavy in ((a, b), (b, a)):
            if atoms[h]["element"] == "H":
                partner[h] = heavy
    heavy = np.array([k for k, a in enumerate(atoms) if a["element"] != "H"])
    for h, p in partner.items():
        nearest = heavy[np.linalg.norm(x[heavy] - x[h], axis=1).argmin()]
        if nearest != p:
            raise RuntimeError(f"hydrogen {h} ({atoms[h]['resname']} {atoms[h]['name']}) is closer to atom "
                               f"{nearest} than to its bonded atom {p}")
    for resid in {a["resid"] for a in atoms}:
        q = sum(a["charge"] for a in atoms if a["resid"] == resid)
        if abs(q) > 1e-6:
            raise RuntimeError(f"residue {resid} carries {q:+.4f} e")
    print(f"checks passed: largest bond stretch {stretch.max():.3f}x, every H closest to its bonded atom")


def main():
    peptide, peptide_bonds = peptide_atoms()
    px = np.array([a["pos"] for a in peptide])
    waters = water_droplet(px, DROPLET_RADIUS_A, solute_elements=[a["element"] for a in peptide])
    atoms = peptide + waters
    bonds = peptide_bonds + water_bonds(len(peptide), len(waters) // 3)
    print(f"{len(waters) // 3} waters within {DROPLET_RADIUS_A} Å of the peptide centre")

    potential = Droplet(atoms, bonds, centre=px.mean(axis=0))
    x0 = potential.system.positions.copy()
    solvent = np.array([a["segid"] == "SOLV" for a in atoms])
    everything = np.ones(len(atoms), bool)
    x = steepest_descent(potential, x0, solvent)
    x = langevin(potential, x, solvent, steps=200, seed=3, friction_per_fs=0.05)
    x = langevin(potential, x, everything, steps=300, seed=5, friction_per_fs=0.02)
    x = steepest_descent(potential, x, everything, steps=100, max_step=0.02)  # quench the thermal forces
    print(f"largest force after the quench: {np.linalg.norm(potential.forces(x), axis=1).max():.2f} eV/Å")
    print(f"of {potential.evaluations} force evaluations, bond guards acted in {potential.bond_hits}, "
          f"contact guards in {potential.contact_hits}")
    check(atoms, bonds, x0, x)
    for a, p in zip(atoms, x):
        a["pos"] = p

    write_psf(OUT / "peptide_water.psf", atoms, bonds)
    write_pdb(OUT / "peptide_water.pdb", atoms, bonds)
    print(f"wrote {OUT}/peptide_water.psf/.pdb: Ace-Ser-His-NMe + {len(waters) // 3} waters ({len(atoms)} atoms)")


if __name__ == "__main__":
    main()
