"""Quantum kinetic energy of H and D in liquid-like water with the shipped ML water model (docs/pimd.md).

20 waters (a cluster from the shipped test set); the hydrogens of the first 10 become deuterium.
The centroid-virial estimator gives the kinetic energy of every atom; zero-point motion of the O-H
stretch and bends makes it far larger than the classical 3 k_B T / 2 = 39 meV, and larger for H than D.
Ring-polymer contraction runs the full committee on 4 beads and one member on all 16.

Run:  python docs/examples/pimd_water_isotopes.py [steps]      (a few minutes with the default 600)
"""

import sys
from pathlib import Path

import numpy as np

import qmml
from qmml import units
from qmml.ml import Dataset

DATA = Path(__file__).resolve().parents[2] / "data"


def main(steps: int = 600) -> dict:
    frames = Dataset.load(DATA / "datasets" / "water_test.npz")
    system = next(f for f in frames if f.cell is None and len(f.elements) == 60).to_system("WAT")
    model = qmml.load_model("water")
    hydrogens = np.where(system.elements == "H")[0]
    deuterated = hydrogens[system.resids[hydrogens] <= 10]
    potential = qmml.with_isotopes(qmml.MLPotential(model, system), {int(i): "D" for i in deuterated})
    integrator = qmml.PathIntegralLangevin(0.25, 300.0, 16, centroid_friction_per_ps=10.0, seed=1,
                                           cheap=qmml.MLPotential(model, system, members=[0]), contracted_beads=4)
    sim = qmml.Simulation(potential, integrator, temperature_K=300, seed=1, progress=False)
    kinetic = []
    for n in range(steps):
        sim.state = integrator.step(potential, sim.state, sim.masses)
        if n >= steps // 4:  # the collapsed starting ring polymer spreads out within ~50 fs
            kinetic.append(integrator.kinetic_energy_per_atom(sim.state, sim.masses))
    kinetic = np.mean(kinetic, axis=0)
    protons = np.setdiff1d(hydrogens, deuterated)
    result = {"H": kinetic[protons].mean(), "D": kinetic[deuterated].mean(),
              "O": kinetic[system.elements == "O"].mean()}
    classical = 1.5 * units.BOLTZMANN_EV_PER_K * 300.0
    for atom, value in result.items():
        print(f"{atom}: quantum kinetic energy {1e3 * value:.0f} meV (classical {1e3 * classical:.0f} meV)")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600)
