"""The MM layer (OpenMM) and three layers, QM/ML/MM: parity with OpenMM, exact forces at every boundary, NVE.

Systems: the shipped capped dipeptide Ace-Ser-His-Nme in 131 TIP3P waters (open) and the 128-water box
(periodic, PME), both parameterized with amber14 (ff14SB + TIP3P).
"""

import os

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
import openmm.app as app  # noqa: E402

import qmml  # noqa: E402
from qmml import units  # noqa: E402
from qmml.errors import InputError, PartitionError  # noqa: E402
from qmml.mm import MMForceField  # noqa: E402

from conftest import STRUCTURES, finite_strain_derivative  # noqa: E402

#: 0.15 ps at 0.5 fs in CI (its time budget); QMML_NVE_STEPS=1000 gives the 0.5 ps figure of the issue
#: (measured 2026-12-07: drift -2.4e-7 Eh/ps/atom).
N_NVE_STEPS = int(os.environ.get("QMML_NVE_STEPS", 300))
PEPTIDE = STRUCTURES / "peptide_water.pdb"
WATER_BOX = STRUCTURES / "water_box.pdb"
#: The side chains of Ser2 and His3 (their CB-CA bonds cut: a QM/MM and a QM/ML link).
SIDE_CHAINS = ("(resname SER and name CB HB2 HB3 OG HG) or "
               "(resname HIS and name CB HB2 HB3 CG ND1 HD1 CD2 HD2 CE1 HE1 NE2)")


def _openmm_reference(path, topology_edit=None, cutoff_A=10.0):
    """Energy (eV) and forces (eV/Å) from OpenMM itself (Reference platform), the structure read afresh."""
    pdb = app.PDBFile(str(path))
    topology, positions = pdb.topology, pdb.positions
    if topology_edit is not None:
        modeller = app.Modeller(topology, positions)
        topology_edit(modeller)
        topology, positions = modeller.topology, modeller.positions
    periodic = topology.getPeriodicBoxVectors() is not None
    options = dict(nonbondedMethod=app.PME, nonbondedCutoff=cutoff_A / 10, ewaldErrorTolerance=5e-4) if periodic \
        else dict(nonbondedMethod=app.NoCutoff)
    system = app.ForceField("amber14-all.xml", "amber14/tip3p.xml").createSystem(
        topology, constraints=None, rigidWater=False, removeCMMotion=False, **options)
    context = openmm.Context(system, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy()._value * units.KJ_PER_MOL_EV,
            state.getForces(asNumpy=True)._value * units.KJ_PER_MOL_EV / 10)


@pytest.mark.parametrize("path, cutoff_A", [(PEPTIDE, 10.0), (WATER_BOX, 7.0)], ids=["open", "pme"])
def test_mm_layer_with_no_qm_or_ml_atoms_is_openmm(path, cutoff_A):
    """Empty QM and ML layers: qmml's MM energy and forces are OpenMM's own to 1e-6 relative."""
    ff = MMForceField.from_pdb(path, cutoff_A=cutoff_A)
    energy, forces = ff.context(platform="Reference").compute(ff.system.positions, ff.system.cell)
    reference_energy, reference_forces = _openmm_reference(path, cutoff_A=cutoff_A)
    assert abs(energy - reference_energy) <= 1e-6 * abs(reference_energy)
    assert np.abs(forces - reference_forces).max() <= 1e-6 * np.abs(reference_forces).max()
    assert (ff.system.cell is not None) == (path == WATER_BOX)
    assert abs(ff.charges.sum()) < 1e-9 and ff.system.bonds is not None
    if ff.system.cell is not None:  # a rotated box (not OpenMM's reduced form): the same energy, rotated forces
        turn = np.array([[np.cos(0.3), -np.sin(0.3), 0.0], [np.sin(0.3), np.cos(0.3), 0.0], [0.0, 0.0, 1.0]])
        turned_energy, turned_forces = ff.context(platform="Reference").compute(
            ff.system.positions @ turn.T, ff.system.cell @ turn.T)
        assert abs(turned_energy - energy) < 1e-9 and np.abs(turned_forces - forces @ turn.T).max() < 1e-9


def test_an_amber_topology_gives_the_same_force_field():
    """PRMTOP + INPCRD (data/scripts/make_amber_files.py: the same amber14 parameters through ParmEd) and the PDB
    with OpenMM's XML files: one energy and the same forces, also through a job file."""
    from qmml import jobs
    from qmml.config import JobConfig

    files = [str(STRUCTURES / "peptide_water_amber.prmtop"), str(STRUCTURES / "peptide_water_amber.inpcrd")]
    amber = MMForceField.from_amber(*files)
    xml = MMForceField.from_pdb(PEPTIDE)
    (e_amber, f_amber), (e_xml, f_xml) = (ff.context(platform="Reference").compute(ff.system.positions)
                                          for ff in (amber, xml))
    assert abs(e_amber - e_xml) <= 1e-6 * abs(e_xml) and np.abs(f_amber - f_xml).max() < 1e-5
    config = JobConfig(structure=files, qm={"selection": "resname HOH and resid 5", "charge": 0}, mm={})
    assert jobs.build_forcefield(config).system.n_atoms == amber.system.n_atoms


def test_mm_energy_leaves_out_the_inner_region_exactly():
    """E(context with inner atoms S) = E_MM(all) - E_MM(S), and QM atoms are ghosts: E(context with QM water W)
    = E_MM(structure without W), each side from OpenMM on an edited structure."""
    ff = MMForceField.from_pdb(PEPTIDE)
    x = ff.system.positions
    full, _ = _openmm_reference(PEPTIDE)
    inner = np.flatnonzero(ff.system.molecule_index <= 3)  # the peptide and three waters
    keep = set(inner.tolist())
    alone, _ = _openmm_reference(PEPTIDE, lambda m: m.delete([a for a in m.topology.atoms() if a.index not in keep]))
    energy, forces = ff.context(inner_regions=[inner], platform="Reference").compute(x)
    assert energy == pytest.approx(full - alone, abs=1e-8)

    water = np.flatnonzero(ff.system.molecule_index == 5)
    gone = set(water.tolist())
    without, reference_forces = _openmm_reference(PEPTIDE, lambda m: m.delete([a for a in m.topology.atoms()
                                                                              if a.index in gone]))
    energy, forces = ff.context(qm_atoms=water, platform="Reference").compute(x)
    assert energy == pytest.approx(without, abs=1e-8)
    assert np.abs(np.delete(forces, water, axis=0) - reference_forces).max() < 1e-8
    assert np.abs(forces[water]).max() == 0.0


def test_separate_qm_and_shell_regions_keep_the_bonded_terms_that_join_them():
    """Additive scheme: the QM region and the shell are separate regions, so the force field keeps the bond,
    angles and torsions across the QM/ML cut (His CB-CA); subtractive: one region, none.  The difference is
    the energy of exactly those terms, each summed by OpenMM in a System that holds nothing else."""
    ff = MMForceField.from_pdb(PEPTIDE)
    part = qmml.partition(ff.system, "resname HIS and name CB HB2 HB3 CG ND1 HD1 CD2 HD2 CE1 HE1 NE2", charge=0,
                          shell="resname HIS SER")
    qm, shell, x = part.qm_atoms, part.shell_atoms, ff.system.positions
    regions = {scheme: qmml.MMEnvironment.inner_regions(part, scheme) for scheme in ("additive", "subtractive")}
    assert len(regions["additive"]) == 1 and np.array_equal(regions["additive"][0], shell)
    additive, subtractive = (ff.context(qm, regions[s], platform="Reference").compute(x)[0]
                             for s in ("additive", "subtractive"))
    joining = openmm.System()
    for mass in range(ff.system.n_atoms):
        joining.addParticle(1.0)
    kinds = {"HarmonicBondForce": ("Bond", 2), "HarmonicAngleForce": ("Angle", 3), "PeriodicTorsionForce": ("Torsion", 4)}
    n_terms = dict.fromkeys(("Bond", "Angle", "Torsion"), 0)
    for force in ff.openmm_system.getForces():
        name = force.__class__.__name__
        if name not in kinds:
            continue
        kind, n = kinds[name]
        copy = getattr(openmm, name)()
        for k in range(getattr(force, f"getNum{kind}s")()):
            parameters = getattr(force, f"get{kind}Parameters")(k)
            atoms = np.array(parameters[:n])
            if np.isin(atoms, qm).any() and np.isin(atoms, shell).any() and np.isin(atoms, np.r_[qm, shell]).all():
                getattr(copy, f"add{kind}")(*parameters)
                n_terms[kind] += 1
        joining.addForce(copy)
    context = openmm.Context(joining, openmm.VerletIntegrator(1e-3), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(x / 10)
    expected = context.getState(getEnergy=True).getPotentialEnergy()._value * units.KJ_PER_MOL_EV
    assert n_terms["Bond"] == 1 and n_terms["Angle"] == 6 and n_terms["Torsion"] > 9  # CA-CB; N/C/HA-CA-CB-HB2/HB3/CG
    assert additive - subtractive == pytest.approx(expected, abs=1e-8) and abs(expected) > 1e-3
    with pytest.raises(InputError, match=f"atom {shell[0]} is in inner regions 0 and 1"):
        ff.context(qm, [shell, shell[:1]])
    with pytest.raises(InputError, match="list of atom-index arrays"):
        ff.context(qm, shell)  # a flat array (the old inner_atoms)


def test_a_ligand_without_parameters_must_be_quantum():
    """Butanol has no amber14 template: it gets zero parameters, which is right only inside the QM region."""
    ff = MMForceField.from_pdb(STRUCTURES / "butanol_water.pdb")
    assert [g.label for g in ff.ghosts] == ["BUOH 1 (chain A)"] and len(ff.ghosts[0].atoms) == 15
    with pytest.raises(InputError, match=r"residue BUOH 1 \(chain A\).*no parameters.*atom 0 \(C1\).*QM region"):
        part = qmml.partition(ff.system, "resname BUOH and not name C1 H11 H12 H13", charge=0)
        qmml.MMEnvironment(ff).evaluate(ff.system.positions, part)
    part = qmml.partition(ff.system, "resname BUOH", charge=0)
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), qmml.MMEnvironment(ff, platform="Reference"))
    assert ham.vdw is not None and len(ham.vdw.env_atoms) == len(part.env_atoms)


def test_a_qm_residue_without_parameters_silences_the_charge_check():
    """Topology charges check the QM charge, except where a QM residue has none (a ghost ligand): then they say
    nothing, and the partition must not tell the user to check the protonation state."""
    ff = MMForceField.from_pdb(STRUCTURES / "butanol_water.pdb")
    water = "(resname HOH and resid 2)"
    wrong = qmml.partition(ff.system, water, charge=2)
    assert any("check the protonation state" in n for n in wrong.notes)
    assert "implying QM charge +0 (given: +2)" in wrong.report()
    ligand = qmml.partition(ff.system, f"resname BUOH or {water}", charge=2)
    assert not ligand.notes and "without BUOH 1 (no force-field parameters)" in ligand.report()


def test_a_job_with_an_unparameterized_residue_outside_qm_stops_with_one_line(tmp_path):
    import subprocess
    import sys

    job = tmp_path / "job.yaml"
    job.write_text(f"structure: {STRUCTURES / 'butanol_water.pdb'}\n"
                   "qm: {selection: 'resname BUOH and not name C1 H11 H12 H13', charge: 0, basis: sto-3g}\nmm: {}\n")
    run = subprocess.run([sys.executable, "-m", "qmml.cli", "run", str(job)], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "residue BUOH 1 (chain A)" in run.stderr and "mm.forcefield" in run.stderr


def test_qmml_partition_reports_three_layers():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "qmml.cli", "partition", str(PEPTIDE), "--mm", "--charge", "0",
                          "--qm", "resname HIS and name CB HB2 HB3 CG ND1 HD1 CD2 HD2 CE1 HE1 NE2",
                          "--shell-radius", "3.5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ML shell      : 53 atoms in 14 whole residues" in run.stdout and "MM layer      : 369 atoms" in run.stdout


def test_a_shell_that_cuts_a_ring_is_refused():
    """Shells are whole residues, so only a ring spread over two residues can be cut: cyclohexane split in
    halves (residues 1 and 2), the shell takes one half."""
    angles = np.arange(6) * np.pi / 3
    ring = np.c_[1.52 * np.cos(angles), 1.52 * np.sin(angles), np.zeros(6)]
    water = np.array([[6.0, 0, 0], [6.96, 0, 0], [5.76, 0.93, 0]])
    system = qmml.System.from_arrays(["C"] * 6 + ["O", "H", "H"], np.r_[ring, water],
                                     residues=[1, 1, 1, 2, 2, 2, 3, 3, 3],
                                     bonds=[(k, (k + 1) % 6) for k in range(6)] + [(6, 7), (6, 8)])
    with pytest.raises(PartitionError, match=r"ML/MM cut bond atom 0 \(C, UNK 1\) - atom 5 \(C, UNK 2\) lies in a ring"):
        qmml.partition(system, "resid 3", charge=0, shell="resid 1")


@pytest.fixture(scope="module")
def three_layers():
    """QM: the Ser and His side chains (HF/STO-3G); ML shell: His backbone, Nme and the waters within 3 Å of
    His; MM: Ace, the Ser backbone and the other waters.  Boundaries: a QM/MM link (Ser CB-CA), a QM/ML
    link (His CB-CA), an ML/MM cap (His N - Ser C) and waters on both sides of the shell edge."""
    ff = MMForceField.from_pdb(PEPTIDE)
    part = qmml.partition(ff.system, SIDE_CHAINS, charge=0, allow_multiple_links=True,
                          shell="resname HIS NME or byres (resname HOH and around 3.0 resname HIS)")
    engine = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11)
    environment = qmml.LayeredEnvironment(qmml.load_model("organic").double(), ff, platform="Reference")
    return ff, part, qmml.Hamiltonian(part, engine, environment, scheme="subtractive")


def test_three_layer_partition_report(three_layers):
    ff, part, ham = three_layers
    report = part.report()
    assert "ML shell" in report and "MM layer" in report and "cap on atom 17 (N, HIS 3) - atom 15 (C, SER 2)" in report
    assert [(c.q1, c.m1) for c in part.shell.caps] == [(10, 8), (17, 15)]
    assert [(c.q1, c.m1) for c in part.shell.qm_caps] == [(19, 21)]  # His CA - CB, for the additive scheme
    # QM-MM van der Waals on the MM atoms only; the model gives QM-shell repulsion
    assert np.array_equal(ham.vdw.env_atoms, part.mm_atoms)
    assert np.intersect1d(part.shell_atoms, part.qm_atoms).size == 0


def test_a_cap_on_a_peptide_bond_sits_at_the_amide_n_h_length(three_layers):
    """The ML/MM cut His N - Ser C is a peptide bond (1.34 Å): the cap sits 1.01 Å from N, where the model does not
    push N along the bond.  A ratio of tabulated single bonds (1.010/1.470, as before) put it at 0.93 Å, and the
    model pushed N with 2.4 eV/Å (5.9 eV/Å on chorismate mutase's shell boundary)."""
    ff, part, _ = three_layers
    environment = qmml.LayeredEnvironment(qmml.load_model("organic").double(), ff, platform="Reference")
    x = ff.system.positions
    push = {}
    for link in ("scaled", 1.010 / 1.470):
        moved = qmml.partition(ff.system, SIDE_CHAINS, charge=0, allow_multiple_links=True, link=link,
                               shell="resname HIS NME or byres (resname HOH and around 3.0 resname HIS)")
        cap = moved.shell.caps[1]
        assert (cap.q1, cap.m1) == (17, 15)
        bond = x[cap.m1] - x[cap.q1]
        evaluation = environment.evaluate(x, moved, "additive", forces=True)
        push[link] = float(evaluation.forces(np.zeros(len(evaluation.charges)))[cap.q1] @ bond) / np.linalg.norm(bond)
        if link == "scaled":
            assert cap.g * np.linalg.norm(bond) == pytest.approx(1.010, abs=1e-12)
    assert abs(push["scaled"]) < 0.3 and abs(push[1.010 / 1.470]) > 1.5


def test_each_shell_piece_keeps_its_charge_and_is_a_molecule_of_its_own():
    """Ace and Nme are two pieces of one peptide, apart in this shell: for the model they are separate capped
    molecules, so each piece's embedding charges add up to its force-field charge (with one charge for the whole
    shell, the `organic` model moved 0.9 e onto a valine across chorismate mutase's active site) and the model's
    Coulomb and contact terms act between them (they did not: one chain was one molecule)."""
    ff = MMForceField.from_pdb(PEPTIDE)
    part = qmml.partition(ff.system, SIDE_CHAINS, charge=0, allow_multiple_links=True,
                          shell="resname ACE NME or byres (resname HOH and around 3.0 resname HIS)")
    s, shell = ff.system, part.shell
    pieces = {s.resnames[a]: f for a, f in zip(shell.atoms, shell.fragments) if s.resnames[a] in ("ACE", "NME")}
    assert pieces["ACE"] != pieces["NME"] and len(np.unique(shell.fragments)) == 2 + np.sum(
        (s.resnames[shell.atoms] == "HOH") & (s.elements[shell.atoms] == "O"))
    environment = qmml.LayeredEnvironment(qmml.load_model("organic").double(), ff, platform="Reference")
    evaluation = environment.evaluate(s.positions, part, "additive", forces=False)
    charges = np.zeros(s.n_atoms)
    charges[part.env_atoms] = evaluation.charges
    for piece in np.unique(shell.fragments):
        atoms = shell.atoms[shell.fragments == piece]
        assert charges[atoms].sum() == pytest.approx(s.charges[atoms].sum(), abs=1e-6), s.atom_label(atoms[0])
    setup = environment.ml._prepare(part, "additive")
    view = setup["view"]
    view_pieces = setup["molecules"][:len(view)][np.isin(view, np.flatnonzero(np.isin(s.resnames, ["ACE", "NME"])))]
    assert len(np.unique(view_pieces)) == 2


def test_the_shell_boundary_keeps_shell_waters_in_and_mm_waters_out(three_layers):
    """The flat-bottomed wall is zero for the partition's own geometry, pulls a shell water that left back and
    pushes an MM water that came in out, with forces that are its energy's derivatives."""
    from qmml.sampling import ShellBoundaryRestraint

    ff, _, ham = three_layers
    part = qmml.partition(ff.system, SIDE_CHAINS, charge=0, allow_multiple_links=True, shell_radius_A=4.0)
    with pytest.raises(InputError, match="no radius separates"):
        ShellBoundaryRestraint(ham.partition)  # that shell is a distance shell around His, not the QM region
    wall = ShellBoundaryRestraint(part, force_constant=5.0)
    x = ff.system.positions
    assert wall.compute(x)[0] == 0.0 and wall.inner_molecule.sum() > 3 and (~wall.inner_molecule).sum() > 100
    inner, outer = wall.atoms[0], wall.atoms[-1]
    moved = x.copy()
    centre = x[part.qm_atoms].mean(axis=0)
    for atom, shift in ((inner, 3.0 * (x[inner] - centre) / np.linalg.norm(x[inner] - centre)),
                        (outer, x[part.qm_atoms[0]] + [3.0, 0.0, 0.0] - x[outer])):
        moved[ff.system.molecule_index == ff.system.molecule_index[atom]] += shift
    energy, forces = wall.compute(moved)
    assert energy > 0.1
    h, rng = 1e-5, np.random.default_rng(1)
    for atom in (inner, outer, part.qm_atoms[0]):
        d = np.zeros_like(moved)
        d[atom] = rng.normal(size=3)
        slope = (wall.compute(moved + h * d)[0] - wall.compute(moved - h * d)[0]) / (2 * h)
        assert abs(-slope - np.sum(forces * d)) < 1e-6
    assert np.abs(forces.sum(axis=0)).max() < 1e-10
    restrained = qmml.Restrained(ham, [wall])
    assert restrained.partition is ham.partition


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["subtractive", "additive"])
def test_three_layer_forces_match_finite_differences_at_every_boundary(three_layers, scheme):
    """In the additive scheme the model caps the shell's side of the QM/ML cut and the force field holds the bond."""
    ff, part, ham = three_layers
    ham = qmml.Hamiltonian(part, ham.qm, ham.environment, scheme=scheme)
    x = ff.system.positions
    result = ham.compute(x)
    s = ff.system
    shell_waters = [a for a in part.shell_atoms if s.resnames[a] == "HOH" and s.elements[a] == "O"]
    edge = max(shell_waters, key=lambda a: np.linalg.norm(x[a] - x[24]))
    mm_oxygens = [a for a in part.mm_atoms if s.resnames[a] == "HOH" and s.elements[a] == "O"]
    outside = min(mm_oxygens, key=lambda a: np.linalg.norm(x[a] - x[edge]))
    atoms = {"QM O (Ser OG)": 13, "QM/MM link M1 (Ser CA)": 8, "QM/ML link M1 (His CA)": 19,
             "QM/ML link Q1 (His CB)": 21, "ML/MM cap, shell side (His N)": 17, "ML/MM cap, MM side (Ser C)": 15,
             "shell water at the edge": edge, "MM water at the edge": outside, "Ace methyl C": 0}
    if scheme == "additive":  # what the scheme changes: the QM-shell coupling and the QM/ML cut (CI time)
        atoms = {k: v for k, v in atoms.items() if k.startswith(("QM O", "QM/ML", "ML/MM cap, shell", "shell"))}
    rng = np.random.default_rng(7)
    h = 2e-4
    errors = {}
    for label, a in atoms.items():
        d = np.zeros_like(x)
        d[a] = rng.normal(size=3)
        d[a] /= np.linalg.norm(d[a])
        slope = (ham.compute(x + h * d, forces=False).energy - ham.compute(x - h * d, forces=False).energy) / (2 * h)
        errors[label] = abs(-slope - float(np.sum(result.forces * d)))
    print(scheme, {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-4
    assert np.abs(result.forces.sum(0)).max() < 1e-3  # no net force on the open system


@pytest.mark.slow
def test_three_layers_in_a_periodic_box_have_exact_forces_and_stress():
    """128 TIP3P waters (PME): one QM water, the waters within 3 Å in the ML shell, the rest MM; the QM
    region's Ewald embedding sees ML and MM charges."""
    ff = MMForceField.from_pdb(WATER_BOX, cutoff_A=7.0)
    part = qmml.partition(ff.system, "resid 1", charge=0, shell="byres around 3.0 resid 1")
    engine = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-11, near_field_A=6.0, near_field_width_A=1.0)
    environment = qmml.LayeredEnvironment(qmml.load_model("organic").double(), ff, platform="Reference")
    ham = qmml.Hamiltonian(part, engine, environment)
    x, box = ff.system.positions, ff.system.cell
    result = ham.compute(x)

    def energy(p, c=None):
        return ham.compute(p, forces=False, cell=c).energy

    shell_o = [a for a in part.shell_atoms if ff.system.elements[a] == "O"]
    mm_o = min((a for a in part.mm_atoms if ff.system.elements[a] == "O"), key=lambda a: np.linalg.norm(x[a] - x[0]))
    h, error = 2e-4, 0.0
    for a in (0, shell_o[0], mm_o):
        for k in range(3):
            step = np.zeros_like(x)
            step[a, k] = h
            error = max(error, abs(-(energy(x + step) - energy(x - step)) / (2 * h) - result.forces[a, k]))
    strain = finite_strain_derivative(lambda deformation: energy(x @ deformation, box @ deformation), step=1e-4)
    strain = 0.5 * (strain + strain.T)
    stress_error = np.abs(strain / abs(np.linalg.det(box)) - result.stress).max() * units.EV_PER_A3_GPA
    print(f"QM/ML/MM periodic: force error {error:.1e} eV/Å, stress error {stress_error:.1e} GPa")
    assert error < 1e-4
    assert stress_error < 1e-3
    # without the MM stress (fixed volume): the same forces, no stress, and constant pressure refuses
    no_stress = qmml.Hamiltonian(part, engine, qmml.LayeredEnvironment(environment.model, ff, platform="Reference",
                                                                      stress=False))
    fixed_volume = no_stress.compute(x)
    assert fixed_volume.stress is None and np.abs(fixed_volume.forces - result.forces).max() < 1e-8
    barostat = qmml.Langevin(0.5, 300, barostat=qmml.StochasticCellRescaling(pressure_bar=1.0))
    with pytest.raises(InputError, match="stress"):
        qmml.Simulation(no_stress, barostat, temperature_K=300, progress=False).run(1)


@pytest.mark.slow
def test_three_layer_nve_conserves_energy():
    """Velocity Verlet (0.5 fs; 0.15 ps, or 0.5 ps with QMML_NVE_STEPS=1000) on a methanol-sized QM region (Ser side chain, HF/STO-3G) with His and
    the waters next to Ser as the ML shell: drift below 2e-6 Eh/ps per atom."""
    ff = MMForceField.from_pdb(PEPTIDE)
    part = qmml.partition(ff.system, "resname SER and name CB HB2 HB3 OG HG", charge=0,
                          shell="resname HIS or byres (resname HOH and around 2.6 resname SER)")
    engine = qmml.PySCFEngine("hf", "sto-3g", conv_tol=1e-10)
    environment = qmml.LayeredEnvironment(qmml.load_model("organic").double(), ff, platform="Reference")
    ham = qmml.Hamiltonian(part, engine, environment, scheme="subtractive")
    n = ff.system.n_atoms
    sim = qmml.Simulation(ham, qmml.VelocityVerlet(0.5), temperature_K=300, seed=3, progress=False)
    totals, times = [], []
    for _ in range(N_NVE_STEPS):
        sim.state = sim.integrator.step(ham, sim.state, sim.masses)
        totals.append(sim.state.potential_energy + sim.kinetic_energy())
        times.append(sim.state.time_fs / 1000)
    slope = np.polyfit(times, totals, 1)[0] / units.HARTREE_EV / n
    print(f"QM/ML/MM NVE, {times[-1]:.2f} ps: drift {slope:.1e} Eh/ps/atom, fluctuation {np.std(totals):.1e} eV")
    assert abs(slope) < 2e-6
