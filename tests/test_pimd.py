"""Path-integral MD: quantum kinetic energies of harmonic oscillators against the exact values, the
classical limit, ring-polymer contraction, restarts, and a contracted run of the ML water model."""

import numpy as np
import pytest

import qmml
from qmml import units
from qmml.errors import InputError
from qmml.md import read_thermo
from qmml.md.pimd import contraction_matrix, normal_modes

from conftest import water_cluster

KT_300 = units.BOLTZMANN_EV_PER_K * 300.0


class Oscillators(qmml.Potential):
    """Independent 3D oscillators about the system's positions: V = sum_i k_i |x_i - x0_i|^2 / 2
    + c_i |x_i - x0_i|^4 - f . (x_i - x0_i) (k in eV/Å^2, c in eV/Å^4, uniform force f in eV/Å)."""

    def __init__(self, system, k, quartic=0.0, field=(0.0, 0.0, 0.0)):
        self.system = system
        self.k = np.broadcast_to(np.asarray(k, float), (system.n_atoms,))[:, None]
        self.c = np.broadcast_to(np.asarray(quartic, float), (system.n_atoms,))[:, None]
        self.field = np.broadcast_to(np.asarray(field, float), (system.n_atoms, 3))

    def compute(self, positions, *, forces=True, cell=None):
        d = positions - self.system.positions
        r2 = np.einsum("ia,ia->i", d, d)[:, None]
        curvature = self.k + 4.0 * self.c * r2
        energy = float(np.einsum("ia,ia->", 0.5 * self.k + self.c * r2, r2) - np.einsum("ia,ia->", self.field, d))
        return qmml.PotentialResult(energy=energy, forces=self.field - curvature * d)


def hydrogens(n):
    x = np.zeros((n, 3))
    x[:, 0] = 3.0 * np.arange(n)
    return qmml.System.from_arrays(["H"] * n, x)


def omega_per_fs(wavenumber):
    return wavenumber * units.INVERSE_CM_EV / units.HBAR_EV_FS


def exact_kinetic(wavenumber):
    """(hbar w / 4) coth(beta hbar w / 2): quantum kinetic energy per degree of freedom, eV."""
    hw = wavenumber * units.INVERSE_CM_EV
    return hw / 4.0 / np.tanh(hw / (2.0 * KT_300))


def ring_polymer_kinetic(omega_modes_sq, n_beads):
    """Exact P-bead value for harmonic curvatures ``omega_modes_sq`` (1/fs^2) acting on each normal mode."""
    harmonic = normal_modes(n_beads)[1]
    omega_k = 2.0 * n_beads * KT_300 / units.HBAR_EV_FS * np.sin(np.pi * harmonic / n_beads)
    return KT_300 / 2.0 * (1.0 + np.sum(omega_modes_sq[1:] / (omega_modes_sq[1:] + omega_k[1:] ** 2)))


def sample_kinetic(potential, integrator, steps, skip):
    """Mean centroid-virial and primitive kinetic energies per degree of freedom of every atom, eV, and
    the final simulation."""
    sim = qmml.Simulation(potential, integrator, temperature_K=300, seed=2, progress=False)
    total = np.zeros((2, potential.system.n_atoms))
    for n in range(steps):
        sim.state = integrator.step(potential, sim.state, sim.masses)
        if n >= skip:
            total += [integrator.kinetic_energy_per_atom(sim.state, sim.masses, e) for e in ("virial", "primitive")]
    return total / (3 * (steps - skip)), sim


def test_centroid_virial_kinetic_energy_of_oscillators_is_quantum():
    # 3 x 64 independent 3D oscillators at 1000, 1600 (deuterium) and 3700 cm^-1, 64 beads: the P-bead
    # value is within 1% of exact for 3700 cm^-1, and 0.25 ps give means to 0.4% (1 sigma over seeds 0-5)
    wavenumbers, per = (1000.0, 1600.0, 3700.0), 64
    system = qmml.with_isotopes(hydrogens(3 * per), {i: "D" for i in range(per, 2 * per)})
    omega = np.repeat([omega_per_fs(w) for w in wavenumbers], per)
    potential = Oscillators(system, system.masses * units.AMU_A2_PER_FS2_EV * omega ** 2)
    integrator = qmml.PathIntegralLangevin(0.25, 300.0, 64, centroid_friction_per_ps=10.0, seed=4)
    (kinetic, primitive), sim = sample_kinetic(potential, integrator, 1200, 200)
    for g, wavenumber in enumerate(wavenumbers):
        measured, exact = kinetic[g * per:(g + 1) * per].mean(), exact_kinetic(wavenumber)
        finite = ring_polymer_kinetic(np.full(64, omega[g * per] ** 2), 64)
        print(f"{wavenumber:.0f} cm^-1: centroid-virial {1e3 * measured:.2f} meV, primitive "
              f"{1e3 * primitive[g * per:(g + 1) * per].mean():.2f}, exact {1e3 * exact:.2f}, "
              f"64 beads {1e3 * finite:.2f}, classical {1e3 * KT_300 / 2:.2f}")
        assert abs(measured / exact - 1) < 0.02
        assert abs(measured / finite - 1) < 0.015
        assert abs(KT_300 / 2 / exact - 1) > 0.2  # the classical value fails by far
        assert abs(primitive[g * per:(g + 1) * per].mean() / exact - 1) < 0.1  # its variance grows with P
    assert sim.temperature() == pytest.approx(300.0, rel=0.15)  # the centroid is classical


def test_one_bead_is_classical_langevin():
    # anharmonic, so a difference in any sub-step would show; the same seeds give the same random numbers
    system = hydrogens(10)
    potential = Oscillators(system, 5.0, quartic=2.0)
    runs = [qmml.Simulation(potential, integrator, temperature_K=300, seed=1, progress=False).run(200)
            for integrator in (qmml.Langevin(0.5, 300.0, friction_per_ps=5.0, seed=3),
                               qmml.PathIntegralLangevin(0.5, 300.0, 1, centroid_friction_per_ps=5.0, seed=3))]
    classical, pimd = (sim.state for sim in runs)
    assert np.array_equal(classical.positions, pimd.positions)
    assert np.array_equal(classical.velocities, pimd.velocities)
    assert classical.potential_energy == pimd.potential_energy and classical.heat_eV == pimd.heat_eV
    assert runs[1].integrator.conserved_energy(pimd, runs[1].masses) == \
        pytest.approx(classical.potential_energy + runs[0].kinetic_energy() + classical.heat_eV, abs=1e-12)
    # and a one-bead path integral has no quantum kinetic energy beyond the classical 3 kT / 2 per atom
    assert np.allclose(runs[1].integrator.kinetic_energy_per_atom(pimd, runs[1].masses), 1.5 * KT_300)


def test_contraction_matrix_keeps_the_lowest_normal_modes():
    t = contraction_matrix(12, 12)
    assert np.abs(t - np.eye(12)).max() < 1e-14
    assert np.allclose(contraction_matrix(8, 1), 1.0 / 8)  # the centroid
    for p, pc in ((8, 4), (9, 4), (8, 3), (16, 6)):
        t = contraction_matrix(p, pc)
        assert np.allclose(t @ t.T, pc / p * np.eye(pc))
        # a smooth ring (the lowest Fourier components) is sampled exactly at the contracted beads
        tau = np.arange(p) / p
        ring = 1.0 + np.cos(2 * np.pi * tau) - 0.5 * np.sin(2 * np.pi * tau)
        tau_c = np.arange(pc) / pc
        assert np.allclose(t @ ring, 1.0 + np.cos(2 * np.pi * tau_c) - 0.5 * np.sin(2 * np.pi * tau_c))
    with pytest.raises(InputError, match="contracted_beads"):
        qmml.PathIntegralLangevin(0.5, 300.0, 4, contracted_beads=5)


def test_full_contraction_is_no_contraction():
    system = hydrogens(6)
    full, cheap = Oscillators(system, 8.0, quartic=3.0), Oscillators(system, 4.0)
    runs = [qmml.Simulation(full, qmml.PathIntegralLangevin(0.5, 300.0, 8, seed=5, **options), temperature_K=300,
                            seed=1, progress=False).run(100).state
            for options in ({}, {"cheap": cheap, "contracted_beads": 8})]
    assert np.abs(runs[0].extra["bead_positions"] - runs[1].extra["bead_positions"]).max() < 1e-10


def test_one_contracted_bead_puts_the_correction_on_the_centroid():
    system = hydrogens(4)
    full, cheap = Oscillators(system, 8.0, quartic=30.0), Oscillators(system, 8.0)
    integrator = qmml.PathIntegralLangevin(0.5, 300.0, 8, seed=2, cheap=cheap, contracted_beads=1)
    state = qmml.Simulation(full, integrator, temperature_K=300, seed=1, progress=False).run(30).state
    beads, centroid = state.extra["bead_positions"], state.positions
    assert np.ptp(beads, axis=0).max() > 0.05  # a spread-out ring, where bead and centroid forces differ
    quartic = full.compute(centroid).forces - cheap.compute(centroid).forces
    expected = np.array([cheap.compute(x).forces for x in beads]) + quartic
    assert np.abs(state.extra["bead_forces"] - expected).max() < 1e-12


def test_contracted_oscillators_have_the_contracted_quantum_kinetic_energy():
    # cheap: 1400 cm^-1 on 32 beads; full: 1600 cm^-1 on 2 contracted beads.  The difference acts on
    # the modes that survive contraction, so the kinetic energy is the analytic value for that mix,
    # far from both uncontracted values.  With cheap = full + a uniform field (a smooth difference, as
    # contraction intends) the contracted run has the full quantum kinetic energy.
    per, p, pc = 24, 32, 2
    system = hydrogens(2 * per)
    w_full, w_cheap = omega_per_fs(1600.0), omega_per_fs(1400.0)
    k = system.masses * units.AMU_A2_PER_FS2_EV
    field = np.zeros((2 * per, 3))
    field[per:] = [0.3, -0.2, 0.1]
    full = Oscillators(system, k * w_full ** 2, field=field)
    cheap = Oscillators(system, k * np.r_[np.full(per, w_cheap ** 2), np.full(per, w_full ** 2)])
    integrator = qmml.PathIntegralLangevin(0.5, 300.0, p, centroid_friction_per_ps=10.0, seed=6, cheap=cheap,
                                           contracted_beads=pc)
    kinetic = sample_kinetic(full, integrator, 1000, 100)[0][0]
    harmonic, sine = normal_modes(p)[1:]
    kept = (harmonic < pc / 2) | ((harmonic == pc / 2) & ~sine)
    expected = ring_polymer_kinetic(np.where(kept, w_full ** 2, w_cheap ** 2), p)
    mixed, smooth = kinetic[:per].mean(), kinetic[per:].mean()
    print(f"contracted 32 -> 2 beads: {1e3 * mixed:.2f} meV (analytic {1e3 * expected:.2f}; uncontracted "
          f"{1e3 * ring_polymer_kinetic(np.full(p, w_full ** 2), p):.2f}), with a uniform field "
          f"{1e3 * smooth:.2f} meV (exact {1e3 * exact_kinetic(1600.0):.2f})")
    assert abs(mixed / expected - 1) < 0.01
    assert abs(ring_polymer_kinetic(np.full(p, w_full ** 2), p) / expected - 1) > 0.05
    assert abs(smooth / exact_kinetic(1600.0) - 1) < 0.02


def test_restart_continues_the_ring_polymer_bit_for_bit(tmp_path):
    system = hydrogens(5)
    full, cheap = Oscillators(system, 8.0, quartic=3.0), Oscillators(system, 6.0)

    def simulation(name, restart=False):
        integrator = qmml.PathIntegralLangevin(0.5, 300.0, 6, seed=9, cheap=cheap, contracted_beads=3)
        reporters = [qmml.ThermoLog(tmp_path / name / "thermo.csv", plot=False)]
        if restart:
            return qmml.Simulation.restart(tmp_path / name / "c.npz", full, integrator, reporters=reporters,
                                           checkpoint_every=4, progress=False)
        return qmml.Simulation(full, integrator, reporters=reporters, temperature_K=300, seed=1,
                               checkpoint=tmp_path / name / "c.npz", checkpoint_every=4, progress=False)

    whole = simulation("whole").run(20)
    simulation("split").run(10)
    split = simulation("split", restart=True).run(10)
    for key in ("bead_positions", "bead_velocities", "bead_forces"):
        assert np.array_equal(whole.state.extra[key], split.state.extra[key])
    assert whole.state.rng_state == split.state.rng_state and whole.state.heat_eV == split.state.heat_eV
    logs = [read_thermo(tmp_path / name / "thermo.csv") for name in ("whole", "split")]
    assert {"kinetic_primitive_eV", "kinetic_virial_eV"} <= set(logs[0]) and len(logs[0]["step"]) == 21
    for column in logs[0]:
        if column != "wall_s":
            assert np.array_equal(logs[0][column], logs[1][column]), column
    with pytest.raises(InputError, match="n_beads"):
        qmml.Simulation.restart(tmp_path / "split" / "c.npz", full, qmml.PathIntegralLangevin(0.5, 300.0, 4))


def test_contracted_ml_water_conserves_the_ring_polymer_energy(tmp_path):
    # 6 ML waters, one of them D2O; all 5 committee members on 2 contracted beads, member 0 on all 4.
    # After thermalizing, the thermostat-free ring polymer conserves H_P with an error that falls as
    # h^2, which holds only if the contracted forces are the exact gradient of the contracted energy.
    system = water_cluster(6)
    model = qmml.load_model("water")
    heavy = [i for i in range(3) if system.elements[i] == "H"]
    full = qmml.with_isotopes(qmml.MLPotential(model, system), {i: "D" for i in heavy})
    cheap = qmml.MLPotential(model, system, members=[0])
    assert list(full.system.elements) == list(system.elements)
    assert np.allclose(full.system.masses[heavy], 2.01410177812)

    def integrator(h_fs, thermostat):
        return qmml.PathIntegralLangevin(h_fs, 300.0, 4, centroid_friction_per_ps=20.0 * thermostat,
                                         pile_lambda=float(thermostat), seed=3, cheap=cheap, contracted_beads=2)

    sim = qmml.Simulation(full, integrator(0.5, True), reporters=[qmml.ThermoLog(tmp_path / "t.csv", plot=False)],
                          temperature_K=300, seed=2, progress=False).run(20)
    log = read_thermo(tmp_path / "t.csv")
    assert np.all(log["kinetic_virial_eV"] > 0) and np.isfinite(log["conserved_eV"]).all()
    spreads = []
    for h_fs, n_steps in ((0.25, 20), (0.125, 40)):
        nve, state, conserved = integrator(h_fs, False), sim.state, []
        for _ in range(n_steps):
            state = nve.step(full, state, sim.masses)
            conserved.append(nve.conserved_energy(state, sim.masses))
        spreads.append(np.std(conserved))
    print(f"contracted ML water, 5 fs: conserved-energy spread {spreads[0]:.2e} eV (0.25 fs), "
          f"{spreads[1]:.2e} eV (0.125 fs)")
    assert spreads[0] < 2e-3 and 3.0 < spreads[0] / spreads[1] < 5.5


def test_qm_region_on_one_contracted_bead_while_the_ml_environment_runs_on_all():
    """The issue's contraction: HF on the centroid only, the ML reference (`qmml.MLReference`) on every
    bead; the QM region is evaluated once per step and the ring polymer still conserves H_P."""
    system = water_cluster(6)
    model = qmml.load_model("water")
    part = qmml.partition(system, [0, 1, 2], charge=0)
    hamiltonian = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11), model)
    calls = []

    class Counted(qmml.PotentialWrapper):  # counts the expensive evaluations; everything else is the Hamiltonian
        def compute(self, positions, **options):
            calls.append(1)
            return super().compute(positions, **options)

    integrator = qmml.PathIntegralLangevin(0.25, 300.0, 4, centroid_friction_per_ps=0.0, pile_lambda=0.0, seed=1,
                                           cheap=qmml.MLReference(hamiltonian), contracted_beads=1)
    sim = qmml.Simulation(Counted(hamiltonian), integrator, temperature_K=300, seed=4, progress=False)
    calls.clear()
    conserved, potential = [], []
    for _ in range(12):
        sim.run(1)
        conserved.append(integrator.conserved_energy(sim.state, sim.masses))
        potential.append(sim.state.potential_energy)
    assert len(calls) == 12  # one QM/ML evaluation per step, on the centroid
    print(f"QM on the centroid: H_P spread {np.ptp(conserved):.2e} eV, potential spread {np.ptp(potential):.2e} eV")
    assert np.ptp(conserved) < 0.05 * np.ptp(potential)


def liquid_water_box() -> qmml.System:
    """The 16-water periodic liquid box of the shipped test set."""
    from qmml.ml import Dataset

    from conftest import DATA

    frame = next(f for f in Dataset.load(DATA / "datasets" / "water_test.npz") if f.cell is not None)
    return frame.to_system("WAT")


@pytest.mark.parametrize("name", ["water", "organic_condensed_al3"])
def test_all_beads_of_an_ml_potential_in_one_model_call(name):
    """`MLPotential.compute_copies` gives each bead exactly what `compute` gives it (the model with a
    Coulomb term, dispersion and a bonded baseline included), and PIMD then calls the model once per step
    and follows the same trajectory as bead-by-bead evaluation."""
    system = liquid_water_box()
    model = qmml.load_model(name)
    rng = np.random.default_rng(7)
    beads = system.positions[None] + 0.05 * rng.standard_normal((4, system.n_atoms, 3))
    potential = qmml.MLPotential(model, system, total_charge=0)
    for together, alone in zip(potential.compute_copies(beads), [potential.compute(x) for x in beads]):
        assert abs(together.energy - alone.energy) < 1e-9
        assert np.abs(together.forces - alone.forces).max() < 1e-9
        assert np.abs(together.charges - alone.charges).max() < 1e-12
        assert abs(together.energy_std - alone.energy_std) < 1e-9

    class OneByOne(qmml.PotentialWrapper):
        """The same potential, evaluated bead by bead (the default compute_copies)."""

    calls, predict = [], model.predict

    def counted(*args, **options):
        calls.append(1)
        return predict(*args, **options)

    model.predict = counted
    ends = []
    try:
        for p in (OneByOne(qmml.MLPotential(model, system, total_charge=0)), qmml.MLPotential(model, system,
                                                                                              total_charge=0)):
            sim = qmml.Simulation(p, qmml.PathIntegralLangevin(0.25, 300.0, 4, seed=3), temperature_K=300, seed=1,
                                  progress=False)
            calls.clear()
            sim.run(3)
            ends.append((len(calls), sim.state.extra["bead_positions"]))
    finally:
        del model.predict
    assert ends[0][0] == 12 and ends[1][0] == 3
    assert np.abs(ends[0][1] - ends[1][1]).max() < 1e-10


def test_copies_need_matching_pair_lists():
    system = liquid_water_box()
    model = qmml.load_model("water")
    x = np.concatenate([system.positions] * 2)
    z = np.tile(system.atomic_numbers, 2)
    with pytest.raises(InputError, match="do not split"):
        model.predict(z[:-1], x[:-1], cell=system.cell, copies=2)
    with pytest.raises(InputError, match="StackedNeighbours"):
        model.predict(z, x, cell=system.cell, copies=2, neighbours=qmml.periodic.neighbours.VerletList())


def harmonic_ring_samples(wavenumbers, per, target_factor, steps, skip, seed=4):
    """Path-integral samples of 3D oscillators at ``wavenumbers`` (``per`` each, hydrogen), and for every sample and
    oscillator the bead-averaged energy difference to the same oscillators at ``target_factor`` times the frequency
    (eV) and their centroid-virial kinetic energy there (eV per degree of freedom)."""
    system = hydrogens(len(wavenumbers) * per)
    omega = np.repeat([omega_per_fs(w) for w in wavenumbers], per)
    k = system.masses * units.AMU_A2_PER_FS2_EV * omega ** 2
    potential = Oscillators(system, k)
    integrator = qmml.PathIntegralLangevin(0.25, 300.0, 64, centroid_friction_per_ps=10.0, seed=seed)
    sim = qmml.Simulation(potential, integrator, temperature_K=300, seed=2, progress=False)
    extra_k = (target_factor ** 2 - 1) * k
    delta, kinetic = [], []
    for n in range(steps):
        sim.state = integrator.step(potential, sim.state, sim.masses)
        if n >= skip:
            q = sim.state.extra["bead_positions"] - system.positions  # (P, n, 3) displacements
            delta.append(0.5 * extra_k * np.mean(np.sum(q * q, axis=2), axis=0))
            virial = np.sum((q - q.mean(0)) * (-target_factor ** 2 * k[:, None] * q), axis=(0, 2))
            kinetic.append((1.5 * KT_300 - virial / (2 * 64)) / 3)
    return np.array(delta), np.array(kinetic)


def test_reweighting_path_integral_samples_recovers_the_quantum_kinetic_energy_of_a_stiffer_oscillator():
    """Sampled at omega, reweighted to omega' = 1.1 omega: the exact quantum kinetic energy at omega' within 2%
    (and far from the one at omega); at omega' = 2 omega the overlap is too small and the warning fires."""
    from qmml.analysis import reweight
    from qmml.errors import ReweightingWarning

    wavenumbers, per = (1600.0, 3700.0), 24
    delta, kinetic = harmonic_ring_samples(wavenumbers, per, 1.1, 1600, 200)
    for g, wavenumber in enumerate(wavenumbers):
        columns = range(g * per, (g + 1) * per)  # independent oscillators: each reweighted on its own
        results = [reweight(kinetic[:, i], delta[:, i], 300.0, blocks=8) for i in columns]
        measured = np.mean([r.mean for r in results])
        exact, before = exact_kinetic(1.1 * wavenumber), exact_kinetic(wavenumber)
        print(f"{wavenumber:.0f} -> {1.1 * wavenumber:.0f} cm^-1: reweighted {1e3 * measured:.2f} meV, exact "
              f"{1e3 * exact:.2f} (at omega {1e3 * before:.2f}); effective samples "
              f"{np.mean([r.effective_fraction for r in results]):.0%}")
        assert abs(measured / exact - 1) < 0.02
        assert abs(before / exact - 1) > 0.04  # the reweighting moved it
    delta2, kinetic2 = harmonic_ring_samples((3700.0,), 1, 2.0, 600, 100)
    with pytest.warns(ReweightingWarning, match="effective samples"):
        reweight(kinetic2[:, 0], delta2[:, 0], 300.0)


def test_reweighting_rejects_mismatched_samples():
    from qmml.analysis import reweight

    with pytest.raises(InputError, match="one row per sample"):
        reweight(np.zeros(50), np.zeros(40), 300.0)
    with pytest.raises(InputError, match="positive"):
        reweight(np.zeros(50), np.zeros(50), 0.0)
    with pytest.raises(InputError, match="finite"):
        reweight(np.full(50, np.nan), np.zeros(50), 300.0)


def test_path_integral_log_records_the_reference_difference(tmp_path):
    """``reference=``: the thermo log's reference columns are the bead-averaged V_ref - V and the reference's
    centroid-virial kinetic energy, recomputed here from the beads."""
    system = hydrogens(3)
    k = np.array([5.0, 8.0, 12.0])
    potential, reference = Oscillators(system, k), Oscillators(system, 1.21 * k)
    integrator = qmml.PathIntegralLangevin(0.25, 300.0, 8, seed=1, reference=reference)
    sim = qmml.Simulation(potential, integrator, temperature_K=300, seed=2, progress=False,
                          reporters=[qmml.ThermoLog(tmp_path / "t.csv", plot=False)]).run(5)
    log = read_thermo(tmp_path / "t.csv")
    q = sim.state.extra["bead_positions"] - system.positions
    v = 0.5 * np.sum(k[:, None] * q * q, axis=2).mean(0).sum()
    assert log["reference_delta_eV"][-1] == pytest.approx(0.21 * v, rel=1e-8)
    virial = np.sum((q - q.mean(0)) * (-1.21 * k[:, None] * q))
    assert log["kinetic_virial_reference_eV"][-1] == pytest.approx(3 * 1.5 * KT_300 - virial / 16, rel=1e-8)


@pytest.mark.parametrize("wrapper", ["isotopes", "restraint"])
def test_wrappers_keep_the_beads_of_an_ml_potential_in_one_model_call(wrapper):
    """`with_isotopes` (masses only) and `Restrained` (a bias per copy) still send their beads to the model
    together, with the results of bead-by-bead evaluation (the restraint's energy and forces included)."""
    system = liquid_water_box()
    model = qmml.load_model("water")
    inner = qmml.MLPotential(model, system)
    potential = qmml.with_isotopes(inner, {1: "D", 2: "D"}) if wrapper == "isotopes" else \
        qmml.Restrained(inner, [qmml.HarmonicRestraint(qmml.sampling.Distance(0, 3), 3.0, 5.0)])
    beads = system.positions[None] + 0.05 * np.random.default_rng(3).standard_normal((3, system.n_atoms, 3))
    calls, predict = [], model.predict

    def counted(*args, **options):
        calls.append(1)
        return predict(*args, **options)

    model.predict = counted
    try:
        together = potential.compute_copies(beads)
    finally:
        del model.predict
    assert len(calls) == 1
    for result, x in zip(together, beads):
        alone = potential.compute(x)
        assert abs(result.energy - alone.energy) < 1e-9 and np.abs(result.forces - alone.forces).max() < 1e-9
        assert result.details == alone.details
