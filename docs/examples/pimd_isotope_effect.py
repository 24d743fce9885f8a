"""Kinetic isotope effect of a proton transfer from path-integral MD (see docs/pimd.md).

A model of a proton (or deuteron) moving between two acceptors: a symmetric double well along x,
V(x) = V0 (x^2 / a^2 - 1)^2, and a stiff harmonic confinement across it.  Many independent copies
are simulated at once.  Path-integral MD gives the free energy F(x_c) of the ring-polymer centroid
along x; centroid transition-state theory (Gillan; Voth, Chandler & Miller) turns its barrier into a rate,

    k = sqrt(k_B T / (2 pi m)) * rho_c(0) / P_reactant,

so k_H / k_D = sqrt(m_D / m_H) * rho_H(0) / rho_D(0) (both wells equally populated).  Classically rho(0)
does not depend on the mass and the ratio is sqrt(m_D / m_H) = 1.41; zero-point energy and
delocalization lower the proton's barrier more than the deuteron's, and the ratio grows.

Run:  python docs/examples/pimd_isotope_effect.py [steps]      (about 30 s with the default 4000)
"""

import sys

import numpy as np

import qmml
from qmml import units
from qmml.md.pimd import ISOTOPE_MASSES_AMU

BARRIER_EV, HALF_WIDTH_A, CONFINEMENT_EV_A2 = 0.12, 0.35, 10.0
TEMPERATURE_K, N_COPIES, N_BEADS, TIMESTEP_FS = 300.0, 256, 32, 0.5


class DoubleWell(qmml.Potential):
    """Independent double wells along x about each atom's start position (x0 + a is the other minimum)."""

    def __init__(self, system):
        self.system = system
        self.centre = system.positions + [HALF_WIDTH_A, 0.0, 0.0]

    def compute(self, positions, *, forces=True, cell=None):
        d = positions - self.centre
        u = d[:, 0] ** 2 / HALF_WIDTH_A ** 2 - 1.0
        energy = BARRIER_EV * np.sum(u * u) + 0.5 * CONFINEMENT_EV_A2 * np.sum(d[:, 1:] ** 2)
        forces = -CONFINEMENT_EV_A2 * d
        forces[:, 0] = -4.0 * BARRIER_EV * u * d[:, 0] / HALF_WIDTH_A ** 2
        return qmml.PotentialResult(energy=float(energy), forces=forces)


def centroid_density_at_barrier(isotope: str, n_beads: int, steps: int, seed: int = 1):
    """rho_c(0) (1/Å, normalized over both wells) and the centroid free-energy barrier (eV)."""
    start = np.zeros((N_COPIES, 3))
    start[:, 1] = 4.0 * np.arange(N_COPIES)  # apart, for a trajectory viewer; they do not interact
    system = qmml.with_isotopes(qmml.System.from_arrays(["H"] * N_COPIES, start),
                                {i: isotope for i in range(N_COPIES)})
    potential = DoubleWell(system)
    integrator = qmml.PathIntegralLangevin(TIMESTEP_FS, TEMPERATURE_K, n_beads, centroid_friction_per_ps=5.0,
                                           seed=seed)
    sim = qmml.Simulation(potential, integrator, temperature_K=TEMPERATURE_K, seed=seed, progress=False)
    x = []
    for n in range(steps):
        sim.state = integrator.step(potential, sim.state, sim.masses)
        if n >= steps // 10:  # equilibration
            x.append(sim.state.positions[:, 0] - potential.centre[:, 0])
    x = np.ravel(x)
    counts, edges = np.histogram(x, bins=np.linspace(-2 * HALF_WIDTH_A, 2 * HALF_WIDTH_A, 57))
    density = counts / (len(x) * np.diff(edges))
    middle = len(density) // 2
    at_top = 0.5 * (density[middle - 1] + density[middle])  # the two bins either side of x = 0
    kT = units.BOLTZMANN_EV_PER_K * TEMPERATURE_K
    return at_top, kT * np.log(density.max() / at_top)


def main(steps: int = 4000) -> dict:
    m_h, m_d = ISOTOPE_MASSES_AMU["H"], ISOTOPE_MASSES_AMU["D"]
    rho, barrier = {}, {}
    for isotope in ("H", "D"):
        rho[isotope], barrier[isotope] = centroid_density_at_barrier(isotope, N_BEADS, steps)
        print(f"{isotope}: centroid free-energy barrier {1e3 * barrier[isotope]:.0f} meV "
              f"(potential barrier {1e3 * BARRIER_EV:.0f} meV)")
    ratio = np.sqrt(m_d / m_h) * rho["H"] / rho["D"]
    print(f"k_H / k_D = {ratio:.1f} (centroid TST; classical {np.sqrt(m_d / m_h):.2f})")
    return {"barrier_eV": barrier, "kie": ratio}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4000)
