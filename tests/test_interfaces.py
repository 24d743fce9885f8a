"""ASE calculator and i-PI client against the real ASE and i-PI: same forces as direct calls, finite
differences, optimizers, an SN2 NEB in ML waters, and path-integral MD over the i-PI socket."""

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

import qmml
from qmml import units
from qmml.errors import InputError

from conftest import STRUCTURES, water_cluster

ase = pytest.importorskip("ase")
from ase.constraints import FixAtoms
from ase.mep import NEB
from ase.optimize import BFGS, FIRE

from qmml.interfaces import IPIClient, QMMLCalculator, to_ase_atoms, virial
from qmml.interfaces.ipi import IPIConnectionError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def water_model():
    return qmml.load_model("water", device="cpu")


@pytest.fixture(scope="module")
def cluster():
    return water_cluster(6)


def qm_water_in_ml_waters(model, cluster, conv_tol=1e-11):
    """Water 1 in HF/STO-3G, the other five from the ML model (additive scheme)."""
    part = qmml.partition(cluster, np.flatnonzero(cluster.resids == 1), charge=0)
    return qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g", conv_tol=conv_tol), model)


# -- ASE ------------------------------------------------------------------------------------------
def test_importing_qmml_and_the_ipi_client_does_not_import_ase():
    code = ("import sys, qmml, qmml.interfaces, qmml.interfaces.ipi; "
            "assert 'ase' not in sys.modules, 'ase was imported'; "
            "from qmml.interfaces import QMMLCalculator; assert 'ase' in sys.modules")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_ase_forces_energy_and_charges_equal_direct_calls_and_finite_differences(water_model, cluster):
    from ase.calculators.test import calculate_numerical_forces

    potential = qmml.MLPotential(water_model, cluster)
    atoms = to_ase_atoms(cluster, calculator=QMMLCalculator(potential))
    x = cluster.positions + np.random.default_rng(3).normal(0, 0.03, cluster.positions.shape)
    atoms.positions = x
    energy = atoms.get_potential_energy()  # energy only: the gradient is skipped
    assert "forces" not in atoms.calc.results
    direct = potential.compute(x)
    assert energy == pytest.approx(direct.energy, abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), direct.forces, rtol=0, atol=1e-12)
    np.testing.assert_allclose(atoms.get_charges(), direct.charges, rtol=0, atol=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == pytest.approx(direct.energy, abs=1e-10)
    assert abs(atoms.get_charges().sum()) < 1e-10  # neutral waters, conserved per molecule
    numeric = calculate_numerical_forces(atoms, eps=1e-4)
    np.testing.assert_allclose(numeric, direct.forces, rtol=0, atol=1e-6)
    np.testing.assert_allclose(atoms.get_masses(), cluster.masses)


def test_qm_ml_charges_and_calculators_sharing_one_hamiltonian_stay_exact(water_model, cluster):
    """Two calculators (two NEB images) on one Hamiltonian, used in turn and from two threads: every
    result equals a fresh Hamiltonian's, and each calculator restarts the SCF from its own density."""
    shared = qm_water_in_ml_waters(water_model, cluster)
    rng = np.random.default_rng(7)
    xa = cluster.positions.copy()
    xb = xa + rng.normal(0, 0.1, xa.shape)
    a = to_ase_atoms(cluster, xa, calculator=QMMLCalculator(shared))
    b = to_ase_atoms(cluster, xb, calculator=QMMLCalculator(shared))
    forces = {"a": a.get_forces(), "b": b.get_forces()}
    a.positions = xa + rng.normal(0, 3e-4, xa.shape)  # a's next (small) optimizer step
    forces["a2"] = a.get_forces()
    cycles_a2 = a.calc.last_result.scf_cycles
    for key, x in (("a", xa), ("b", xb), ("a2", a.positions)):
        fresh = qm_water_in_ml_waters(water_model, cluster).compute(x)
        np.testing.assert_allclose(forces[key], fresh.forces, rtol=0, atol=1e-5)  # SCF convergence
    # a restarted from its own density (3e-4 Å away; 5 cycles), not from b's (0.1 Å away), which does worse
    # than PySCF's atomic guess (8 and 7 cycles)
    assert cycles_a2 < fresh.scf_cycles
    charges = a.get_charges()
    part = shared.partition
    assert np.all(charges[part.qm_atoms] == 0)
    np.testing.assert_allclose(charges[part.env_atoms], a.calc.last_result.env_charges, atol=0)
    assert abs(charges.sum()) < 1e-10

    # threads (ASE's NEB with parallel=True and one process) are serialized on the shared potential
    c = to_ase_atoms(cluster, xb + 0.01, calculator=QMMLCalculator(shared))
    d = to_ase_atoms(cluster, xa - 0.01, calculator=QMMLCalculator(shared))
    results = {}
    threads = [threading.Thread(target=lambda k=k, at=at: results.__setitem__(k, at.get_forces()))
               for k, at in (("c", c), ("d", d))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for key, atoms in (("c", c), ("d", d)):
        fresh = qm_water_in_ml_waters(water_model, cluster).compute(atoms.positions)
        np.testing.assert_allclose(results[key], fresh.forces, rtol=0, atol=1e-5)


def test_atoms_that_do_not_match_the_system_are_refused(water_model, cluster):
    calc = QMMLCalculator(qmml.MLPotential(water_model, cluster))
    atoms = calc.make_atoms()
    assert atoms.calc is calc and not atoms.pbc.any()
    swapped = atoms.copy()
    swapped.numbers[[3, 4]] = swapped.numbers[[4, 3]]  # O and H of the second water swapped
    swapped.calc = calc
    with pytest.raises(InputError, match=r"atom 3 of the Atoms object is H but atom 3 of the qmml system is atom 3 "
                                         r"\(O.*to_ase_atoms"):
        swapped.get_forces()
    short = atoms[:-3]
    short.calc = calc
    with pytest.raises(InputError, match="has 15 atoms but the qmml system .* has 18"):
        short.get_potential_energy()
    periodic = atoms.copy()
    periodic.set_cell([20, 20, 20])
    periodic.pbc = True
    periodic.calc = calc
    with pytest.raises(InputError, match="open boundaries; set atoms.pbc = False"):
        periodic.get_forces()
    with pytest.raises(InputError, match="not a qmml potential"):
        QMMLCalculator(water_model)


def test_a_periodic_system_follows_the_atoms_cell_and_gives_the_stress(water_model):
    from qmml.ml import Dataset

    frame = next(f for f in Dataset.load(ROOT / "data" / "datasets" / "water_test.npz") if f.cell is not None)
    box_system = frame.to_system("WAT")
    potential = qmml.MLPotential(water_model, box_system)
    atoms = to_ase_atoms(potential, calculator=QMMLCalculator(potential))
    assert atoms.pbc.all()
    np.testing.assert_allclose(np.asarray(atoms.cell), box_system.cell, atol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), potential.compute(box_system.positions).forces, atol=1e-12)
    atoms.set_cell(np.asarray(atoms.cell) * 1.01, scale_atoms=True)
    direct = potential.compute(atoms.get_positions(), cell=np.asarray(atoms.cell))
    np.testing.assert_allclose(atoms.get_forces(), direct.forces, atol=1e-12)
    voigt = atoms.get_stress()  # ASE: xx yy zz yz xz xy, eV/Å^3
    np.testing.assert_allclose(voigt, direct.stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]], atol=1e-12)
    # ASE's own check: stress against finite strains of the Atoms
    np.testing.assert_allclose(atoms.calc.calculate_numerical_stress(atoms, d=1e-5), voigt, atol=2e-5)
    atoms.pbc = [True, True, False]
    with pytest.raises(InputError, match="periodic in three dimensions"):
        atoms.get_forces()


def test_ase_optimizer_and_nve_dynamics_through_the_calculator(water_model, cluster):
    from ase import units as ase_units
    from ase.md.verlet import VelocityVerlet

    from qmml.md.state import maxwell_boltzmann

    atoms = QMMLCalculator(qmml.MLPotential(water_model, cluster)).make_atoms()
    e0 = atoms.get_potential_energy()
    f0 = np.linalg.norm(atoms.get_forces(), axis=1).max()
    optimizer = BFGS(atoms, logfile=None)
    optimizer.run(fmax=0.01, steps=8)
    assert atoms.get_potential_energy() < e0 - 1e-3
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < f0

    # NVE: 40 steps of 0.5 fs; energy and forces are consistent, so the total energy is conserved
    # qmml's velocities are Å/fs; ASE's time unit is Å sqrt(amu/eV), ase_units.fs of them make 1 fs
    atoms.set_velocities(maxwell_boltzmann(cluster.masses, 300.0, 0) / ase_units.fs)
    n = len(atoms)  # qmml: 300 K over 3N - 3 degrees of freedom; ASE counts 3N
    assert atoms.get_temperature() == pytest.approx(300.0 * (3 * n - 3) / (3 * n), rel=1e-6)
    total, kinetic = [], []
    dyn = VelocityVerlet(atoms, timestep=0.5 * ase_units.fs, logfile=None)
    dyn.attach(lambda: (total.append(atoms.get_total_energy()), kinetic.append(atoms.get_kinetic_energy())))
    dyn.run(40)
    assert np.ptp(kinetic) > 0.05  # eV exchanged between kinetic and potential energy (0.17 eV here) ...
    assert np.ptp(total) < 0.1 * np.ptp(kinetic)  # ... while the total stays put (0.005 eV)


# -- NEB: SN2 Cl- + CH3Cl -> ClCH3 + Cl- in two ML waters --------------------------------------------
def sn2_in_two_waters() -> qmml.System:
    """The shipped SN2 reactant complex (Cl1 = atom 0 the nucleophile, C = 1, Cl2 = 2 leaving, H = 3-5)
    with the water nearest each chlorine."""
    full = qmml.load_system(STRUCTURES / "sn2_water.psf", STRUCTURES / "sn2_water.pdb")
    oxygens = np.flatnonzero((full.elements == "O") & (full.resnames == "TIP3"))
    waters = []
    for chlorine in (0, 2):
        distance = np.linalg.norm(full.positions[oxygens] - full.positions[chlorine], axis=1)
        waters.append(int(oxygens[np.argmin(distance)]))
    keep = np.concatenate([np.arange(6)] + [[o, o + 1, o + 2] for o in waters])
    index = {int(a): k for k, a in enumerate(keep)}
    bonds = [(index[a], index[b]) for a, b in full.bonds if a in index and b in index]
    return qmml.System.from_arrays(full.elements[keep], full.positions[keep], bonds=bonds, residues=full.resids[keep],
                                   resnames=full.resnames[keep], names=full.names[keep], charges=full.charges[keep])


def walden_inverted(positions):
    """The product guess: the methyl carbon and hydrogens mirrored through the plane that bisects Cl-Cl."""
    x = np.array(positions, dtype=float)
    axis = (x[2] - x[0]) / np.linalg.norm(x[2] - x[0])
    middle = (x[0] + x[2]) / 2
    for k in (1, 3, 4, 5):
        x[k] -= 2 * ((x[k] - middle) @ axis) * axis
    return x


def test_neb_of_sn2_in_ml_waters_runs_through_the_ase_calculator(water_model):
    """HF/3-21G solute in two ML waters held fixed (a frozen solvent cage): relax both ends, then a
    climbing-image NEB of 5 images from an IDPP path, 12 FIRE steps."""
    system = sn2_in_two_waters()
    part = qmml.partition(system, "resname CLA MCL", charge=-1)
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "3-21g", conv_tol=1e-8), water_model)
    cage = FixAtoms(indices=part.env_atoms)

    def relaxed(positions):
        atoms = to_ase_atoms(system, positions, calculator=QMMLCalculator(ham))
        atoms.set_constraint(cage)
        BFGS(atoms, logfile=None).run(fmax=0.1, steps=20)
        return atoms

    def c_cl(atoms):
        return [float(atoms.get_distance(1, chlorine)) for chlorine in (0, 2)]

    reactant = relaxed(system.positions)
    product = relaxed(walden_inverted(reactant.positions))
    assert c_cl(reactant)[1] < 2.1 < c_cl(reactant)[0]  # C-Cl2 bonded, Cl1 the free chloride
    assert c_cl(product)[0] < 2.1 < c_cl(product)[1]

    images = [reactant] + [reactant.copy() for _ in range(3)] + [product]
    for image in images[1:-1]:
        image.calc = QMMLCalculator(ham)  # one calculator per image, one shared Hamiltonian
    neb = NEB(images, climb=True, method="improvedtangent")
    neb.interpolate("idpp")
    fmax = []
    optimizer = FIRE(neb, logfile=None)
    optimizer.attach(lambda: fmax.append(np.linalg.norm(neb.get_forces(), axis=1).max()))
    optimizer.run(fmax=0.05, steps=12)

    energies = np.array([image.get_potential_energy() for image in images])
    top = int(np.argmax(energies))
    barrier = energies[top] - energies[0]
    print(f"\nSN2 NEB (HF/3-21G, 2 ML waters): energies {np.round(energies - energies[0], 3)} eV, "
          f"barrier {barrier:.3f} eV, NEB fmax {fmax[0]:.2f} -> {fmax[-1]:.2f} eV/Å")
    assert 0 < top < len(images) - 1 and energies[top] > max(energies[0], energies[-1])
    assert 0.05 < barrier < 1.5  # HF/3-21G gives a low central barrier; the path is far from converged
    assert fmax[-1] < 0.5 * fmax[0]
    # the highest image is the Walden-inversion transition region: C between the two chlorines
    d1, d2 = c_cl(images[top])
    assert 2.1 < d1 < 2.9 and 2.1 < d2 < 2.9
    assert images[top].get_angle(0, 1, 2) > 150


# -- i-PI ----------------------------------------------------------------------------------------
IPI_INPUT = """<simulation verbosity='low'>
  <output prefix='sim'>
    <properties stride='1' filename='out'> [ step, time{{femtosecond}}, temperature{{kelvin}}, potential ] </properties>
    <trajectory filename='pos' stride='1' format='bin'> positions </trajectory>
    <trajectory filename='for' stride='1' format='bin'> forces </trajectory>
  </output>
  <total_steps> {steps} </total_steps>
  <prng><seed> 31415 </seed></prng>
  <ffsocket name='qmml' mode='unix' pbc='false'>
    <address> {address} </address>
    <latency> 1e-4 </latency> {socket_options}
  </ffsocket>
  <system>
    <initialize nbeads='{beads}'>
      <file mode='xyz' units='angstrom'> init.xyz </file>
      <velocities mode='thermal' units='kelvin'> 300 </velocities>
    </initialize>
    <forces><force forcefield='qmml'/></forces>
    <ensemble><temperature units='kelvin'> 300 </temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'> 0.25 </timestep>
        <thermostat mode='pile_l'><tau units='femtosecond'> 100 </tau></thermostat>
      </dynamics>
    </motion>
  </system>
</simulation>
"""


def write_ipi_input(folder: Path, system, *, beads: int, steps: int, socket_options: str = "") -> str:
    """input.xml and init.xyz (Å) in ``folder``; returns the socket name.  The cell is the system's box,
    or a 30 Å cube that only i-PI sees for open boundaries."""
    if shutil.which("i-pi") is None:
        pytest.skip("i-PI is not installed (pip install 'qmml[ipi]')")
    address = f"qmml-{uuid.uuid4().hex[:12]}"
    box = [30, 30, 30, 90, 90, 90] if system.box is None else system.box
    rows = [f"{e} {p[0]:.12f} {p[1]:.12f} {p[2]:.12f}" for e, p in zip(system.elements, system.positions)]
    cell = " ".join(f"{v:.12f}" for v in box)
    (folder / "init.xyz").write_text(f"{system.n_atoms}\n# CELL(abcABC): {cell} cell{{angstrom}} positions{{angstrom}}\n"
                                     + "\n".join(rows) + "\n")
    (folder / "input.xml").write_text(IPI_INPUT.format(address=address, beads=beads, steps=steps,
                                                       socket_options=socket_options))
    return address


def run_ipi(folder: Path, address: str, serve, timeout_s: float = 50.0) -> None:
    """Run i-PI in ``folder`` while ``serve()`` (the qmml client) runs in a thread; fail with i-PI's log."""
    log_path = folder / "ipi.log"
    errors = []

    def client():
        try:
            serve()
        except Exception as err:  # reported by the test thread
            errors.append(err)

    with open(log_path, "w") as log:
        process = subprocess.Popen(["i-pi", "input.xml"], cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    try:
        # a failed client leaves i-PI waiting for another one: stop at once rather than at the deadline
        while process.poll() is None and not errors and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        socket_file = Path(f"/tmp/ipi_{address}")
        if socket_file.exists():
            socket_file.unlink()
    thread.join(timeout=10)
    log_text = log_path.read_text()[-3000:]
    assert not errors, f"the qmml client failed: {errors[0]!r}\ni-PI's log:\n{log_text}"
    assert process.returncode == 0, f"i-PI failed or timed out (status {process.returncode}):\n{log_text}"
    assert not thread.is_alive(), "the qmml client did not stop after i-PI's EXIT"


def read_ipi_binary(path: Path) -> list[np.ndarray]:
    """Frames of an i-PI 'bin' trajectory (float64 values exactly as i-PI held them, atomic units)."""
    data, at, frames = path.read_bytes(), 0, []
    while at < len(data):
        at += 72  # cell
        n = int(np.frombuffer(data, np.int64, 1, at)[0])
        at += 8
        frames.append(np.frombuffer(data, np.float64, 3 * n, at).reshape(n, 3).copy())
        at += 24 * n
        at += 8 + 4 * int(np.frombuffer(data, np.int64, 1, at)[0])  # atom names, UTF-32
        title = ""
        while not ("cell{" in title and title.endswith("}")):  # "Step: ... forces{atomic_unit}  cell{atomic_unit}"
            title += data[at:at + 4].decode("utf-32-le")
            at += 4
        assert "{atomic_unit}" in title, title
    return frames


def ipi_beads(folder: Path, beads: int) -> list[tuple[list, list]]:
    out = []
    for b in range(beads):
        (pos,) = folder.glob(f"sim.pos_*{b}.bin")
        (force,) = folder.glob(f"sim.for_*{b}.bin")
        out.append((read_ipi_binary(pos), read_ipi_binary(force)))
    return out


def assert_ipi_forces_equal_direct(potential, beads, rtol):
    largest = 0.0
    for positions, forces in beads:
        for x_bohr, f_ipi in zip(positions, forces):
            direct = potential.compute(x_bohr * units.BOHR_A).forces / units.HARTREE_PER_BOHR_EV_PER_A
            largest = max(largest, np.abs(f_ipi - direct).max() / np.abs(direct).max())
    assert largest < rtol
    return largest


@pytest.mark.parametrize("socket_options", [
    "",  # i-PI's default: STATUS, POSDATA and GETFORCE sent together
    "<consolidate_messages> false </consolidate_messages>",  # the classic exchange, one message at a time
    "<batch_size> 4 </batch_size>",  # all beads in one request
], ids=["consolidated", "classic", "batched"])
def test_pimd_through_the_ipi_socket_gives_the_direct_forces(water_model, cluster, tmp_path, socket_options):
    """i-PI: 4 beads, NVT with PILE-L, 4 steps of 0.25 fs, ML waters served by IPIClient."""
    potential = qmml.MLPotential(water_model, cluster)
    address = write_ipi_input(tmp_path, cluster, beads=4, steps=4, socket_options=socket_options)
    client = IPIClient(potential, address, connect_timeout_s=30)
    run_ipi(tmp_path, address, client.run)
    if "batch_size" in socket_options:  # i-PI starts all beads at one geometry: a batch evaluates it once
        assert 4 * 5 - 3 <= client.n_evaluations <= 4 * 5
    else:
        assert client.n_evaluations == 4 * 5  # each bead at the start and after each step
    beads = ipi_beads(tmp_path, 4)
    assert all(len(p) == len(f) == 5 for p, f in beads)
    # a real path integral: beads differ from each other and move
    assert np.abs(beads[0][0][-1] - beads[2][0][-1]).max() > 1e-3
    assert np.abs(beads[0][0][-1] - beads[0][0][0]).max() > 1e-3
    largest = assert_ipi_forces_equal_direct(potential, beads, rtol=1e-10)
    print(f"\ni-PI vs direct (ML waters): max |dF|/max|F| = {largest:.1e}")
    # i-PI's potential (Hartree, bead average) is ours
    table = np.loadtxt(tmp_path / "sim.out", ndmin=2)
    mean_energy = np.mean([potential.compute(p[-1] * units.BOHR_A).energy for p, _ in beads]) / units.HARTREE_EV
    assert table[-1, -1] == pytest.approx(mean_energy, abs=1e-7)


def test_qmml_ipi_command_serves_a_qm_ml_hamiltonian(water_model, cluster, tmp_path):
    """``qmml ipi JOB.yaml``: a QM water (HF/STO-3G) in five ML waters, 4 beads, 3 steps."""
    from qmml.cli import main
    from qmml.config import load_config
    from qmml.jobs import build_potential

    with warnings.catch_warnings():  # MDAnalysis lists the PDB fields it fills with defaults
        warnings.simplefilter("ignore")
        cluster.universe.atoms.write(tmp_path / "waters.pdb")  # bonds as CONECT records
    job = tmp_path / "job.yaml"
    job.write_text("structure: waters.pdb\n"
                   "qm: {selection: resid 1, charge: 0, method: hf, basis: sto-3g, conv_tol: 1.0e-12}\n"
                   "environment: {type: ml, model: water}\n")
    address = write_ipi_input(tmp_path, cluster, beads=4, steps=3)
    status = []
    run_ipi(tmp_path, address, lambda: status.append(main(["ipi", str(job), "--address", address,
                                                             "--connect-timeout", "30"])))
    assert status == [0]
    config, root = load_config(job)
    hamiltonian = build_potential(config)
    largest = assert_ipi_forces_equal_direct(hamiltonian, ipi_beads(tmp_path, 4), rtol=1e-6)
    print(f"\ni-PI vs direct (QM/ML): max |dF|/max|F| = {largest:.1e}")


def test_ipi_with_a_triclinic_box_gets_the_cell_and_the_virial(water_model, tmp_path):
    """A periodic ML water box given a triclinic cell: i-PI's cell (lattice vectors as columns, Bohr)
    arrives as the system's box, forces still match, and the virial sent is -V times the stress, the
    strain derivative of the energy (checked by finite strains)."""
    from qmml.ml import Dataset

    frame = next(f for f in Dataset.load(ROOT / "data" / "datasets" / "water_test.npz") if f.cell is not None)
    cubic = frame.to_system("WAT")
    system = qmml.System.from_arrays(cubic.elements, cubic.positions, box=[8.6, 8.9, 9.2, 80.0, 86.0, 97.0],
                                     bonds=cubic.bonds, residues=cubic.resids)
    assert np.count_nonzero(system.cell - np.diag(np.diag(system.cell))) == 3  # triclinic
    potential = qmml.MLPotential(water_model, system)
    address = write_ipi_input(tmp_path, system, beads=2, steps=2)
    client = IPIClient(potential, address, connect_timeout_s=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_ipi(tmp_path, address, client.run)
    assert client.n_evaluations == 2 * 3
    # the potential now takes i-PI's cell (the box as written to input.xml and converted to Bohr and back)
    assert_ipi_forces_equal_direct(potential, ipi_beads(tmp_path, 2), rtol=1e-6)
    x, cell = system.positions, system.cell
    energy, _, w = client._evaluate(x[None], cell[None])[0]
    h = 1e-5
    for a, b in [(0, 0), (1, 2), (2, 1)]:
        eps = np.zeros((3, 3))
        eps[a, b] = h
        up, down = (np.eye(3) + eps).T, (np.eye(3) - eps).T
        de = (potential.compute(x @ up, cell=cell @ up, forces=False).energy
              - potential.compute(x @ down, cell=cell @ down, forces=False).energy) / (2 * h)
        # W = -dE/d(strain), symmetrized (the potential is rotation invariant)
        assert w[a, b] * qmml.units.HARTREE_EV == pytest.approx(-de, abs=2e-5)


def test_virial_is_minus_the_strain_derivative_of_the_energy(water_model, cluster):
    potential = qmml.MLPotential(water_model, cluster)
    x = cluster.positions
    w = virial(x, potential.compute(x).forces)
    h = 1e-5
    strain = np.diag([1.0, 0.0, 0.0]) + np.diag([0.0, 1.0, 0.0]) * 0.3  # an anisotropic stretch
    e_plus = potential.compute(x @ (np.eye(3) + h * strain).T, forces=False).energy
    e_minus = potential.compute(x @ (np.eye(3) - h * strain).T, forces=False).energy
    assert (e_plus - e_minus) / (2 * h) == pytest.approx(-np.sum(w * strain), abs=1e-6)
    # no net force, so the origin does not matter
    np.testing.assert_allclose(virial(x + 5.0, potential.compute(x).forces), w, atol=1e-8)


def test_client_without_a_server_fails_with_the_socket_name(water_model, cluster):
    client = IPIClient(qmml.MLPotential(water_model, cluster), "qmml-no-such-server", connect_timeout_s=0.3)
    with pytest.raises(IPIConnectionError, match="no i-PI server at the unix socket /tmp/ipi_qmml-no-such-server"):
        client.run()
    with pytest.raises(InputError, match="unix socket has no port"):
        IPIClient(qmml.MLPotential(water_model, cluster), "localhost", port=31415, unix=True)
