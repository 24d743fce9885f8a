"""NPT of the shipped ML water model at 300 K and 1 bar: density, box fluctuations, O-O g(r) and diffusion.

    python docs/examples/npt_water.py --steps 8000 --out npt_water_run           # ~20 min on 2 cores
    python docs/examples/npt_water.py --steps 10000 --start-density 0.90 --out npt_water_090
    python docs/examples/npt_water.py --steps 10000 --start-density 1.05 --out npt_water_105
    python docs/examples/npt_water.py --quick                                     # 200 steps, < 1 min
    python docs/examples/npt_water.py --model path/to/model.pt ...                # any model file

128 waters (data/structures/water_box.pdb, 15.65 Å, 1.00 g/cm^3), `qmml.MLPotential` with the `water`
model, Langevin BAOAB (1 fs, 1/ps friction) with stochastic cell rescaling (Bernetti & Bussi 2020;
compressibility 4.5e-5 /bar, relaxation 500 fs).  ``--start-density`` scales the starting box (and the
molecules' centres, keeping each molecule rigid) to another density, so two runs show that the density
does not depend on where it started.

Prints the density averaged over the second half of the run with its block-averaged standard error,
the relative volume fluctuation and the isothermal compressibility from it,
kappa_T = <dV^2> / (k_B T <V>), against water's 4.5e-5 /bar (the coupling constant of the barostat
does not enter the sampled distribution, so this is the model's own compressibility).

Liquid structure and transport, from ``trajectory.extxyz`` (every 20 steps, written for relabelling
too: ``data/scripts/condensed_phase.py NAME --from-run OUT`` labels its frames with the teacher):
the O-O radial distribution over the second half (first peak position and height against experiment,
2.80 Å and about 2.5, Skinner et al. 2013), and the self-diffusion coefficient of the oxygens from
their multiple-origin mean squared displacement over the second half (centre-of-mass drift removed),
fitted from 1 ps on, plus the Yeh-Hummer finite-size correction with water's viscosity (0.85 mPa s at
300 K), against experiment, 2.3e-5 cm^2/s.  The Langevin friction (1/ps) slows diffusion a little.
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


def liquid_structure(out: Path, system, temperature_K: float, viscosity_mPa_s: float = 0.85) -> list[str]:
    """O-O g(r) first peak and oxygen self-diffusion (Yeh-Hummer corrected) from the run's trajectory."""
    import MDAnalysis as mda
    from ase.io import iread
    from MDAnalysis.coordinates.memory import MemoryReader
    from MDAnalysis.lib.mdamath import triclinic_box

    from qmml.analysis import msd_all_origins, radial_distribution, yeh_hummer_correction

    images = list(iread(out / "trajectory.extxyz", index=":"))
    time_fs = np.array([a.info.get("time_fs", np.nan) for a in images], dtype=float)
    x = np.array([a.positions for a in images])
    boxes = np.array([triclinic_box(*np.asarray(a.cell)) for a in images])
    half = len(images) // 2
    universe = mda.Universe(str(ROOT / "data/structures/water_box.psf"), x[half:], format=MemoryReader,
                            dimensions=boxes[half:])
    r, g = radial_distribution(universe, "name OH2", r_max_A=min(6.0, 0.49 * boxes[half:, :3].min()), n_bins=120)
    first = (r > 2.4) & (r < 3.3)
    peak = int(np.argmax(np.where(first, g, -1.0)))
    oxygen = system.elements == "O"
    masses = system.masses
    tail = x[half:]
    com = np.einsum("tia,i->ta", tail, masses) / masses.sum()
    msd = msd_all_origins((tail - com[:, None, :])[:, oxygen]).mean(1)
    dt = float(np.nanmedian(np.diff(time_fs))) if np.isfinite(time_fs).all() else None
    lines = [f"O-O g(r) first peak (second half): {r[peak]:.2f} A, height {g[peak]:.2f} "
             "(experiment 2.80 A, ~2.5)"]
    if dt is None or len(msd) * dt < 3000:
        return lines + ["self-diffusion: the second half is shorter than 3 ps; run longer for D"]
    lag = np.arange(len(msd)) * dt
    window = (lag >= 1000.0) & (lag <= 0.5 * lag[-1])
    d_pbc = np.polyfit(lag[window], msd[window], 1)[0] / 6.0
    box = float(np.cbrt(np.prod(boxes[half:, :3], axis=1)).mean())
    d_inf = d_pbc + yeh_hummer_correction(temperature_K, box, viscosity_mPa_s)
    to_cm2 = units.A2_PER_FS_CM2_PER_S
    return lines + [f"self-diffusion of O: {d_pbc * to_cm2 * 1e5:.2f}e-5 cm^2/s in the box, "
                    f"{d_inf * to_cm2 * 1e5:.2f}e-5 cm^2/s with the Yeh-Hummer correction "
                    f"(eta {viscosity_mPa_s} mPa s; experiment 2.3e-5 cm^2/s at 298 K)"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--timestep-fs", type=float, default=1.0)
    parser.add_argument("--start-density", type=float, default=None, help="g/cm^3 (default: the shipped 1.00)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="npt_water_run")
    parser.add_argument("--quick", action="store_true", help="200 steps, for a smoke test")
    parser.add_argument("--model", default="water", help="shipped model name or model file")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else args.steps
    system = starting_system(args.start_density)
    potential = qmml.MLPotential(qmml.load_model(args.model), system)
    barostat = qmml.StochasticCellRescaling(pressure_bar=1.0, compressibility_per_bar=4.5e-5, relaxation_fs=500.0)
    integrator = qmml.Langevin(args.timestep_fs, 300.0, friction_per_ps=1.0, seed=args.seed, barostat=barostat)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    log = qmml.ThermoLog(out / "thermo.csv", every=10)
    trajectory = qmml.TrajectoryWriter(out / "trajectory.extxyz", every=20)
    sim = qmml.Simulation(potential, integrator, reporters=[log, trajectory], temperature_K=300.0, seed=args.seed,
                          checkpoint=out / "checkpoint.npz")
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
    lines += liquid_structure(out, system, 300.0)
    text = "\n".join(lines)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
    return d.mean()


if __name__ == "__main__":
    main()
