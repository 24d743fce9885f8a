"""Constant pressure: Langevin (BAOAB) with stochastic cell rescaling on a Lennard-Jones argon fluid.

The test potential is a real periodic one (defined here, with its stress checked against finite
strains): argon as a Lennard-Jones fluid, epsilon/k_B = 119.8 K, sigma = 3.405 Å, switched smoothly
to zero between 2.0 and 2.5 sigma, plus the standard mean-field tail for everything beyond 2.0 sigma
(g(r) = 1 there), so that its equation of state is that of the full Lennard-Jones fluid and the NPT
density can be compared with Johnson, Zollweg & Gubbins, Mol. Phys. 78, 591 (1993).
"""


import numpy as np
import pytest

import qmml
from qmml import units
from qmml.errors import InputError
from qmml.md import StochasticCellRescaling, read_checkpoint, read_thermo, write_checkpoint
from qmml.md.state import MDState

EPSILON_EV = 119.8 * units.BOLTZMANN_EV_PER_K
SIGMA_A = 3.405
#: Pressure unit of the reduced Lennard-Jones equation of state, epsilon / sigma^3, in bar.
LJ_PRESSURE_BAR = EPSILON_EV / SIGMA_A**3 / units.BAR_EV_PER_A3

# the state point: a dense supercritical fluid, T* = 2.0, rho* = 0.7 (P* = 3.05 from the JZG fit)
T_STAR, RHO_STAR = 2.0, 0.7
TEMPERATURE_K = T_STAR * 119.8


def LJResult(energy, forces, stress):
    return qmml.PotentialResult(energy=energy, forces=forces, stress=stress)


class LennardJonesArgon(qmml.Potential):
    """Periodic Lennard-Jones argon, minimum image in any (mildly) triclinic cell.

    The pair energy u(r) S(r) is switched off smoothly (quintic S, continuous forces) between
    ``switch_sigma`` and ``cutoff_sigma``; what it misses beyond the switch is added as the tail
    E_tail = 2 pi N^2 / V int r^2 u (1 - S) dr, exactly the standard long-range correction for g = 1,
    whose stress (-E_tail / V on the diagonal) makes the pressure that of the full potential.
    """

    def __init__(self, system, cutoff_sigma=2.5, switch_sigma=2.0):
        self.system = system
        self.r_on, self.r_cut = switch_sigma * SIGMA_A, cutoff_sigma * SIGMA_A
        n = system.n_atoms
        self.i, self.j = np.triu_indices(n, 1)
        t, w = np.polynomial.legendre.leggauss(64)
        r = self.r_on + (t + 1) / 2 * (self.r_cut - self.r_on)
        u = 4 * EPSILON_EV * ((SIGMA_A / r) ** 12 - (SIGMA_A / r) ** 6)
        inner = (self.r_cut - self.r_on) / 2 * np.sum(w * r**2 * u * (1 - self._switch(r)[0]))
        outer = 4 * EPSILON_EV * (SIGMA_A**12 / (9 * self.r_cut**9) - SIGMA_A**6 / (3 * self.r_cut**3))
        self.tail = 2 * np.pi * (inner + outer) * n * n  # eV Å^3: E_tail = tail / V

    def _switch(self, r):
        t = np.clip((r - self.r_on) / (self.r_cut - self.r_on), 0.0, 1.0)
        return 1 - t**3 * (10 - 15 * t + 6 * t * t), -30 * t * t * (1 - t) ** 2 / (self.r_cut - self.r_on)

    def compute(self, positions, *, forces=True, cell=None):
        cell = self.system.cell if cell is None else np.asarray(cell, dtype=float)
        volume = abs(np.linalg.det(cell))
        inverse = np.linalg.inv(cell)
        widths = 1.0 / np.linalg.norm(inverse, axis=0)  # distances between opposite faces
        assert 2 * self.r_cut < widths.min(), "cutoff longer than half the box: minimum image fails"
        frac = np.asarray(positions) @ inverse
        df = frac[self.i] - frac[self.j]
        d = (df - np.round(df)) @ cell
        r2 = np.einsum("ij,ij->i", d, d)
        near = np.flatnonzero(r2 < self.r_cut**2)
        d, r2 = d[near], r2[near]
        r = np.sqrt(r2)
        x6 = (SIGMA_A * SIGMA_A / r2) ** 3
        u = 4 * EPSILON_EV * (x6 * x6 - x6)
        s, ds = self._switch(r)
        g = (4 * EPSILON_EV * (6 * x6 - 12 * x6 * x6) / r * s + u * ds) / r  # (d(u S)/dr) / r
        gd = g[:, None] * d
        n = len(positions)
        f = np.empty((n, 3))
        for k in range(3):
            f[:, k] = np.bincount(self.j[near], gd[:, k], n) - np.bincount(self.i[near], gd[:, k], n)
        stress = (d.T @ gd - self.tail / volume * np.eye(3)) / volume
        return LJResult(float(u @ s) + self.tail / volume, f, stress)


def argon_fcc(density_star, n_cells=3, jitter_A=0.0, tilt=None):
    """fcc argon (4 n^3 atoms) at reduced density ``density_star``; ``tilt`` shears the box (fraction of a)."""
    a = (4 / density_star) ** (1 / 3) * SIGMA_A
    base = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.array([[i, j, k] for i in range(n_cells) for j in range(n_cells) for k in range(n_cells)])
    frac = (grid[:, None, :] + base[None]).reshape(-1, 3) / n_cells
    cell = np.eye(3) * a * n_cells
    if tilt is not None:
        cell[1, 0] = cell[2, 0] = cell[2, 1] = tilt * a * n_cells
    positions = frac @ cell + np.random.default_rng(0).normal(0.0, jitter_A, frac.shape)
    from MDAnalysis.lib.mdamath import triclinic_box

    return qmml.System.from_arrays(["Ar"] * len(frac), positions, box=triclinic_box(*cell))


# -- reference: the Johnson-Zollweg-Gubbins (1993) MBWR equation of state --------------------------
_JZG = [0.8623085097507421, 2.976218765822098, -8.402230115796038, 0.1054136629203555, -0.8564583828174598,
        1.582759470107601, 0.7639421948305453, 1.753173414312048, 2798.291772190376, -0.048394220260857657,
        0.9963265197721935, -36.98000291272493, 20.84012299434647, 83.05402124717285, -957.4799715203068,
        -147.7746229234994, 63.98607852471505, 16.03993673294834, 68.05916615864377, -2791.293578795945,
        -6.245128304568454, -8116.836104958410, 14.88735559561229, -10593.46754655084, -113.1607632802822,
        -8867.771540418822, -39.86982844450543, -4689.270299917261, 259.3535277438717, -2694.523589434903,
        -721.8487631550215, 172.1802063863269]


def jzg_pressure(rho, t):
    """Reduced pressure P* of the full Lennard-Jones fluid at reduced density and temperature (JZG Eq. 5)."""
    x = [None, *_JZG]
    a = [x[1] * t + x[2] * np.sqrt(t) + x[3] + x[4] / t + x[5] / t**2, x[6] * t + x[7] + x[8] / t + x[9] / t**2,
         x[10] * t + x[11] + x[12] / t, x[13], x[14] / t + x[15] / t**2, x[16] / t, x[17] / t + x[18] / t**2,
         x[19] / t**2]
    b = [x[20] / t**2 + x[21] / t**3, x[22] / t**2 + x[23] / t**4, x[24] / t**2 + x[25] / t**3,
         x[26] / t**2 + x[27] / t**4, x[28] / t**2 + x[29] / t**3, x[30] / t**2 + x[31] / t**3 + x[32] / t**4]
    f = np.exp(-3.0 * rho**2)
    return rho * t + sum(a[i] * rho ** (i + 2) for i in range(8)) + f * sum(b[i] * rho ** (2 * i + 3) for i in range(6))


def test_the_equation_of_state_reference_is_the_published_one():
    # the JZG critical point (T* 1.313, rho* 0.310, P* 0.13) and their MD pressure at the test's state point
    assert abs(jzg_pressure(0.31, 1.313) - 0.13) < 0.005
    assert abs(jzg_pressure(0.311, 1.313) - jzg_pressure(0.309, 1.313)) < 1e-4  # flat at the critical point
    assert abs(jzg_pressure(RHO_STAR, T_STAR) - 3.05) < 0.01


def npt_conditions():
    """Target pressure (bar) and isothermal compressibility (1/bar) of the state point, from the EOS."""
    dp_drho = (jzg_pressure(RHO_STAR + 1e-5, T_STAR) - jzg_pressure(RHO_STAR - 1e-5, T_STAR)) / 2e-5
    return jzg_pressure(RHO_STAR, T_STAR) * LJ_PRESSURE_BAR, 1.0 / (RHO_STAR * dp_drho) / LJ_PRESSURE_BAR


def reduced_density(volume_A3, n_atoms=108):
    return n_atoms / np.asarray(volume_A3) * SIGMA_A**3


# -- the test potential -------------------------------------------------------------------------
def test_lj_stress_and_forces_match_finite_differences():
    system = argon_fcc(0.7, jitter_A=0.15, tilt=0.05)
    lj = LennardJonesArgon(system)
    x, cell = system.positions, system.cell
    res = lj.compute(x)
    volume = abs(np.linalg.det(cell))
    h = 1e-5
    worst = 0.0
    for strain in (np.diag([1.0, 0, 0]), np.diag([0, 0, 1.0]), np.eye(3),
                   np.array([[0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]]), np.array([[0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])):
        e = [lj.compute(x @ (np.eye(3) + s * strain), cell=cell @ (np.eye(3) + s * strain), forces=False).energy
             for s in (h, -h)]
        worst = max(worst, abs((e[0] - e[1]) / (2 * h) - volume * np.sum(res.stress * strain)))
    assert worst < 1e-6 * volume * np.abs(res.stress).max()
    step = 1e-4
    for atom, axis in ((0, 0), (17, 1), (63, 2)):
        plus, minus = x.copy(), x.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        numeric = -(lj.compute(plus).energy - lj.compute(minus).energy) / (2 * step)
        assert abs(numeric - res.forces[atom, axis]) < 1e-7
    assert np.allclose(res.stress, res.stress.T) and abs(res.forces.sum(0)).max() < 1e-12


# -- NPT ------------------------------------------------------------------------------------------
def npt_run(start_density, n_steps, *, seed=1, relaxation_fs=300.0, friction_per_ps=5.0, timestep_fs=10.0):
    """Volumes (Å^3), effective energies and heat given to the baths (eV) along an NPT run of 108 argon
    atoms, and the simulation.

    The fcc start is first melted at constant volume (3 ps): a lattice's pressure is far from the
    fluid's, and a fast barostat would squeeze the box below twice the cutoff before it melts."""
    pressure_bar, kappa_per_bar = npt_conditions()
    lj = LennardJonesArgon(argon_fcc(start_density))
    melt = qmml.Simulation(lj, qmml.Langevin(timestep_fs, TEMPERATURE_K, friction_per_ps=20.0, seed=seed),
                           temperature_K=TEMPERATURE_K, seed=seed, progress=False).run(300)
    barostat = StochasticCellRescaling(pressure_bar, kappa_per_bar, relaxation_fs)
    integrator = qmml.Langevin(timestep_fs, TEMPERATURE_K, friction_per_ps=friction_per_ps, seed=seed,
                               barostat=barostat)
    sim = qmml.Simulation(lj, integrator, positions=melt.state.positions, velocities=melt.state.velocities,
                          progress=False)
    volumes, energies, heat = np.empty(n_steps), np.empty(n_steps), np.empty(n_steps)
    for k in range(n_steps):
        sim.state = integrator.step(lj, sim.state, sim.masses)
        volumes[k] = abs(np.linalg.det(sim.state.cell))
        energies[k] = integrator.conserved_energy(sim.state, sim.masses)
        heat[k] = sim.state.heat_eV + sim.state.barostat_heat_eV
    return volumes, energies, heat, sim


def test_npt_gives_the_equation_of_state_density_and_volume_fluctuations():
    pressure_bar, kappa_per_bar = npt_conditions()
    volumes, _, _, sim = npt_run(RHO_STAR, 7500, relaxation_fs=150.0)
    v = volumes[1000:]  # 10 ps to equilibrate
    density = reduced_density(v.mean())
    kT = units.BOLTZMANN_EV_PER_K * TEMPERATURE_K
    ratio = v.var() / (kT * v.mean() * kappa_per_bar / units.BAR_EV_PER_A3)  # <dV^2> = kT V kappa_T
    x = v - v.mean()
    correlation = [x[:-k] @ x[k:] / (x @ x) for k in range(1, 400)]
    independent = len(x) / (1 + 2 * sum(c for c in correlation if c > 0.05))
    grams = sim.integrator.thermo_values(sim.state, sim.masses)[1]
    print(f"NPT LJ argon, 108 atoms, T* {T_STAR} ({TEMPERATURE_K:.1f} K), P* {pressure_bar / LJ_PRESSURE_BAR:.3f} "
          f"({pressure_bar:.0f} bar), {len(v) / 100:.0f} ps: rho* {density:.4f} vs {RHO_STAR} from the JZG EOS "
          f"({density / RHO_STAR - 1:+.2%}; now {grams:.3f} g/cm3); <dV^2> / (kT V kappa_T) = {ratio:.2f} "
          f"from ~{independent:.0f} independent volumes (statistical error ~{np.sqrt(2 / independent):.0%})")
    assert abs(density / RHO_STAR - 1) < 0.02
    assert 0.55 < ratio < 1.6


def test_two_starting_volumes_converge_to_one_density():
    low = npt_run(0.6, 2500, seed=3, relaxation_fs=200.0)[0]
    high = npt_run(0.8, 2500, seed=4, relaxation_fs=200.0)[0]
    a, b = reduced_density(low[1000:].mean()), reduced_density(high[1000:].mean())
    print(f"NPT from rho* 0.6 and 0.8: {reduced_density(low[0]):.3f} -> {a:.4f}, "
          f"{reduced_density(high[0]):.3f} -> {b:.4f} (averages over the last 15 ps)")
    assert abs(a - b) < 0.02 and abs(a / RHO_STAR - 1) < 0.03 and abs(b / RHO_STAR - 1) < 0.03


def test_effective_energy_is_conserved():
    volumes, effective, heat, sim = npt_run(RHO_STAR, 3000, relaxation_fs=300.0, friction_per_ps=1.0)
    drift = np.polyfit(np.arange(len(effective)) * 0.01, effective, 1)[0] / 108  # eV/ps/atom
    enthalpy = effective - heat  # E_kin + E_pot + P0 V, which the baths change
    print(f"NPT LJ argon, 30 ps, 10 fs steps: effective energy drifts {drift:.1e} eV/ps/atom, range "
          f"{np.ptp(effective):.4f} eV, while E_kin + E_pot + P0 V ranges over {np.ptp(enthalpy):.3f} eV "
          f"(barostat heat {sim.state.barostat_heat_eV:+.3f} eV); volume range {np.ptp(volumes) / volumes.mean():.1%}")
    # measured 2.4e-6 eV/ps/atom and 1% (doubling the barostat's noise doubles both; the volume
    # fluctuations of the test above catch that far more clearly)
    assert abs(drift) < 1e-5
    assert np.ptp(effective) < 0.05 * np.ptp(enthalpy)


def test_zero_coupling_gives_the_nvt_run_exactly():
    system = argon_fcc(RHO_STAR, jitter_A=0.05)
    lj = LennardJonesArgon(system)
    runs = []
    for barostat in (None, StochasticCellRescaling(1000.0, 0.0, 500.0),
                     StochasticCellRescaling(1000.0, 2e-4, np.inf)):
        integrator = qmml.Langevin(10.0, TEMPERATURE_K, friction_per_ps=5.0, seed=2, barostat=barostat)
        runs.append(qmml.Simulation(lj, integrator, temperature_K=TEMPERATURE_K, seed=2, progress=False).run(40))
    for npt in runs[1:]:
        assert np.array_equal(npt.state.positions, runs[0].state.positions)
        assert np.array_equal(npt.state.velocities, runs[0].state.velocities)
        assert np.array_equal(npt.state.cell, system.cell) and npt.state.barostat_heat_eV == 0.0


def npt_simulation(folder, *, restart=False, checkpoint_every=7):
    pressure_bar, kappa_per_bar = npt_conditions()
    lj = LennardJonesArgon(argon_fcc(RHO_STAR, jitter_A=0.05))
    integrator = qmml.Langevin(10.0, TEMPERATURE_K, friction_per_ps=5.0, seed=5,
                               barostat=StochasticCellRescaling(pressure_bar, kappa_per_bar, 1000.0))
    reporters = [qmml.ThermoLog(folder / "thermo.csv", plot=False),
                 qmml.TrajectoryWriter(folder / "traj.extxyz", every=3),
                 qmml.TrajectoryWriter(folder / "traj.dcd", every=3)]
    if restart:
        return qmml.Simulation.restart(folder / "checkpoint.npz", lj, integrator, reporters=reporters,
                                       checkpoint_every=checkpoint_every, progress=False)
    return qmml.Simulation(lj, integrator, reporters=reporters, temperature_K=TEMPERATURE_K, seed=6,
                           checkpoint=folder / "checkpoint.npz", checkpoint_every=checkpoint_every, progress=False)


def test_restart_reproduces_the_npt_run_bit_for_bit(tmp_path):
    whole = npt_simulation(tmp_path / "whole").run(30)
    npt_simulation(tmp_path / "split").run(16)
    split = npt_simulation(tmp_path / "split", restart=True).run(14)
    assert split.state.step == 30
    for name in ("positions", "velocities", "cell", "stress"):
        assert np.array_equal(getattr(whole.state, name), getattr(split.state, name)), name
    assert whole.state.barostat_heat_eV == split.state.barostat_heat_eV
    assert whole.state.barostat_rng_state == split.state.barostat_rng_state
    assert not np.array_equal(whole.state.cell, argon_fcc(RHO_STAR).cell)  # the box did move
    text = {r: (tmp_path / r / "thermo.csv").read_text().splitlines() for r in ("whole", "split")}
    assert text["whole"][0].split(",")[10:] == ["volume_A3", "density_g_per_cm3", "pressure_bar", "a_A", "b_A",
                                                "c_A", "alpha_deg", "beta_deg", "gamma_deg"]
    a, b = ([row.split(",")[:9] + row.split(",")[10:] for row in text[r]] for r in ("whole", "split"))  # no wall_s
    assert a == b and len(a) == 32
    log = read_thermo(tmp_path / "whole" / "thermo.csv")
    assert np.ptp(log["volume_A3"]) > 0 and abs(log["density_g_per_cm3"][0] - 108 * 39.948 / log["volume_A3"][0]
                                                   * units.AMU_KG * 1e27) < 1e-9
    xyz = [(tmp_path / r / "traj.extxyz").read_text() for r in ("whole", "split")]
    assert xyz[0] == xyz[1]
    lattices = [line.split('"')[1] for line in xyz[0].splitlines() if line.startswith("Lattice=")]
    assert len(lattices) == 11 and len(set(lattices)) == 11  # every frame has its own box
    import MDAnalysis as mda

    frames = []
    for r in ("whole", "split"):
        reader = mda.coordinates.DCD.DCDReader(str(tmp_path / r / "traj.dcd"))
        frames.append(np.array([np.concatenate([ts.positions.ravel(), ts.dimensions]) for ts in reader]))
    assert frames[0].shape == (11, 108 * 3 + 6) and np.array_equal(frames[0], frames[1])
    last = mda.coordinates.DCD.DCDReader(str(tmp_path / "whole" / "traj.dcd"))[-1]
    assert np.allclose(last.dimensions[:3], np.linalg.norm(whole.state.cell, axis=1), rtol=1e-6)


def test_checkpoints_without_a_cell_still_load(tmp_path):
    state = MDState(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), 0.0, step=3)
    write_checkpoint(tmp_path / "old.npz", state, integrator_name="langevin")
    read, _ = read_checkpoint(tmp_path / "old.npz")
    assert read.cell is None and read.stress is None and read.barostat_heat_eV == 0.0 and read.step == 3


def test_a_barostat_needs_a_periodic_potential_with_stress():
    def npt():
        return qmml.Langevin(10.0, 100.0, barostat=StochasticCellRescaling())

    class Open(qmml.Potential):  # a potential without a box, which is never given a cell
        system = qmml.System.from_arrays(["Ar", "Ar"], [[0, 0, 0], [3.8, 0, 0]])

        def compute(self, positions, *, forces=True, cell=None):
            assert cell is None
            return LJResult(0.0, np.zeros((2, 3)), None)

    class NoStress(LennardJonesArgon):
        def compute(self, positions, *, forces=True, cell=None):
            result = super().compute(positions, forces=forces, cell=cell)
            return LJResult(result.energy, result.forces, None)

    with pytest.raises(InputError, match="periodic system"):
        qmml.Simulation(Open(), npt(), progress=False)
    with pytest.raises(InputError, match="gives no stress"):
        qmml.Simulation(NoStress(argon_fcc(RHO_STAR)), npt(), progress=False)
    with pytest.raises(InputError, match="positive temperature"):
        qmml.Langevin(10.0, 0.0, barostat=StochasticCellRescaling())
    with pytest.raises(InputError, match="compressibility_per_bar"):
        StochasticCellRescaling(compressibility_per_bar=-1.0)
    with pytest.raises(InputError, match="isotropic"):
        StochasticCellRescaling(mode="semiisotropic")
    # and a non-periodic potential keeps working without a barostat: it is never given a cell
    assert qmml.Simulation(Open(), qmml.Langevin(10.0, 100.0), progress=False).run(2).state.cell is None


def test_npt_runs_the_ml_water_model_in_its_box():
    # the plumbing with a real periodic potential: MLPotential.compute(cell=) and its stress
    from conftest import DATA

    from qmml.ml import Dataset

    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    system = frame.to_system("WAT")
    potential = qmml.MLPotential(qmml.load_model("water"), system)
    integrator = qmml.Langevin(0.5, 300.0, friction_per_ps=5.0, seed=3,
                               barostat=StochasticCellRescaling(1.0, 4.5e-5, 1000.0))
    sim = qmml.Simulation(potential, integrator, temperature_K=300.0, seed=3, progress=False)
    start = integrator.conserved_energy(sim.state, sim.masses)
    sim.run(20)
    volume, density, pressure = integrator.thermo_values(sim.state, sim.masses)[:3]
    print(f"NPT ML water (16 molecules), 10 fs: volume {abs(np.linalg.det(system.cell)):.1f} -> {volume:.1f} Å^3, "
          f"{density:.3f} g/cm3, instantaneous pressure {pressure:.0f} bar, effective energy change "
          f"{integrator.conserved_energy(sim.state, sim.masses) - start:+.4f} eV")
    assert volume != pytest.approx(abs(np.linalg.det(system.cell)), rel=1e-9) and 0.5 < density < 1.5
    assert abs(integrator.conserved_energy(sim.state, sim.masses) - start) < 0.05
