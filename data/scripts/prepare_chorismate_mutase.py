#!/usr/bin/env python
"""Prepare Bacillus subtilis chorismate mutase (BsCM) + chorismate for QM/ML/MM.

Source
------
``data/structures/chorismate_mutase_source.pdb`` is an unmodified copy of
``test/2CHT/2cht_mod.pdb`` from the public GitHub repository
``marcvanderkamp/enlighten`` (commit 06a3af8e86747a06678362dbca50534f880759af,
M. van der Kamp, 2015).  It is derived from PDB entry 2CHT (BsCM trimer with
the endo-oxabicyclic transition-state analogue, Chook, Ke & Lipscomb, PNAS 1993):
one trimer (chains A, B, C; residues 2-115/118/119), crystal waters, polar
hydrogens added by the Enlighten authors, and chorismate (residue ``CHO B 201``)
modelled by them onto the TSA of the A/B active site (the TSA molecules
themselves are not in the file).  The genuine RCSB 2CHT/1COM/1ECM files could
not be found in any indexed public GitHub repository; see
``data/structures/chorismate_mutase.md``.

Steps
-----
1. Read the source; drop all hydrogens (they are re-added consistently).
2. Protein + crystal waters -> PDBFixer: missing heavy atoms (incl. C-terminal
   OXT); disordered C-terminal tails are NOT modelled.
3. Chorismate dianion (charge -2, residue CHM, literature numbering C1-C6, O7,
   C8, C9, C10/C11 carboxylate carbons, O1-O4 carboxylate oxygens, O5 hydroxyl)
   built with RDKit on the source heavy-atom coordinates (the TSA pose,
   pseudo-diaxial chair); hydrogens added by RDKit and the whole ligand relaxed
   with MMFF94 under flat-bottomed position restraints on the heavy atoms, so
   bond lengths become chemical while the pose stays within ~0.1-0.2 A.
4. Protein/water hydrogens at pH 7 with openmm.app.Modeller.addHydrogens
   (amber14 variants: HIE/HID/HIP, ...), the ligand merged afterwards, then
   protein/water hydrogens (only) minimised in the presence of the frozen
   ligand and frozen heavy atoms.  Crystal waters clashing with the ligand are
   removed.
5. Solvation with TIP3P (Modeller.addSolvent, cubic box by default, padding
   10 A around the solute extents) and neutralisation with Na+/Cl-.  To let
   addSolvent work, a temporary CHM template (charges from the source
   repository's CHO.prepc, total -2, generic LJ) is registered from an ffxml
   string; it is never written out.
5b. Relaxation with the ligand frozen (its temporary parameters never move it): minimization,
   10 ps of Langevin NVT at 300 K with the protein heavy atoms restrained to the crystal pose
   (5 kcal/mol/A^2; waters, ions and hydrogens equilibrate around the pre-organized active site),
   minimization again without restraints.  Straight from addSolvent, bulk waters tiled onto each
   other carried forces up to 55 eV/A and a Thr74 hydroxyl H sat 1.6 A from chorismate's H3.
6. Writes the PDB (CRYST1, amber residue names, CONECT for CHM) and verifies:
   amber14 leaves exactly CHM unmatched; protein+ions charge = +2; no atom
   pair closer than 0.9 A (periodic); >= 20,000 atoms; file < 5 MB.

Usage
-----
    OMP_NUM_THREADS=1 python data/scripts/prepare_chorismate_mutase.py

Requires openmm, pdbfixer, numpy, scipy and rdkit (``pip install rdkit``).
Deterministic: Python's RNG is seeded and OpenMM uses one CPU thread.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENMM_CPU_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import io
import random
import sys
import time
from pathlib import Path

import numpy as np
from openmm import LocalEnergyMinimizer, Platform, VerletIntegrator, Context, Vec3
from openmm import NonbondedForce, unit
from openmm.app import (CutoffNonPeriodic, ForceField, HBonds, Modeller, NoCutoff,
                        PDBFile, Topology, element)
from pdbfixer import PDBFixer
from scipy.spatial import cKDTree

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO_ROOT / "data/structures/chorismate_mutase_source.pdb"
DEFAULT_OUTPUT = REPO_ROOT / "data/structures/chorismate_mutase.pdb"

SOURCE_LIGAND = ("CHO", "B", 201)  # resname, chain, resSeq in the source file
LIGAND_RESNAME = "CHM"
LIGAND_CHAIN = "L"
LIGAND_RESID = "201"

# Chorismate dianion; atom-map numbers index HEAVY_NAMES (literature numbering:
# C1 carries the C10 carboxylate, C4 the O5 hydroxyl, C5-O7 is the ether bond
# that breaks, C9 the enol CH2 that bonds to C1).
HEAVY_NAMES = ["C1", "C2", "C3", "C4", "C5", "C6", "O7", "C8", "C9", "C10",
               "C11", "O1", "O2", "O3", "O4", "O5"]
CHORISMATE_SMILES = ("[C:1]1(=[CH:6][CH:5]([O:7][C:8](=[CH2:9])[C:11](=[O:14])[O-:15])"
                     "[CH:4]([OH:16])[CH:3]=[CH:2]1)[C:10](=[O:12])[O-:13]")
# source (Enlighten CHO) hydrogen names are not used; ours follow the parent atom
H_NAME_BY_PARENT = {"C2": ["H2"], "C3": ["H3"], "C4": ["H4"], "C5": ["H5"],
                    "C6": ["H6"], "C9": ["H91", "H92"], "O5": ["HO5"]}
# Temporary charges (only for solvation/neutralisation and the H relaxation),
# from CHO.prepc of marcvanderkamp/enlighten test/2CHT/lig (sum -1.999 -> -2).
TEMP_CHARGES = {"C1": -0.1552, "C10": 0.9078, "O1": -0.8528, "O2": -0.8528,
                "C2": -0.0970, "H2": 0.1410, "C3": -0.2162, "H3": 0.1090,
                "C4": 0.1643, "O5": -0.6448, "HO5": 0.4580, "H4": 0.0477,
                "C5": 0.1423, "O7": -0.3499, "C8": 0.0149, "C9": -0.3170,
                "H91": 0.1120, "H92": 0.1120, "C11": 0.9158, "O3": -0.8398,
                "O4": -0.8398, "H5": 0.0647, "C6": -0.1712, "H6": 0.1480}
TEMP_LJ = {"C": (0.339967, 0.359824), "O": (0.295992, 0.878640),
           "H": (0.247135, 0.065689)}  # sigma nm, epsilon kJ/mol (GAFF-like)

PROTEIN_RESIDUES = {"ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS",
                    "ILE", "LEU", "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP",
                    "TYR", "VAL", "HIE", "HID", "HIP", "CYX", "ASH", "GLH", "LYN"}
WATER_ION = {"HOH", "NA", "CL"}


def log(msg):
    print(msg, flush=True)


# ----------------------------------------------------------------------------
# source parsing
# ----------------------------------------------------------------------------
def _element(line):
    el = line[76:78].strip()
    if not el:
        el = line[12:14].strip().lstrip("0123456789")[:1]
    return el.upper()


def read_source(path):
    """Split the source into heavy-atom protein/water PDB text and ligand coords."""
    receptor, waters, ligand = [], [], {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("TER") and receptor and receptor[-1] != "TER":
            receptor.append("TER")
        rec = line[:6].strip()
        if rec not in ("ATOM", "HETATM"):
            continue
        resname, chain, resseq = line[17:20].strip(), line[21], int(line[22:26])
        if _element(line) == "H":
            continue
        if (resname, chain, resseq) == SOURCE_LIGAND:
            ligand[line[12:16].strip()] = [float(line[30:38]), float(line[38:46]),
                                           float(line[46:54])]
        elif resname in PROTEIN_RESIDUES:
            receptor.append(line)
        elif resname == "HOH":
            # crystal waters go to their own chain W (otherwise PDBFixer does not
            # see the protein C-termini and adds no OXT)
            waters.append(line[:21] + "W" + "%4d" % (len(waters) + 1) + line[26:])
        else:
            log(f"  dropping unexpected residue {resname} {chain}{resseq}")
    missing = set(HEAVY_NAMES) - set(ligand)
    if missing:
        raise RuntimeError(f"ligand heavy atoms missing in source: {sorted(missing)}")
    if receptor[-1] != "TER":
        receptor.append("TER")
    return "\n".join(receptor + waters) + "\nTER\nEND\n", ligand


# ----------------------------------------------------------------------------
# ligand
# ----------------------------------------------------------------------------
def build_chorismate(heavy_xyz, max_displ=0.1, k_restr=100.0):
    """Chorismate dianion with H on the given heavy-atom pose (Angstrom)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from rdkit.Geometry import Point3D

    mol = Chem.MolFromSmiles(CHORISMATE_SMILES)
    names = {}
    conf = Chem.Conformer(mol.GetNumAtoms())
    for atom in mol.GetAtoms():
        name = HEAVY_NAMES[atom.GetAtomMapNum() - 1]
        names[atom.GetIdx()] = name
        conf.SetAtomPosition(atom.GetIdx(), Point3D(*heavy_xyz[name]))
        atom.SetAtomMapNum(0)
    mol.AddConformer(conf, assignId=True)
    Chem.AssignStereochemistryFrom3D(mol)
    molh = Chem.AddHs(mol, addCoords=True)
    Chem.AssignStereochemistryFrom3D(molh)
    cip = {names[a.GetIdx()]: a.GetProp("_CIPCode") for a in molh.GetAtoms()
           if a.HasProp("_CIPCode")}
    heavy_before = molh.GetConformer().GetPositions()[: mol.GetNumAtoms()].copy()
    props = AllChem.MMFFGetMoleculeProperties(molh)
    ff = AllChem.MMFFGetMoleculeForceField(molh, props)
    for idx in range(mol.GetNumAtoms()):
        ff.MMFFAddPositionConstraint(idx, max_displ, k_restr)
    ff.Initialize()
    ff.Minimize(maxIts=5000)
    xyz = molh.GetConformer().GetPositions()
    shift = np.linalg.norm(xyz[: mol.GetNumAtoms()] - heavy_before, axis=1)
    # hydrogen names
    counters = {}
    for atom in molh.GetAtoms():
        if atom.GetAtomicNum() == 1:
            parent = names[atom.GetNeighbors()[0].GetIdx()]
            k = counters.get(parent, 0)
            names[atom.GetIdx()] = H_NAME_BY_PARENT[parent][k]
            counters[parent] = k + 1
    atoms = [(names[a.GetIdx()], a.GetSymbol(), xyz[a.GetIdx()]) for a in molh.GetAtoms()]
    bonds = [(names[b.GetBeginAtomIdx()], names[b.GetEndAtomIdx()]) for b in molh.GetBonds()]
    charge = Chem.GetFormalCharge(molh)
    return atoms, bonds, charge, cip, shift


def ligand_topology(atoms, bonds):
    top = Topology()
    chain = top.addChain(LIGAND_CHAIN)
    res = top.addResidue(LIGAND_RESNAME, chain, id=LIGAND_RESID)
    by_name = {}
    for name, sym, _ in atoms:
        by_name[name] = top.addAtom(name, element.get_by_symbol(sym), res)
    for a, b in bonds:
        top.addBond(by_name[a], by_name[b])
    pos = [Vec3(*(x / 10.0)) for _, _, x in atoms] * unit.nanometer
    return top, pos


def temp_ligand_ffxml(atoms, bonds):
    """Minimal ffxml so that createSystem/addSolvent accept CHM (not a real FF)."""
    total = sum(TEMP_CHARGES[n] for n, _, _ in atoms)
    corr = (-2.0 - total) / len(atoms)
    out = ["<ForceField>", " <AtomTypes>"]
    for sym, mass in (("C", 12.011), ("O", 15.999), ("H", 1.008)):
        out.append(f'  <Type name="CHMtmp-{sym}" class="CHMtmp-{sym}" element="{sym}" mass="{mass}"/>')
    out += [" </AtomTypes>", " <Residues>", f'  <Residue name="{LIGAND_RESNAME}">']
    for name, sym, _ in atoms:
        out.append(f'   <Atom name="{name}" type="CHMtmp-{sym}" charge="{TEMP_CHARGES[name] + corr:.6f}"/>')
    for a, b in bonds:
        out.append(f'   <Bond atomName1="{a}" atomName2="{b}"/>')
    out += ["  </Residue>", " </Residues>",
            ' <NonbondedForce coulomb14scale="0.8333333333333334" lj14scale="0.5">',
            '  <UseAttributeFromResidue name="charge"/>']
    for sym, (sig, eps) in TEMP_LJ.items():
        out.append(f'  <Atom type="CHMtmp-{sym}" sigma="{sig}" epsilon="{eps}"/>')
    out += [" </NonbondedForce>", "</ForceField>"]
    return "\n".join(out)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def positions_A(positions):
    return np.array(positions.value_in_unit(unit.angstrom))


def ligand_atom_indices(topology):
    return [a.index for r in topology.residues() if r.name == LIGAND_RESNAME for a in r.atoms()]


def relax_hydrogens(modeller, forcefield, frozen, steps=1000):
    """Minimise only non-frozen hydrogens (everything heavy + `frozen` is fixed)."""
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=CutoffNonPeriodic,
                                     nonbondedCutoff=1.0 * unit.nanometer,
                                     constraints=None, rigidWater=False)
    frozen = set(frozen)
    for atom in modeller.topology.atoms():
        if atom.element is not element.hydrogen or atom.index in frozen:
            system.setParticleMass(atom.index, 0.0)
    ctx = _context(system, VerletIntegrator(0.001), modeller.positions, threads=1)
    e0 = ctx.getState(getEnergy=True).getPotentialEnergy()
    LocalEnergyMinimizer.minimize(ctx, 10.0, steps)
    state = ctx.getState(getEnergy=True, getPositions=True)
    modeller.positions = state.getPositions()
    return e0, state.getPotentialEnergy()


def _context(system, integrator, positions, threads):
    ctx = Context(system, integrator, Platform.getPlatformByName("CPU"), {"Threads": str(threads)})
    ctx.setPositions(positions)
    return ctx


def _max_force(ctx, free):
    """Largest force on the atoms that move, kJ/mol/nm, and its atom index."""
    f = ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer)
    norms = np.linalg.norm(f[free], axis=1)
    return float(norms.max()), int(free[np.argmax(norms)])


def relax_structure(modeller, forcefield, frozen, *, md_ps, restraint, temperature, seed, threads,
                    tolerance=10.0):
    """Minimize, equilibrate and minimize again everything but ``frozen`` (the ligand, which has only
    the temporary nonbonded parameters, so it must not move).

    The structure straight from addSolvent carried forces up to 53,000 kJ/mol/nm (waters tiled onto
    each other) and a hydroxyl H 1.6 A from a ligand H, contacts a QM region feels.
    1. Minimization of all non-frozen atoms (flexible water, no constraints: the model qmml runs).
    2. ``md_ps`` of Langevin NVT at ``temperature`` (1 fs, rigid water) with the protein heavy atoms
       held near their minimized positions by ``restraint`` (kJ/mol/nm^2), so waters, ions and hydrogens
       equilibrate around a pre-organized active site.
    3. Minimization again, without restraints.
    """
    from openmm import CustomExternalForce, LangevinMiddleIntegrator
    from openmm.app import PME

    frozen = set(frozen)
    free = np.array([a.index for a in modeller.topology.atoms() if a.index not in frozen])
    report = {}

    def build(rigid):
        system = forcefield.createSystem(modeller.topology, nonbondedMethod=PME,
                                         nonbondedCutoff=1.0 * unit.nanometer, constraints=None,
                                         rigidWater=rigid, removeCMMotion=False)
        for i in frozen:
            system.setParticleMass(i, 0.0)
        return system

    flexible = build(rigid=False)
    ctx = _context(flexible, VerletIntegrator(0.001), modeller.positions, threads)
    report["start_max_force"] = _max_force(ctx, free)
    LocalEnergyMinimizer.minimize(ctx, tolerance, 0)
    positions = ctx.getState(getPositions=True).getPositions()
    report["minimized_max_force"] = _max_force(ctx, free)
    del ctx

    if md_ps > 0:
        rigid = build(rigid=True)
        hold = CustomExternalForce("0.5*k*periodicdistance(x, y, z, x0, y0, z0)^2")
        hold.addGlobalParameter("k", restraint)
        for name in ("x0", "y0", "z0"):
            hold.addPerParticleParameter(name)
        for atom in modeller.topology.atoms():
            if (atom.residue.name in PROTEIN_RESIDUES and atom.element is not element.hydrogen
                    and atom.index not in frozen):
                hold.addParticle(atom.index, positions[atom.index].value_in_unit(unit.nanometer))
        rigid.addForce(hold)
        integrator = LangevinMiddleIntegrator(temperature * unit.kelvin, 1.0 / unit.picosecond,
                                              0.001 * unit.picoseconds)
        integrator.setRandomNumberSeed(seed)
        ctx = _context(rigid, integrator, positions, threads)
        ctx.setVelocitiesToTemperature(temperature * unit.kelvin, seed)
        steps = int(round(md_ps * 1000))
        chunk = max(1, steps // 10)
        for done in range(0, steps, chunk):
            integrator.step(min(chunk, steps - done))
            energy = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            log(f"    NVT {min(done + chunk, steps) / 1000:.1f} ps: E_pot {energy:.0f} kJ/mol")
        positions = ctx.getState(getPositions=True).getPositions()
        del ctx

        ctx = _context(flexible, VerletIntegrator(0.001), positions, threads)
        LocalEnergyMinimizer.minimize(ctx, tolerance, 0)
        positions = ctx.getState(getPositions=True).getPositions()
        report["final_max_force"] = _max_force(ctx, free)
        del ctx
    modeller.positions = positions
    return report


def remove_water_clashes(modeller, threshold=1.2):
    """Delete added waters that overlap other molecules (Modeller.addSolvent only
    tests O-O distances when tiling the water box, so H...H/O...H contacts
    < 1 A can remain across the periodic boundaries)."""
    top = modeller.topology
    box = np.array([v[i] for i, v in enumerate(
        top.getPeriodicBoxVectors().value_in_unit(unit.angstrom))])
    pos = np.mod(positions_A(modeller.positions), box)
    pos[pos >= box] = 0.0
    atoms = list(top.atoms())
    res_of = np.array([a.residue.index for a in atoms])
    residues = list(top.residues())
    added = {r.index for r in residues if r.name == "HOH"
             and r.chain.index >= first_solvent_chain(top)}
    pairs = cKDTree(pos, boxsize=box).query_pairs(threshold, output_type="ndarray")
    doomed = set()
    for i, j in pairs:
        ri, rj = res_of[i], res_of[j]
        if ri == rj or ri in doomed or rj in doomed:
            continue
        cand = [r for r in (max(ri, rj), min(ri, rj)) if r in added]
        if not cand:
            raise RuntimeError(f"clash between {residues[ri]} and {residues[rj]}")
        doomed.add(cand[0])
    modeller.delete([residues[k] for k in sorted(doomed)])
    return len(doomed)


def first_solvent_chain(topology):
    """Index of the first chain created by addSolvent (after ligand chain)."""
    for chain in topology.chains():
        if chain.id == LIGAND_CHAIN:
            return chain.index + 1
    raise RuntimeError("ligand chain not found")


def renumber_solvent(topology):
    """Give solvent/ion chains PDB-friendly ids (resSeq wraps at 9999)."""
    used = {c.id for c in topology.chains()}
    spare = iter(c for c in "WXYZSTUVMNOPQRDEFGHIJK" if c not in used)
    for chain in topology.chains():
        names = {r.name for r in chain.residues()}
        if names <= WATER_ION and any(len(r.id) > 4 or not r.id for r in chain.residues()):
            chain.id = next(spare)
            for k, res in enumerate(chain.residues()):
                res.id = str(k % 9999 + 1)


# ----------------------------------------------------------------------------
# verification
# ----------------------------------------------------------------------------
def verify(path, min_atoms=20000, max_bytes=5_000_000, contact=4.0):
    ff = ForceField("amber14-all.xml", "amber14/tip3p.xml")
    pdb = PDBFile(str(path))
    top, pos = pdb.topology, positions_A(pdb.positions)
    report = {}
    unmatched = ff.getUnmatchedResidues(top)
    report["unmatched"] = [(r.name, r.chain.id, r.id) for r in unmatched]
    ok = [r.name for r in unmatched] == [LIGAND_RESNAME]

    # charge of everything except the ligand
    mod = Modeller(top, pdb.positions)
    mod.delete([r for r in top.residues() if r.name == LIGAND_RESNAME])
    system = ff.createSystem(mod.topology, nonbondedMethod=NoCutoff, constraints=None)
    nb = next(f for f in system.getForces() if isinstance(f, NonbondedForce))
    q = sum(nb.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
            for i in range(nb.getNumParticles()))
    report["charge_without_ligand"] = q
    ok &= abs(q - 2.0) < 1e-3

    # close contacts (periodic, orthorhombic box)
    box = np.array([v[i] for i, v in enumerate(
        top.getPeriodicBoxVectors().value_in_unit(unit.angstrom))])
    wrapped = np.mod(pos, box)
    wrapped[wrapped >= box] = 0.0
    tree = cKDTree(wrapped, boxsize=box)
    pairs = tree.query_pairs(1.2, output_type="ndarray")
    bonded = {tuple(sorted((b[0].index, b[1].index))) for b in top.bonds()}
    d = np.linalg.norm(((wrapped[pairs[:, 0]] - wrapped[pairs[:, 1]] + box / 2) % box) - box / 2, axis=1) \
        if len(pairs) else np.zeros(0)
    nonb = np.array([tuple(p) not in bonded for p in map(tuple, np.sort(pairs, axis=1))], bool) \
        if len(pairs) else np.zeros(0, bool)
    report["pairs_below_0.9A"] = int((d < 0.9).sum())
    report["nonbonded_pairs_below_1.2A"] = int((d[nonb] < 1.2).sum()) if len(d) else 0
    ok &= report["pairs_below_0.9A"] == 0

    # composition
    atoms = list(top.atoms())
    comp = {"protein": 0, "ligand": 0, "water_molecules": 0, "water_atoms": 0, "NA": 0, "CL": 0}
    for res in top.residues():
        n = len(list(res.atoms()))
        if res.name == LIGAND_RESNAME:
            comp["ligand"] += n
        elif res.name == "HOH":
            comp["water_molecules"] += 1
            comp["water_atoms"] += n
        elif res.name in ("NA", "CL"):
            comp[res.name] += 1
        else:
            comp["protein"] += n
    comp["total"] = len(atoms)
    report["composition"] = comp
    report["box_A"] = box.tolist()
    ok &= len(atoms) >= min_atoms
    size = Path(path).stat().st_size
    report["file_bytes"] = size
    ok &= size < max_bytes

    # ligand environment
    lig = ligand_atom_indices(top)
    lig_heavy = [i for i in lig if atoms[i].element is not element.hydrogen]
    name_idx = {atoms[i].name: i for i in lig}
    dist = lambda a, b: float(np.linalg.norm(pos[name_idx[a]] - pos[name_idx[b]]))
    report["C1-C9"] = dist("C1", "C9")
    report["C5-O7"] = dist("C5", "O7")
    report["RC=d(C5-O7)-d(C1-C9)"] = report["C5-O7"] - report["C1-C9"]
    ltree = cKDTree(wrapped[lig_heavy], boxsize=box)
    near = {}
    for res in top.residues():
        if res.name in WATER_ION or res.name == LIGAND_RESNAME:
            continue
        heavy = [a.index for a in res.atoms() if a.element is not element.hydrogen]
        dd, _ = ltree.query(wrapped[heavy])
        if dd.min() <= contact:
            near[(res.chain.id, int(res.id), res.name)] = float(dd.min())
    report["residues_within_%.1fA" % contact] = near
    waters = [r for r in top.residues() if r.name == "HOH"]
    wO = [a.index for r in waters for a in r.atoms() if a.element is element.oxygen]
    dd, _ = ltree.query(wrapped[wO])
    report["waters_within_%.1fA" % contact] = int((dd <= contact).sum())
    report["min_ligand_heavy_to_water_O"] = float(dd.min())
    others = [a.index for a in atoms if a.index not in set(lig)]
    dd, _ = cKDTree(wrapped[others], boxsize=box).query(wrapped[lig])
    report["min_ligand_to_other_atom"] = float(dd.min())
    return ok, report


# ----------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--ph", type=float, default=7.0)
    p.add_argument("--padding", type=float, default=10.0,
                   help="solute-to-box-edge padding in Angstrom (default 10)")
    p.add_argument("--box-shape", choices=["cube", "rect"], default="cube",
                   help="cube: edge = largest solute extent + 2*padding; "
                        "rect: each edge = extent + 2*padding")
    p.add_argument("--ionic-strength", type=float, default=0.0,
                   help="extra NaCl in molar on top of neutralising ions (default 0)")
    p.add_argument("--water-clash", type=float, default=2.2,
                   help="remove crystal waters with O closer than this to ligand heavy atoms (A)")
    p.add_argument("--md-ps", type=float, default=10.0,
                   help="restrained NVT equilibration between the two minimizations, ps (0: minimize only)")
    p.add_argument("--restraint", type=float, default=2092.0,
                   help="protein heavy-atom restraint during that NVT, kJ/mol/nm^2 (default 5 kcal/mol/A^2)")
    p.add_argument("--temperature", type=float, default=300.0, help="NVT temperature, K")
    p.add_argument("--threads", type=int, default=1,
                   help="OpenMM CPU threads of the relaxation (default 1)")
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--no-verify", action="store_true")
    args = p.parse_args(argv)

    t0 = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)

    log(f"[1] reading {args.source}")
    receptor_pdb, lig_heavy = read_source(args.source)

    log("[2] PDBFixer: missing heavy atoms of the protein (no tail modelling)")
    fixer = PDBFixer(pdbfile=io.StringIO(receptor_pdb))
    fixer.findMissingResidues()
    fixer.missingResidues = {}  # no SEQRES in source; never model disordered tails
    fixer.findNonstandardResidues()
    if fixer.nonstandardResidues:
        raise RuntimeError(f"nonstandard residues: {fixer.nonstandardResidues}")
    fixer.findMissingAtoms()
    n_missing = sum(len(v) for v in fixer.missingAtoms.values())
    log(f"    residues with missing atoms: {len(fixer.missingAtoms)} ({n_missing} atoms); "
        f"missing terminal atoms: {sum(len(v) for v in fixer.missingTerminals.values())}")
    fixer.addMissingAtoms(seed=args.seed)

    log("[3] chorismate dianion on the TSA-site pose (RDKit + restrained MMFF94)")
    lig_atoms, lig_bonds, lig_charge, cip, shift = build_chorismate(lig_heavy)
    log(f"    {len(lig_atoms)} atoms, formal charge {lig_charge}, CIP {cip}, "
        f"heavy-atom shift max {shift.max():.3f} A / rms {np.sqrt((shift**2).mean()):.3f} A")
    if lig_charge != -2 or len(lig_atoms) != 24:
        raise RuntimeError("unexpected chorismate build")
    lig_top, lig_pos = ligand_topology(lig_atoms, lig_bonds)

    ff = ForceField("amber14-all.xml", "amber14/tip3p.xml")
    ff_tmp = ForceField("amber14-all.xml", "amber14/tip3p.xml")
    ff_tmp.loadFile(io.StringIO(temp_ligand_ffxml(lig_atoms, lig_bonds)))

    log(f"[4] hydrogens at pH {args.ph} (Modeller.addHydrogens, amber14 variants)")
    modeller = Modeller(fixer.topology, fixer.positions)
    # drop crystal waters that clash with the ligand
    lig_xyz = np.array([x for _, s, x in lig_atoms if s != "H"])
    ltree = cKDTree(lig_xyz)
    pos = positions_A(modeller.positions)
    clash = [r for r in modeller.topology.residues() if r.name == "HOH" and
             ltree.query(pos[[a.index for a in r.atoms()]])[0].min() < args.water_clash]
    n_xtal = sum(1 for r in modeller.topology.residues() if r.name == "HOH")
    modeller.delete(clash)
    log(f"    crystal waters: {n_xtal} in source, {len(clash)} removed (clash with ligand)")
    variants = modeller.addHydrogens(ff, pH=args.ph)
    his = {}
    for res, v in zip(modeller.topology.residues(), variants):
        if res.name == "HIS":
            his[f"{res.chain.id}{res.id}"] = v
    log(f"    histidines: {his}")
    n_before = modeller.topology.getNumAtoms()
    modeller.add(lig_top, lig_pos)
    lig_idx = ligand_atom_indices(modeller.topology)
    e0, e1 = relax_hydrogens(modeller, ff_tmp, frozen=lig_idx)
    log(f"    protein/water H relaxed with ligand present: E {e0.value_in_unit(unit.kilojoule_per_mole):.0f}"
        f" -> {e1.value_in_unit(unit.kilojoule_per_mole):.0f} kJ/mol")
    assert modeller.topology.getNumAtoms() == n_before + len(lig_atoms)

    log("[5] solvation (TIP3P) and neutralisation")
    xyz = positions_A(modeller.positions)
    extent = xyz.max(axis=0) - xyz.min(axis=0)
    if args.box_shape == "cube":
        edge = np.full(3, extent.max() + 2 * args.padding)
    else:
        edge = extent + 2 * args.padding
    log(f"    solute extent {np.round(extent, 1).tolist()} A -> box {np.round(edge, 2).tolist()} A")
    # centre the solute in the box (addSolvent keeps coordinates as they are)
    centre = 0.5 * (xyz.max(axis=0) + xyz.min(axis=0))
    modeller.positions = [Vec3(*((x - centre + edge / 2) / 10.0)) for x in xyz] * unit.nanometer
    modeller.addSolvent(ff_tmp, model="tip3p", boxSize=Vec3(*(edge / 10.0)) * unit.nanometer,
                        positiveIon="Na+", negativeIon="Cl-",
                        ionicStrength=args.ionic_strength * unit.molar, neutralize=True)
    n_rm = remove_water_clashes(modeller)
    log(f"    removed {n_rm} added waters overlapping across the periodic boundary (< 1.2 A)")
    renumber_solvent(modeller.topology)

    log(f"[5b] relaxation with the ligand frozen: minimization, {args.md_ps:g} ps NVT at {args.temperature:g} K "
        f"(protein heavy atoms restrained, {args.restraint:g} kJ/mol/nm^2), minimization")
    relax = relax_structure(modeller, ff_tmp, ligand_atom_indices(modeller.topology), md_ps=args.md_ps,
                            restraint=args.restraint, temperature=args.temperature, seed=args.seed,
                            threads=args.threads)
    for key, (force, atom) in relax.items():
        log(f"    {key.replace('_', ' ')}: {force:.0f} kJ/mol/nm on atom {atom}")

    log(f"[6] writing {args.output}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as fh:
        PDBFile.writeFile(modeller.topology, modeller.positions, fh, keepIds=True)

    if not args.no_verify:
        log("[7] verification (re-reading the written file)")
        ok, rep = verify(args.output)
        for k, v in rep.items():
            if isinstance(v, dict) and k.startswith("residues"):
                log(f"    {k}:")
                for (c, r, n), d in sorted(v.items(), key=lambda kv: (kv[0][0], kv[0][1])):
                    log(f"        {n}{r} chain {c}: {d:.2f} A")
            elif isinstance(v, float):
                log(f"    {k}: {v:.3f}")
            else:
                log(f"    {k}: {v}")
        log(f"    ALL CHECKS {'PASSED' if ok else 'FAILED'}")
    log(f"done in {time.time() - t0:.1f} s")
    return 0 if (args.no_verify or ok) else 1


if __name__ == "__main__":
    sys.exit(main())
