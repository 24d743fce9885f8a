"""Regenerate the shipped structures: 1-butanol alone and in a TIP3P water droplet.

    python data/scripts/make_structures.py

Writes data/structures/butanol.{pdb,psf,prmtop,gro,xyz} (the same molecule in every format qmml
reads, for the loader tests) and data/structures/butanol_water.{psf,pdb} (the main job's input).
Charges: OPLS-AA-like for butanol (C1 adjusted so the molecule is neutral; the hydroxyl
end C4-O1 keeps OPLS' -0.04 e, so cutting C3-C4 leaves a non-integer environment charge), TIP3P for water.  Deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "structures"

# name, element, charge (e), position (Å); a staggered all-trans 1-butanol
BUTANOL = [
    ("C1", "C", -0.140, (2.573, 0.000, 0.000)),
    ("C2", "C", -0.120, (1.266, 0.780, 0.000)),
    ("C3", "C", -0.120, (0.000, -0.080, 0.000)),
    ("C4", "C", 0.145, (-1.266, 0.700, 0.000)),
    ("O1", "O", -0.683, (-2.380, -0.180, 0.000)),
    ("H11", "H", 0.060, (3.426, 0.680, 0.000)),
    ("H12", "H", 0.060, (2.630, -0.640, 0.883)),
    ("H13", "H", 0.060, (2.630, -0.640, -0.883)),
    ("H21", "H", 0.060, (1.230, 1.430, 0.880)),
    ("H22", "H", 0.060, (1.230, 1.430, -0.880)),
    ("H31", "H", 0.060, (0.030, -0.730, 0.880)),
    ("H32", "H", 0.060, (0.030, -0.730, -0.880)),
    ("H41", "H", 0.040, (-1.300, 1.350, 0.880)),
    ("H42", "H", 0.040, (-1.300, 1.350, -0.880)),
    ("HO1", "H", 0.418, (-3.170, 0.360, 0.000)),
]
BUTANOL_BONDS = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (0, 6), (0, 7), (1, 8), (1, 9), (2, 10), (2, 11),
                 (3, 12), (3, 13), (4, 14)]
MASSES = {"H": 1.008, "C": 12.011, "O": 15.999, "Cl": 35.45}
TIP3P_CHARGES = {"OH2": -0.834, "H1": 0.417, "H2": 0.417}


def butanol_atoms():
    return [dict(name=n, element=e, charge=q, pos=np.array(p), resname="BUOH", resid=1, segid="BUT")
            for n, e, q, p in BUTANOL]


def water_droplet(solute: np.ndarray, radius: float = 10.0, spacing: float = 3.1, seed: int = 7):
    """TIP3P waters on a jittered lattice within ``radius`` of the solute centre, none closer than 2.6 Å."""
    rng = np.random.default_rng(seed)
    centre = solute.mean(axis=0)
    grid = np.arange(-radius, radius + 1e-9, spacing)
    oh, angle = 0.9572, np.deg2rad(104.52)
    local = np.array([[0, 0, 0], [oh, 0, 0], [oh * np.cos(angle), oh * np.sin(angle), 0]])
    atoms, resid = [], 2
    placed = [p for p in solute]
    for x in grid:
        for y in grid:
            for z in grid:
                o = centre + np.array([x, y, z]) + rng.normal(scale=0.15, size=3)
                if np.linalg.norm(o - centre) > radius:
                    continue
                q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                xyz = o + local @ q.T
                if min(np.linalg.norm(np.asarray(placed) - p, axis=1).min() for p in xyz) < 2.6:
                    continue
                placed.extend(xyz)
                for name, element, p in zip(("OH2", "H1", "H2"), "OHH", xyz):
                    atoms.append(dict(name=name, element=element, charge=TIP3P_CHARGES[name], pos=p,
                                      resname="TIP3", resid=resid, segid="SOLV"))
                resid += 1
    return atoms


def water_bonds(first: int, n_waters: int):
    return [(first + 3 * k + d[0], first + 3 * k + d[1]) for k in range(n_waters) for d in ((0, 1), (0, 2))]


def write_pdb(path: Path, atoms, bonds):
    lines = ["REMARK   qmml shipped structure (data/scripts/make_structures.py)"]
    for i, a in enumerate(atoms, 1):
        x, y, z = a["pos"]
        lines.append(f"HETATM{i:5d} {a['name']:<4s} {a['resname']:<4s}A{a['resid'] % 10000:4d}    "
                     f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00      {a['segid']:<4s}{a['element']:>2s}")
    partners: dict[int, list[int]] = {}
    for i, j in bonds:
        partners.setdefault(i, []).append(j)
        partners.setdefault(j, []).append(i)
    for i in sorted(partners):
        lines.append("CONECT" + f"{i + 1:5d}" + "".join(f"{j + 1:5d}" for j in sorted(partners[i])))
    lines.append("END")
    path.write_text("\n".join(lines) + "\n")


def write_psf(path: Path, atoms, bonds):
    lines = ["PSF", "", "       1 !NTITLE", " REMARKS qmml shipped structure", "", f"{len(atoms):8d} !NATOM"]
    for i, a in enumerate(atoms, 1):
        lines.append(f"{i:8d} {a['segid']:<4s} {a['resid']:<4d} {a['resname']:<4s} {a['name']:<4s} "
                     f"{a['element']:<4s} {a['charge']:14.6f}{MASSES[a['element']]:14.4f}{0:8d}")
    lines += ["", f"{len(bonds):8d} !NBOND: bonds"]
    flat = [f"{i + 1:8d}{j + 1:8d}" for i, j in bonds]
    lines += ["".join(flat[k:k + 4]) for k in range(0, len(flat), 4)]
    for section in ("!NTHETA: angles", "!NPHI: dihedrals", "!NIMPHI: impropers", "!NDON: donors",
                    "!NACC: acceptors"):
        lines += ["", f"{0:8d} {section}", ""]
    path.write_text("\n".join(lines) + "\n")


def write_prmtop(path: Path, atoms, bonds):
    """A minimal AMBER PARM7 file with the sections MDAnalysis reads (no force-field terms)."""
    def section(flag, fmt, values, per_line, width):
        out = [f"%FLAG {flag:<74s}", f"%FORMAT({fmt})"]
        cells = [f"{v:>{width}}" if not isinstance(v, float) else f"{v:{width}.8E}" for v in values]
        out += ["".join(cells[k:k + per_line]) for k in range(0, len(cells), per_line)] or [""]
        return out

    elements = {"H": 1, "C": 6, "O": 8}
    with_h = [(i, j) for i, j in bonds if "H" in (atoms[i]["element"], atoms[j]["element"])]
    without_h = [(i, j) for i, j in bonds if (i, j) not in with_h]
    residues = sorted({(a["resid"], a["resname"]) for a in atoms})
    starts = [next(k for k, a in enumerate(atoms) if a["resid"] == rid) + 1 for rid, _ in residues]
    pointers = [0] * 31
    pointers[0], pointers[1], pointers[2], pointers[3], pointers[11] = len(atoms), 1, len(with_h), len(without_h), \
        len(residues)
    lines = ["%VERSION  VERSION_STAMP = V0001.000", "%FLAG TITLE", "%FORMAT(20a4)", "qmml"]
    lines += section("POINTERS", "10I8", pointers, 10, 8)
    lines += section("ATOM_NAME", "20a4", [f"{a['name']:<4s}" for a in atoms], 20, 4)
    lines += section("CHARGE", "5E16.8", [a["charge"] * 18.2223 for a in atoms], 5, 16)
    lines += section("ATOMIC_NUMBER", "10I8", [elements[a["element"]] for a in atoms], 10, 8)
    lines += section("MASS", "5E16.8", [MASSES[a["element"]] for a in atoms], 5, 16)
    lines += section("AMBER_ATOM_TYPE", "20a4", [f"{a['element']:<4s}" for a in atoms], 20, 4)
    lines += section("RESIDUE_LABEL", "20a4", [f"{name:<4s}" for _, name in residues], 20, 4)
    lines += section("RESIDUE_POINTER", "10I8", starts, 10, 8)
    lines += section("BONDS_INC_HYDROGEN", "10I8", [v for i, j in with_h for v in (3 * i, 3 * j, 1)], 10, 8)
    lines += section("BONDS_WITHOUT_HYDROGEN", "10I8", [v for i, j in without_h for v in (3 * i, 3 * j, 1)], 10, 8)
    for flag in ("ANGLES_INC_HYDROGEN", "ANGLES_WITHOUT_HYDROGEN", "DIHEDRALS_INC_HYDROGEN",
                 "DIHEDRALS_WITHOUT_HYDROGEN"):
        lines += section(flag, "10I8", [], 10, 8)
    path.write_text("\n".join(lines) + "\n")


def write_gro(path: Path, atoms):
    lines = ["qmml shipped structure", f"{len(atoms):5d}"]
    for i, a in enumerate(atoms, 1):
        x, y, z = a["pos"] / 10.0
        lines.append(f"{a['resid']:5d}{a['resname']:<5s}{a['name']:>5s}{i:5d}{x:8.3f}{y:8.3f}{z:8.3f}")
    lines.append(f"{3.0:10.5f}{3.0:10.5f}{3.0:10.5f}")
    path.write_text("\n".join(lines) + "\n")


def write_xyz(path: Path, atoms):
    lines = [str(len(atoms)), "1-butanol (qmml shipped structure)"]
    lines += [f"{a['element']:2s} {a['pos'][0]:12.6f} {a['pos'][1]:12.6f} {a['pos'][2]:12.6f}" for a in atoms]
    path.write_text("\n".join(lines) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    solute = butanol_atoms()
    write_pdb(OUT / "butanol.pdb", solute, BUTANOL_BONDS)
    write_psf(OUT / "butanol.psf", solute, BUTANOL_BONDS)
    write_prmtop(OUT / "butanol.prmtop", solute, BUTANOL_BONDS)
    write_gro(OUT / "butanol.gro", solute)
    write_xyz(OUT / "butanol.xyz", solute)
    waters = water_droplet(np.array([a["pos"] for a in solute]))
    everything = solute + waters
    bonds = BUTANOL_BONDS + water_bonds(len(solute), len(waters) // 3)
    write_psf(OUT / "butanol_water.psf", everything, bonds)
    write_pdb(OUT / "butanol_water.pdb", everything, bonds)
    print(f"wrote {OUT}: butanol (15 atoms) and butanol + {len(waters) // 3} TIP3P waters ({len(everything)} atoms)")


if __name__ == "__main__":
    main()
