"""Morse parameters of the bonded baseline (`qmml.ml.baseline.GFN2_XH_MORSE`) from GFN2-xTB bond scans.

    python data/scripts/fit_bond_baseline.py        # ~10 s; prints the table

One X-H bond of H2O, NH3, CH4 and H2S is stretched from 0.75 to 2.2 Å along its direction, every other atom
fixed, and D (1 - exp(-a (r - r0)))^2 + E0 is fitted to the GFN2-xTB (tblite) energies.  Closed-shell GFN2-xTB
overestimates the energy of a broken bond; the baseline only needs the right order of magnitude there, and
the networks learn the difference to the labels where there are labels.
"""

import numpy as np
from scipy.optimize import curve_fit

from qmml.ml.labelling import XTBLabeller

#: (atomic numbers, positions in Å) with the scanned H second
MOLECULES = {
    8: ([8, 1, 1], [[0, 0, 0], [0.9572, 0, 0], [-0.2400, 0.9266, 0]]),
    7: ([7, 1, 1, 1], [[0, 0, 0], [1.012, 0, 0], [-0.337, 0.954, 0], [-0.337, -0.477, 0.826]]),
    6: ([6, 1, 1, 1, 1], [[0, 0, 0], [1.09, 0, 0], [-0.363, 1.028, 0], [-0.363, -0.514, 0.890],
                          [-0.363, -0.514, -0.890]]),
    16: ([16, 1, 1], [[0, 0, 0], [1.336, 0, 0], [-0.044, 1.335, 0]]),
}


def morse(r, depth, a, r0, e0):
    return depth * (1 - np.exp(-a * (r - r0))) ** 2 + e0


def main():
    rows = []
    for z, (elements, positions) in MOLECULES.items():
        x = np.asarray(positions, float)
        distances = np.linspace(0.75, 2.2, 30)
        energies = []
        for r in distances:
            y = x.copy()
            y[1] = x[1] / np.linalg.norm(x[1]) * r
            energies.append(XTBLabeller(elements)(y).energy)
        energies = np.array(energies)
        p, _ = curve_fit(morse, distances, energies, p0=[5, 2, distances[np.argmin(energies)], energies.min()])
        rms = np.sqrt(((morse(distances, *p) - energies) ** 2).mean())
        rows.append((z, round(float(p[0]), 3), round(float(p[1]), 3), round(float(p[2]), 4)))
        print(f"X = {z:2d}: D = {p[0]:.3f} eV, a = {p[1]:.3f} 1/Å, r0 = {p[2]:.4f} Å (rms {rms:.3f} eV)")
    print("GFN2_XH_MORSE =", tuple(sorted(rows)))


if __name__ == "__main__":
    main()
