"""Na+(H2O)6 and Cl-(H2O)6 clusters relaxed with GFN2-xTB (tblite) and with an environment model:
how short is the teacher's ion-oxygen distance, and where does a model put it?

    python data/scripts/ion_hydration_clusters.py data/models/organic_condensed_al3.pt

Octahedral starts (Na-O 2.4 Å, Cl-O 3.2 Å), BFGS to 0.02 eV/Å.  The isolated charged cluster lies outside the
condensed-phase models' training (periodic liquids), so only the teacher's number is a reference here:
GFN2-xTB gives Na-O 2.22 Å and Cl-O 3.14 Å (2026-12-06).
"""

import sys
import numpy as np
from ase import Atoms
from ase.optimize import BFGS
import qmml
from qmml.interfaces.ase import to_ase_atoms, QMMLCalculator
from tblite.ase import TBLite

def cluster(ion, r):
    dirs = np.array([[1,0,0],[-1,0,0],[0,1,0],[0,-1,0],[0,0,1],[0,0,-1]], float)
    sym, pos = [ion], [[0, 0, 0]]
    for d in dirs:
        o = d * r
        # H pointing away from a cation, towards an anion
        perp = np.cross(d, [1, 1, 1.0001]); perp /= np.linalg.norm(perp)
        sgn = 1 if ion == "Na" else -1
        if sgn > 0:
            h1 = o + 0.96 * (np.cos(0.91) * d + np.sin(0.91) * perp)
            h2 = o + 0.96 * (np.cos(0.91) * d - np.sin(0.91) * perp)
        else:
            h1 = o - 0.96 * d
            h2 = o + 0.96 * (np.cos(1.83) * -d + np.sin(1.83) * perp)
        sym += ["O", "H", "H"]; pos += [o, h1, h2]
    return sym, np.array(pos)


def main(model_path: str) -> None:
    for ion, r, q in (("Na", 2.4, 1), ("Cl", 3.2, -1)):
        sym, pos = cluster(ion, r)
        out = {}
        a = Atoms(sym, positions=pos)
        a.calc = TBLite(method="GFN2-xTB", charge=q, verbosity=0)
        BFGS(a, logfile=None).run(fmax=0.02, steps=300)
        out["GFN2-xTB"] = np.linalg.norm(a.positions[1::3] - a.positions[0], axis=1)
        system = qmml.System.from_arrays(sym, pos, residues=[1] + [2 + k // 3 for k in range(18)],
                                         bonds=[(1 + 3 * m, 2 + 3 * m) for m in range(6)] + [(1 + 3 * m, 3 + 3 * m) for m in range(6)],
                                         charges=[q] + [0.0] * 18)
        pot = qmml.MLPotential(qmml.load_model(model_path), system, total_charge=q)
        b = to_ase_atoms(system, calculator=QMMLCalculator(pot))
        BFGS(b, logfile=None).run(fmax=0.02, steps=300)
        out["model"] = np.linalg.norm(b.positions[1::3] - b.positions[0], axis=1)
        for k, v in out.items():
            print(f"{ion}+(H2O)6" if q > 0 else f"{ion}-(H2O)6", k, f"mean {ion}-O {v.mean():.3f} Å  (range {v.min():.2f}-{v.max():.2f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "organic")
