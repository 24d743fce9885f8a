"""NPT of the shipped ML water model at 300 K and 1 bar: the density it settles at, and the box fluctuations.

    python docs/examples/npt_water.py --steps 8000 --out npt_water_run           # ~20 min on 2 cores
    python docs/examples/npt_water.py --steps 8000 --start-density 0.85 --out npt_water_low
    python docs/examples/npt_water.py --quick                                     # 200 steps, < 1 min

128 waters (data/structures/water_box.pdb, 15.65 Å, 1.00 g/cm^3), `qmml.MLPotential` with the `water`
model, Langevin BAOAB (1 fs, 1/ps friction) with stochastic cell rescaling (Bernetti & Bussi 2020;
compressibility 4.5e-5 /bar, relaxation 500 fs).  ``--start-density`` scales the starting box (and the
molecules' centres, keeping each molecule rigid) to another density, so two runs show that the density
does not depend on where it started.

Prints the density averaged over the second half of the run with its block-averaged standard error,
the relative volume fluctuation and the isothermal compressibility from it,
kappa_T = <dV^2> / (k_B T <V>), against water's 4.5e-5 /bar (the coupling constant of the barostat
does not enter the sampled distribution, so this is the model's own compressibility).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import qmml
from qmml import units

ROOT = Path(__file__).resolve().parents[2]


def block_error(values: np.ndarray, n_blocks: int = 5) -> float:
    """Standard error of the mean from ``n_blocks`` contiguous blocks."""
    blocks = np.array_split(values, n_blocks)
    means = np.array([b.mean() for b in blocks])
    return float(means.std(ddof=1) / np.sqrt(n_blocks))


def starting_system(density_g_cm3: float | None):
    system = qmml.load_system(ROOT / "data/structures/water_box.psf", ROOT / "data/structures/water_box.pdb")
    if density_g_cm3 is None:
        return system
    density = system.masses.sum() / abs(np.linalg.det(system.cell)) * units.AMU_PER_A3_G_PER_CM3
    scale = (density / density_g_cm3) ** (1.0 / 3.0)
    x = system.positions
    centres = (x[0::3] * system.masses[0::3, None] + x[1::3] * system.masses[1::3, None]
               + x[2::3] * system.masses[2::3, None]) / (system.masses[0::3] + system.masses[1::3]
                                                        + system.masses[2::3])[:, None]
    moved = x + np.repeat(centres * (scale - 1.0), 3, axis=0)
    return qmml.System.from_arrays(system.elements, moved, box=np.concatenate([system.box[:3] * scale, [90, 90, 90]]),
                                   bonds=system.bonds, residues=system.resids, resnames=system.resnames,
                                   names=system.names, charges=system.charges)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--timestep-fs", type=float, default=1.0)
    parser.add_argument("--start-density", type=float, default=None, help="g/cm^3 (default: the shipped 1.00)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="npt_water_run")
    parser.add_argument("--quick", action="store_true", help="200 steps, for a smoke test")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else args.steps
    system = starting_system(args.start_density)
    potential = qmml.MLPotential(qmml.load_model("water"), system)
    barostat = qmml.StochasticCellRescaling(pressure_bar=1.0, compressibility_per_bar=4.5e-5, relaxation_fs=500.0)
    integrator = qmml.Langevin(args.timestep_fs, 300.0, friction_per_ps=1.0, seed=args.seed, barostat=barostat)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    log = qmml.ThermoLog(out / "thermo.csv", every=10)
    sim = qmml.Simulation(potential, integrator, reporters=[log], temperature_K=300.0, seed=args.seed)
    sim.run(steps)
    thermo = qmml.read_thermo(out / "thermo.csv")
    density = np.asarray(thermo["density_g_per_cm3"])
    volume = np.asarray(thermo["volume_A3"])
    pressure = np.asarray(thermo["pressure_bar"])
    half = len(density) // 2
    d, v = density[half:], volume[half:]
    kappa = v.var() / (units.BOLTZMANN_EV_PER_K * 300.0 * v.mean()) * units.BAR_EV_PER_A3
    lines = [f"{steps} steps of {args.timestep_fs} fs, start {density[0]:.4f} g/cm^3",
             f"density (second half): {d.mean():.4f} +- {block_error(d):.4f} g/cm^3 (block standard error; "
             f"experiment 0.9965 at 300 K)",
             f"volume: {v.mean():.1f} A^3, fluctuation std {v.std():.1f} A^3 ({100 * v.std() / v.mean():.2f}%)",
             f"box length: {np.cbrt(v).mean():.3f} +- {np.cbrt(v).std():.3f} A",
             f"isothermal compressibility from the fluctuations: {kappa:.2e} /bar (water: 4.5e-5 /bar)",
             f"mean pressure (second half): {pressure[half:].mean():.0f} +- {block_error(pressure[half:]):.0f} bar "
             "(target 1 bar)",
             "density by tenths of the run: " + " ".join(f"{b.mean():.3f}" for b in np.array_split(density, 10))]
    text = "\n".join(lines)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
    return d.mean()


if __name__ == "__main__":
    main()
