"""Analysis functions on constructed trajectories with known answers."""

import importlib.util

import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysis.coordinates.memory import MemoryReader

from qmml import units
from qmml.analysis import (diffusion_coefficient, energy_drift, green_kubo_conductivity, mean_squared_displacement,
                           radial_distribution)
from qmml.analysis.plots import plot_conductivity, plot_msd, plot_rdf
from qmml.errors import InputError


def universe(frames, box=None, dt_fs=1.0):
    u = mda.Universe.empty(frames.shape[1], trajectory=True, atom_resindex=np.arange(frames.shape[1]),
                           n_residues=frames.shape[1])
    dims = None if box is None else np.tile([box, box, box, 90.0, 90.0, 90.0], (len(frames), 1))
    u.load_new(frames.astype(np.float32), format=MemoryReader, dt=dt_fs / units.FS_PER_PS, dimensions=dims)
    return u


def test_random_walk_gives_its_diffusion_coefficient():
    rng = np.random.default_rng(0)
    d_true, dt = 0.05, 2.0  # Å^2/fs, fs
    steps = rng.normal(scale=np.sqrt(2 * d_true * dt), size=(400, 300, 3))
    u = universe(np.cumsum(steps, axis=0), dt_fs=dt)
    lag, msd = mean_squared_displacement(u)
    np.testing.assert_allclose(lag[:3], [0.0, 2.0, 4.0])
    d = diffusion_coefficient(lag, msd, fit_from_fs=20, fit_to_fs=200)
    assert d.A2_per_fs == pytest.approx(d_true, rel=0.05)
    assert d.cm2_per_s == pytest.approx(d.A2_per_fs * 0.1)
    plot_msd(lag, msd, d, fit_from_fs=20)
    with pytest.raises(InputError, match="fit window"):
        diffusion_coefficient(lag, msd, fit_from_fs=5000, fit_to_fs=6000)
    if importlib.util.find_spec("tidynamics") is not None:  # the FFT path (analysis extra) agrees
        np.testing.assert_allclose(mean_squared_displacement(u, fft=True)[1], mean_squared_displacement(u, fft=False)[1],
                                   rtol=1e-4, atol=1e-8)


def test_ideal_gas_rdf_is_one():
    rng = np.random.default_rng(1)
    u = universe(rng.uniform(0, 20.0, size=(4, 3000, 3)), box=20.0)
    r, g = radial_distribution(u, "all", r_max_A=8.0, n_bins=16)
    middle = (r > 2.0) & (r < 8.0)
    assert np.all(np.abs(g[middle] - 1.0) < 0.1), g[middle]
    plot_rdf(r, g, label="ideal gas")
    with pytest.raises(InputError, match="matches no atoms"):
        radial_distribution(u, "index 99999")


def test_green_kubo_recovers_a_known_current_autocorrelation():
    """An Ornstein-Uhlenbeck current with <J_x(0) J_x(t)> = s^2 exp(-t/tau): sigma = s^2 tau / (V k_B T)."""
    rng = np.random.default_rng(2)
    s, tau, dt, n = 0.3, 20.0, 1.0, 200_000  # e Å/fs, fs, fs, frames
    a = np.exp(-dt / tau)
    kicks = rng.normal(scale=s * np.sqrt(1 - a * a), size=(n, 3))
    current = np.empty((n, 3))
    current[0] = rng.normal(scale=s, size=3)
    for i in range(1, n):
        current[i] = a * current[i - 1] + kicks[i]
    volume, temperature = 1.0e4, 300.0
    result = green_kubo_conductivity(current, timestep_fs=dt, volume_A3=volume, temperature_K=temperature,
                                     max_lag=int(10 * tau))
    assert result.acf[0] == pytest.approx(3 * s * s, rel=0.02)
    expected = s * s * tau / (volume * units.BOLTZMANN_EV_PER_K * temperature) * units.CONDUCTIVITY_S_PER_M
    assert result.S_per_m == pytest.approx(expected, rel=0.1)
    plot_conductivity(result)


def test_energy_drift_from_arrays_and_thermo_csv(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(0, 2000.0, 0.5)  # fs
    e = -100.0 + 0.02 * t / 1000.0 + rng.normal(scale=1e-3, size=len(t))  # 0.02 eV/ps
    drift = energy_drift(t, e, n_atoms=100)
    assert drift.eV_per_ps == pytest.approx(0.02, rel=0.05)
    assert drift.hartree_per_ps_per_atom == pytest.approx(0.02 / 100 / units.HARTREE_EV, rel=0.05)
    assert drift.fluctuation_eV == pytest.approx(1e-3, rel=0.1)
    csv = tmp_path / "thermo.csv"
    np.savetxt(csv, np.c_[t, e], delimiter=",", header="time_fs,conserved_eV", comments="")
    assert energy_drift(thermo=csv, n_atoms=100) == drift
    with pytest.raises(InputError, match="no such thermo file"):
        energy_drift(thermo=tmp_path / "missing.csv", n_atoms=1)


def test_hydrogen_bonds_follow_geometry_and_charges():
    """A water dimer: linear O-H...O at 2.9 Å (one bond), pulled apart (none), bent to 100 degrees (none)."""
    from qmml.analysis import hydrogen_bonds

    def dimer(separation, bend_deg):
        donor = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])  # O, H (pointing +x), H
        b = np.radians(bend_deg)
        acceptor_o = donor[0] + separation * np.array([np.cos(np.pi - b), np.sin(np.pi - b), 0.0]) \
            if bend_deg != 180 else np.array([separation, 0.0, 0.0])
        acceptor = acceptor_o + np.array([[0.0, 0.0, 0.0], [0.3, 0.9, 0.0], [0.3, -0.9, 0.0]])
        return np.vstack([donor, acceptor])

    frames = np.stack([dimer(2.9, 180), dimer(5.0, 180), dimer(2.9, 100)])
    u = universe(frames, box=30.0)
    u.add_TopologyAttr("masses", [16.0, 1.008, 1.008] * 2)
    tip3p = [-0.834, 0.417, 0.417] * 2
    result = hydrogen_bonds(u, charges=tip3p)
    np.testing.assert_array_equal(result.count_by_frame, [1, 0, 0])
    assert result.table[0, 1:4].astype(int).tolist() == [0, 1, 3]
    assert result.table[0, 4] == pytest.approx(2.9, abs=1e-3)
    # the same geometry with the charges of a non-polar molecule has no donors or acceptors
    assert hydrogen_bonds(u, charges=[-0.1, 0.05, 0.05] * 2).count_by_frame.sum() == 0
    bare = universe(frames, box=30.0)
    with pytest.raises(InputError, match="charges"):
        hydrogen_bonds(bare)
    explicit = hydrogen_bonds(bare, donors="index 0", hydrogens="index 1 2", acceptors="index 3")
    np.testing.assert_array_equal(explicit.count_by_frame, [1, 0, 0])


def test_umbrella_sampling_recovers_a_known_double_well():
    """Exact samples of each biased window of U(s) = 0.25 eV (s^2 - 1)^2 (s in Å): MBAR gives U back."""
    pytest.importorskip("pymbar")
    from qmml.analysis import umbrella_free_energy

    rng = np.random.default_rng(7)
    kT = units.BOLTZMANN_EV_PER_K * 300.0
    grid = np.linspace(-2.2, 2.2, 20001)
    well = 0.25 * (grid**2 - 1.0) ** 2
    centres, k = np.linspace(-1.6, 1.6, 17), 2.0
    samples = []
    for c in centres:
        p = np.exp(-(well + 0.5 * k * (grid - c) ** 2 - (well + 0.5 * k * (grid - c) ** 2).min()) / kT)
        cdf = np.cumsum(p) / p.sum()
        samples.append(np.interp(rng.uniform(size=3000), cdf, grid))
    edges = np.linspace(-1.5, 1.5, 31)
    profile = umbrella_free_energy(samples, centres, k, temperature_K=300.0, bins=edges)
    # a histogram estimates -kT ln of the Boltzmann factor averaged over each bin
    exact = np.array([-kT * np.log(np.mean(np.exp(-0.25 * (np.linspace(a, b, 201) ** 2 - 1.0) ** 2 / kT)))
                      for a, b in zip(edges[:-1], edges[1:])])
    exact -= exact.min()
    np.testing.assert_allclose(profile.free_energy_eV, exact, atol=0.01)  # the barrier is 0.25 eV
    assert np.all(profile.uncertainty_eV < 0.01) and np.all(profile.samples_per_bin > 0)
    # a wrong temperature gives a visibly wrong profile: the check can fail
    wrong = umbrella_free_energy(samples, centres, k, temperature_K=600.0, bins=edges)
    assert np.abs(wrong.free_energy_eV - exact).max() > 0.05
    from qmml.analysis.plots import plot_free_energy

    plot_free_energy(profile)
    with pytest.raises(InputError, match="2 windows of samples but 3 centres"):
        umbrella_free_energy(samples[:2], centres[:3], k, temperature_K=300.0)
