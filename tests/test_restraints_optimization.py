"""Restraints, collective variables, geometry optimization and the gas-phase QM potential."""

import numpy as np
import pytest

import qmml
from qmml.sampling.colvars import Distance, DistanceDifference
from qmml.errors import InputError


def test_restrained_forces_match_finite_differences():
    from conftest import central_difference_forces, water_cluster

    system = water_cluster(6)
    potential = qmml.MLPotential(qmml.load_model("water"), system)
    restraints = [qmml.HarmonicRestraint(DistanceDifference((0, 1), (0, 3)), centre=-2.0, force_constant=3.0),
                  qmml.HarmonicRestraint(Distance(0, 6), centre=2.5, force_constant=5.0)]
    restrained = qmml.Restrained(potential, restraints)
    x = system.positions
    result = restrained.compute(x)
    fd = central_difference_forces(restrained, x, step_A=1e-4)
    np.testing.assert_allclose(result.forces, fd, atol=1e-5)
    # the restraints pull hard enough that a sign error would show
    bias_only = result.forces - potential.compute(x).forces
    assert np.abs(bias_only).max() > 1.0
    s = [r.variable.value(x) for r in restraints]
    expected = 0.5 * 3.0 * (s[0] + 2.0) ** 2 + 0.5 * 5.0 * (s[1] - 2.5) ** 2
    assert result.energy - potential.compute(x).energy == pytest.approx(expected, rel=1e-10)


def test_optimized_water_matches_published_hf_sto3g_geometry():
    """HF/STO-3G water: r(OH) = 0.989 Å, HOH = 100.0° (Szabo & Ostlund, Table 3.13)."""
    water = qmml.System.from_arrays(["O", "H", "H"], [[0, 0, 0], [1.05, 0, 0], [-0.25, 0.92, 0.05]])
    potential = qmml.QMPotential(qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-10), water)
    opt = qmml.optimize(potential, fmax=1e-3, progress=False)
    assert opt.converged and opt.max_force < 1e-3
    x = opt.positions
    r1, r2 = np.linalg.norm(x[1] - x[0]), np.linalg.norm(x[2] - x[0])
    angle = np.degrees(np.arccos(np.dot(x[1] - x[0], x[2] - x[0]) / (r1 * r2)))
    assert r1 == pytest.approx(0.989, abs=1e-3) and r2 == pytest.approx(0.989, abs=1e-3)
    assert angle == pytest.approx(100.0, abs=0.1)
    assert opt.energies[-1] < opt.energies[0] and opt.energy == pytest.approx(opt.energies[-1])
    # the reported forces are those at the returned positions
    np.testing.assert_allclose(opt.forces, potential.compute(x).forces, atol=5e-5)  # SCF tolerance


def test_an_optimization_stopped_midway_continues_from_its_last_step():
    """The callback sees every accepted step (its positions and result); starting again from the last
    geometry it was given (as a campaign does after a crash) reaches the same minimum."""
    water = qmml.System.from_arrays(["O", "H", "H"], [[0, 0, 0], [1.05, 0, 0], [-0.25, 0.92, 0.05]])
    potential = qmml.QMPotential(qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-10), water)
    seen = []
    interrupted = qmml.optimize(potential, fmax=1e-3, max_steps=3, progress=False,
                                callback=lambda step, x, result: seen.append((step, x.copy(), result.energy)))
    assert [step for step, _, _ in seen] == [1, 2, 3] and not interrupted.converged
    np.testing.assert_array_equal(seen[-1][1], interrupted.positions)
    assert seen[-1][2] == interrupted.energy == pytest.approx(potential.compute(seen[-1][1]).energy, abs=1e-8)
    resumed = qmml.optimize(potential, seen[-1][1], fmax=1e-3, progress=False)
    direct = qmml.optimize(potential, fmax=1e-3, progress=False)
    assert resumed.converged and resumed.energy == pytest.approx(direct.energy, abs=1e-6)


def test_optimization_keeps_fixed_atoms_and_a_restraint_holds_the_coordinate():
    h2 = qmml.System.from_arrays(["H", "H"], [[0, 0, 0], [0.8, 0.1, 0]])
    stiff = qmml.HarmonicRestraint(Distance(0, 1), centre=1.0, force_constant=50.0)
    potential = qmml.Restrained(qmml.QMPotential(qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-10), h2), [stiff])
    opt = qmml.optimize(potential, fmax=1e-3, fixed=[0], progress=False)
    assert opt.converged
    np.testing.assert_array_equal(opt.positions[0], h2.positions[0])
    r = np.linalg.norm(opt.positions[1] - opt.positions[0])
    # the bond pulls back towards 0.712 Å (HF/STO-3G): at the optimum dE/dr = k (1.0 Å - r)
    gas = potential.potential
    unit = (opt.positions[1] - opt.positions[0]) / r
    h = 1e-4
    de_dr = (gas.compute(opt.positions + [[0, 0, 0], h * unit], forces=False).energy
             - gas.compute(opt.positions - [[0, 0, 0], h * unit], forces=False).energy) / (2 * h)
    assert 0.712 < r < 1.0
    assert de_dr == pytest.approx(50.0 * (1.0 - r), rel=2e-3)
    with pytest.raises(InputError, match="every atom is fixed"):
        qmml.optimize(potential, fixed=[0, 1], progress=False)


def test_collective_variable_log_records_what_the_trajectory_shows(tmp_path):
    from conftest import water_cluster

    system = water_cluster(6)
    cv = DistanceDifference((0, 1), (0, 3), name="xi")
    restraint = qmml.HarmonicRestraint(cv, centre=-2.2, force_constant=2.0)
    potential = qmml.Restrained(qmml.MLPotential(qmml.load_model("water"), system), [restraint])
    sim = qmml.Simulation(potential, qmml.Langevin(timestep_fs=0.5, temperature_K=300, friction_per_ps=5, seed=3),
                          reporters=[qmml.CollectiveVariableLog(tmp_path / "cv.csv", [cv], every=2)],
                          temperature_K=300, seed=1, progress=False)
    sim.run(6)
    table = np.genfromtxt(tmp_path / "cv.csv", delimiter=",", names=True)
    assert list(table["step"]) == [0, 2, 4, 6]
    assert table["xi_A"][-1] == pytest.approx(cv.value(sim.state.positions), abs=1e-7)
    np.testing.assert_allclose(table["restraint_eV"], restraint.energy(table["xi_A"]), atol=1e-7)
    with pytest.raises(InputError, match="already exists"):
        qmml.CollectiveVariableLog(tmp_path / "cv.csv", [cv]).start(sim)


def test_bad_restraints_and_variables_are_refused():
    with pytest.raises(InputError, match="two different atoms"):
        Distance(2, 2)
    with pytest.raises(InputError, match="positive number in eV/Å²"):
        qmml.HarmonicRestraint(Distance(0, 1), centre=1.0, force_constant=-1.0)
    with pytest.raises(InputError, match="only 2 atoms"):
        Distance(0, 5).value(np.zeros((2, 3)))


def test_partition_picture_has_link_atoms_and_charges():
    from qmml.visualize import partition_pdb

    system = qmml.load_system("data/structures/butanol_water.psf", "data/structures/butanol_water.pdb")
    part = qmml.partition(system, "resname BUOH and name C3 C4 O1 H31 H32 H41 H42 HO1", charge=0, boundary="rcd")
    lines = [line for line in partition_pdb(part).splitlines() if line.startswith("HETATM")]
    assert len(lines) == system.n_atoms + len(part.links)
    chains = np.array([line[21] for line in lines])
    assert (chains == "Q").sum() == len(part.qm_atoms) and (chains == "L").sum() == len(part.links) == 1
    link_xyz = np.array([[float(line[30:38]), float(line[38:46]), float(line[46:54])]
                         for line in lines if line[21] == "L"])
    np.testing.assert_allclose(link_xyz, part.qm_positions(system.positions)[len(part.qm_atoms):], atol=1e-3)
    charges = np.array([float(line[60:66]) for line in lines[:system.n_atoms]])
    np.testing.assert_allclose(charges[part.env_atoms], system.charges[part.env_atoms], atol=6e-3)
    assert np.all(charges[part.qm_atoms] == 0)
    pytest.importorskip("py3Dmol")
    from qmml.visualize import view_partition

    view_partition(part)
