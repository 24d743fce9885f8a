"""Which basis set can label water for a liquid?  revPBE-D3(BJ) binding of the water dimer per basis set.

    python data/scripts/water_dimer_basis.py                      # the table in docs/ml_environment.md (~5 min)
    python data/scripts/water_dimer_basis.py def2-svp aug-cc-pvdz  # some basis sets only

A liquid taught by cluster labels inherits their hydrogen-bond strength; a small basis set binds two waters too
strongly by its basis-set superposition error (BSSE: each water borrows the other's functions).  For each basis
set this prints the number of functions per water, the dimer binding energy E(AB) - E(A) - E(B), the
counterpoise-corrected one (monomers in the dimer's basis; Boys & Bernardi 1970) and the difference, the BSSE.
Geometry: the S22 water dimer (Jurecka et al., Phys. Chem. Chem. Phys. 8, 1985 (2006)), whose CCSD(T)/CBS binding
is -5.0 kcal/mol.  revPBE with density fitting, D3(BJ) (simple-dftd3's revPBE parameters) added to every energy.
Units: kcal/mol.
"""

from __future__ import annotations

import sys

import numpy as np

DIMER = [("O", (-1.551007, -0.114520, 0.000000)), ("H", (-1.934259, 0.762503, 0.000000)),
         ("H", (-0.599677, 0.040712, 0.000000)), ("O", (1.350625, 0.111469, 0.000000)),
         ("H", (1.680398, -0.373741, -0.758561)), ("H", (1.680398, -0.373741, 0.758561))]
BASES = ("def2-svp", "6-31+g*", "pcseg-1", "def2-tzvp", "6-311++g**", "def2-svpd", "aug-pcseg-1", "aug-cc-pvdz",
         "def2-qzvp")
A, B, BOTH = (0, 1, 2), (3, 4, 5), tuple(range(6))


def energy(basis: str, atoms, ghosts=()) -> float:
    """revPBE-D3(BJ) energy (Hartree) of ``atoms`` of the dimer, with the functions of ``ghosts`` added."""
    from pyscf import dft, gto

    from qmml import units
    from qmml.ml.dispersion import simple_dftd3

    spec = [(DIMER[i][0], DIMER[i][1]) for i in atoms] + [("ghost-" + DIMER[i][0], DIMER[i][1]) for i in ghosts]
    mf = dft.RKS(gto.M(atom=spec, basis=basis, verbose=0)).density_fit()
    mf.xc, mf.conv_tol = "revpbe", 1e-10
    d3 = simple_dftd3()
    z = np.array([8 if DIMER[i][0] == "O" else 1 for i in atoms], dtype=np.int32)
    x = np.array([DIMER[i][1] for i in atoms]) * units.ANGSTROM_BOHR
    e_d3 = d3.DispersionModel(z, x).get_dispersion(d3.RationalDampingParam(method="revpbe"), grad=False)["energy"]
    return mf.kernel() + e_d3


def main(argv=None) -> int:
    from pyscf import gto

    from qmml import units

    bases = (argv if argv is not None else sys.argv[1:]) or BASES
    kcal = units.HARTREE_EV / units.KCAL_PER_MOL_EV
    print(f"{'basis':12s} {'functions/water':>15s} {'binding':>8s} {'counterpoise':>12s} {'BSSE':>6s}  (kcal/mol)")
    for basis in bases:
        n = gto.M(atom=[(s, x) for s, x in DIMER[:3]], basis=basis, verbose=0).nao
        e_ab = energy(basis, BOTH)
        plain = e_ab - energy(basis, A) - energy(basis, B)
        cp = e_ab - energy(basis, A, ghosts=B) - energy(basis, B, ghosts=A)
        print(f"{basis:12s} {n:15d} {plain * kcal:8.2f} {cp * kcal:12.2f} {(plain - cp) * kcal:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
