"""Regression tests of the reliability audit (shared/research/reliability_audit.md): every case it found
handled badly, tried again as a new user would.  Each asserts the exit status (or the exception), the one
line of the message with the atom or key it names, and that no file was corrupted or overwritten.

Base job: one HF/STO-3G QM water among three ML waters (the audit's ``base.yaml``).
"""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

import qmml
from qmml.cli import EXIT_INPUT_ERROR, EXIT_STOPPED, EXIT_UNSTABLE, main
from qmml.md import read_checkpoint, read_thermo

WATERS = [(0.0, 0.0, 0.0), (3.0, 0.2, 0.1), (0.1, 3.1, -0.2), (3.1, 2.9, 0.3)]
HYDROGENS = [(0.757, 0.586, 0.0), (-0.757, 0.586, 0.0)]


def water_pdb(path, *, box=None, move=None):
    """Four waters (resid 1-4); ``move`` = {atom index: (x, y, z)} replaces positions."""
    rows, k = [], 0
    if box is not None:
        rows.append("CRYST1" + "".join(f"{v:9.3f}" for v in box[:3]) + "".join(f"{v:7.2f}" for v in box[3:]) +
                    " P 1           1")
    for resid, centre in enumerate(WATERS, start=1):
        for name, element, offset in (("OW", "O", (0, 0, 0)), ("HW1", "H", HYDROGENS[0]), ("HW2", "H", HYDROGENS[1])):
            xyz = (move or {}).get(k, np.add(centre, offset))
            x, y, z = (f"{v:8.3f}" for v in xyz)
            rows.append(f"ATOM  {k + 1:5d} {name:<4s} HOH A{resid:4d}    {x}{y}{z}  1.00  0.00          {element:>2s}")
            k += 1
    rows.append("END")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_job(folder, name="job.yaml", *, structure="w4.pdb", md=True, extra=""):
    if not (folder / "w4.pdb").exists():
        water_pdb(folder / "w4.pdb")
    text = (f"structure: {structure}\nguess_bonds: true\n"
            "qm: {selection: 'resid 1', charge: 0, method: hf, basis: sto-3g}\n"
            "environment: {type: ml, model: water}\n")
    if md:
        text += ("task: md\nmd: {integrator: langevin, timestep_fs: 0.5, steps: 10, checkpoint_every: 5, "
                 "trajectory_every: 2, progress: false, seed: 3}\n")
    path = folder / name
    path.write_text(text + extra)
    return path


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def folder_md5(folder) -> dict:
    return {p.name: md5(p) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 10-step run of the base job (copy it before changing anything)."""
    folder = tmp_path_factory.mktemp("base")
    job = write_job(folder)
    assert main(["run", str(job), "--set", "md.run_dir=r_base"]) == 0
    return folder / "r_base"


@pytest.fixture
def run_copy(finished, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(finished, target)
    return target


@pytest.fixture(scope="module")
def partitioned():
    """The base system as an API user builds it: Hamiltonian and partition."""
    system = qmml.System.from_arrays(["O", "H", "H"] * 4, [np.add(c, o) for c in WATERS for o in [(0, 0, 0), *HYDROGENS]],
                                     residues=np.repeat([1, 2, 3, 4], 3), bonds=[(3 * i, 3 * i + j) for i in range(4)
                                                                                 for j in (1, 2)])
    part = qmml.partition(system, "resid 1", charge=0)
    ham = qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), qmml.load_model("water"))
    return system, ham


# -- 1. MD checks its own physics ---------------------------------------------------------------
@pytest.mark.parametrize("integrator", ["velocity_verlet", "langevin"])
def test_a_5_fs_step_on_water_stops_with_status_3_and_keeps_the_last_good_step(tmp_path, capsys, integrator):
    job = write_job(tmp_path)
    status = main(["run", str(job), "--set", "md.timestep_fs=5", "--set", "md.steps=60", "--set",
                   f"md.integrator={integrator}", "--set", "md.run_dir=x1", "--set", "md.checkpoint_every=1"])
    line = one_line(capsys.readouterr().err)
    assert status == EXIT_UNSTABLE
    assert "MD stopped at step" in line and "atom" in line and "the checkpoint holds step" in line
    tripped = int(line.split("MD stopped at step ")[1].split()[0])
    thermo = read_thermo(tmp_path / "x1" / "thermo.csv")
    state, _ = read_checkpoint(tmp_path / "x1" / "checkpoint.npz")
    assert state.step == thermo["step"][-1] == tripped - 1
    assert all(np.isfinite(values).all() for values in thermo.values())
    assert np.isfinite(state.positions).all() and np.isfinite(state.potential_energy)
    assert thermo["temperature_K"].max() < 5 * 300 or integrator == "velocity_verlet"


@pytest.mark.parametrize("speed", [0.5, 50.0, 1e300])
def test_absurd_starting_velocities_are_refused_before_any_step(partitioned, speed):
    system, ham = partitioned
    with pytest.raises(qmml.InputError, match=r"starting velocities give .* K, above the guard's limit of 3000 K"):
        qmml.Simulation(ham, qmml.Langevin(0.5, 300.0), velocities=np.full((12, 3), speed), progress=False)


def test_a_runaway_temperature_through_the_api_raises_with_the_fastest_atoms(partitioned):
    system, ham = partitioned
    velocities = np.zeros((12, 3))
    velocities[4] = [0.12, 0.0, 0.0]  # one hydrogen at about 2,900 K worth of kinetic energy on 12 atoms
    sim = qmml.Simulation(ham, qmml.Langevin(0.5, 20.0), velocities=velocities, progress=False)  # limit 5 x 20 K
    with pytest.raises(qmml.UnstableDynamicsError, match=r"kinetic temperature .* above the limit .*fastest atom 4 "):
        sim.run(3)
    assert sim.state.step == 0


def test_an_environment_water_losing_a_proton_stops_the_run_but_a_qm_bond_may_break(partitioned):
    """An environment O-H (atoms 3-4) at 1.60 Å is beyond 1.5 x the covalent radii (1.46 Å): the step raises,
    naming both atoms, and nothing advances.  The same stretch of a QM bond (atoms 0-1) is the QM region's
    chemistry and runs; 1.40 Å in the environment is still a water."""
    system, ham = partitioned
    x = system.positions.copy()
    for atoms, length, breaks in (((3, 4), 1.60, True), ((0, 1), 1.60, False), ((3, 4), 1.40, False)):
        o, h = atoms
        moved = x.copy()
        moved[h] = x[o] + length * (x[h] - x[o]) / np.linalg.norm(x[h] - x[o])
        sim = qmml.Simulation(ham, qmml.Langevin(0.25, 300.0, seed=1), positions=moved, temperature_K=300.0,
                              progress=False)
        if breaks:
            with pytest.raises(qmml.UnstableDynamicsError, match=r"the bond atom 3 \(O.*\) - atom 4 \(H.*\) is 1\.\d\d Å long, "
                                                                 r"more than max_bond_factor=1\.5"):
                sim.run(1)
            assert sim.state.step == 0
        else:
            sim.run(1)
            assert sim.state.step == 1
    with pytest.raises(qmml.InputError, match="max_bond_factor"):
        qmml.md.StepGuard(max_bond_factor=0.9)


def test_two_environment_atoms_fusing_stop_the_run(partitioned):
    """Water 4 moved rigidly until its oxygen (atom 9) sits 0.55 Å from a hydrogen of water 3 (atom 7), less than
    0.7 x their covalent radii (0.68 Å): the step raises naming both; at 1.0 Å (a very strong hydrogen bond) the
    step runs.  `close_contacts` finds pairs across a periodic boundary too."""
    from qmml.md.guard import close_contacts

    system, ham = partitioned
    x = system.positions.copy()
    for gap, fuses in ((0.55, True), (1.0, False)):
        moved = x.copy()
        target = x[7] + gap * (x[7] - x[6]) / np.linalg.norm(x[7] - x[6])
        moved[9:12] += target - x[9]
        sim = qmml.Simulation(ham, qmml.Langevin(0.01, 300.0, seed=1), positions=moved, temperature_K=300.0,
                              progress=False)
        if fuses:
            with pytest.raises(qmml.UnstableDynamicsError, match=r"atom 7 \(H.*\) and atom 9 \(O.*\) are 0\.5\d Å apart"):
                sim.run(1)
        else:
            sim.run(1)
    cell = np.eye(3) * 10.0
    pair = close_contacts([11, 17, 8], [[0.2, 5, 5], [9.0, 5, 5], [5, 5, 5]], cell, 0.7)  # Na-Cl 1.2 Å via the image
    assert pair.shape == (1, 3) and tuple(pair[0, :2]) == (0, 1) and pair[0, 2] == pytest.approx(1.2)
    assert len(close_contacts([11, 17], [[0.2, 5, 5], [9.0, 5, 5]], None, 0.7)) == 0  # open: 8.8 Å apart


def test_zero_electrons_is_an_input_error_before_any_scf(tmp_path, capsys):
    job = write_job(tmp_path)
    status = main(["run", str(job), "--set", "qm.charge=10", "--set", "md.run_dir=x"])
    line = one_line(capsys.readouterr().err)
    assert status == EXIT_INPUT_ERROR and "leaves 0 electrons" in line and "at most +9" in line
    assert not (tmp_path / "x").exists()


def test_charge_plus_20_says_one_thing(tmp_path, capsys):
    job = write_job(tmp_path, md=False)
    assert main(["run", str(job), "--set", "qm.charge=20"]) == EXIT_INPUT_ERROR
    line = one_line(capsys.readouterr().err)
    assert "leaves -10 electrons" in line and "multiplicity" not in line


def test_more_electrons_than_the_basis_holds_is_refused(partitioned):
    system, _ = partitioned
    part = qmml.partition(system, "resid 1", charge=-6)  # 16 electrons in STO-3G water's 7 orbitals
    with pytest.raises(qmml.InputError, match=r"16 electrons .* basis='sto-3g' has 7 orbitals"):
        qmml.Hamiltonian(part, qmml.PySCFEngine("hf", "sto-3g"), qmml.load_model("water"))


@pytest.mark.parametrize("guess_bonds", ["false", "true"])
def test_an_environment_oxygen_on_a_qm_hydrogen_is_named(tmp_path, capsys, guess_bonds):
    water_pdb(tmp_path / "ov.pdb", move={3: np.add(WATERS[0], HYDROGENS[0])})
    job = write_job(tmp_path, structure="ov.pdb")
    status = main(["run", str(job), "--set", f"guess_bonds={guess_bonds}", "--set", "md.run_dir=x2"])
    line = one_line(capsys.readouterr().err)
    assert status == EXIT_INPUT_ERROR
    assert "atom 1 (HW1, HOH 1) and atom 3 (OW, HOH 2) are 0.000 Å apart" in line
    assert not (tmp_path / "x2").exists()


def test_nan_on_a_qm_atom_through_the_api_names_it(partitioned):
    system, ham = partitioned
    x = system.positions.copy()
    x[1, 2] = np.nan
    with pytest.raises(qmml.InputError, match=r"position of atom 1 \(H, UNK 1\) is not finite"):
        ham.compute(x)


def test_nan_on_environment_atom_5_names_atom_5(partitioned):
    system, ham = partitioned
    x = system.positions.copy()
    x[5] = np.nan
    with pytest.raises(qmml.InputError, match=r"position of atom 5 \(H, UNK 2\) is not finite"):
        ham.compute(x)


def test_two_qm_atoms_at_one_place_through_the_api(partitioned):
    system, _ = partitioned
    x = system.positions.copy()
    x[2] = x[0]
    with pytest.raises(qmml.InputError, match=r"atom 0 \(O, UNK 1\) and atom 2 \(H, UNK 1\) are 0.000 Å apart"):
        qmml.partition(system.with_positions(x), "resid 1", charge=0)


# -- 2. restarts check the physics they continue -----------------------------------------------
@pytest.mark.parametrize("edit, key", [("timestep_fs: 0.5", "md.timestep_fs"), ("basis: sto-3g", "qm.basis"),
                                       ("selection: resid 1", "qm.selection")])
def test_a_restart_after_editing_config_yaml_is_refused_naming_the_change(run_copy, capsys, edit, key):
    config = run_copy / "config.yaml"
    replaced = {"timestep_fs: 0.5": "timestep_fs: 2.0", "basis: sto-3g": "basis: 3-21g",
                "selection: resid 1": "selection: resid 2"}[edit]
    assert edit in config.read_text()
    config.write_text(config.read_text().replace(edit, replaced))
    before = folder_md5(run_copy)
    status = main(["restart", str(run_copy), "--set", "md.steps=14"])
    line = one_line(capsys.readouterr().err)
    assert status == EXIT_INPUT_ERROR and key in line and "--allow-changes" in line
    assert folder_md5(run_copy) == before


def test_allow_changes_continues_and_records_the_change(run_copy, capsys):
    config = run_copy / "config.yaml"
    config.write_text(config.read_text().replace("temperature_K: 300.0", "temperature_K: 310.0"))
    before = config.read_text()
    assert main(["restart", str(run_copy), "--allow-changes", "--set", "md.steps=12"]) == 0
    assert config.read_text() == before  # never rewritten
    history = qmml.run_folder.read_history(run_copy)
    assert history[-1]["accepted_changes"]["md.temperature_K"] == {"before": 300.0, "after": 310.0}
    assert read_thermo(run_copy / "thermo.csv")["step"][-1] == 12
    # the new checkpoint belongs to the new physics: a plain restart now goes on without complaint
    assert main(["restart", str(run_copy), "--set", "md.steps=13"]) == 0


def test_a_changed_structure_file_is_caught_by_its_hash(tmp_path, capsys):
    job = write_job(tmp_path)
    assert main(["run", str(job), "--set", "md.run_dir=r", "--set", "md.steps=5"]) == 0
    water_pdb(tmp_path / "w4.pdb", move={11: (3.8, 3.6, 0.3)})
    assert main(["restart", str(tmp_path / "r"), "--set", "md.steps=8"]) == EXIT_INPUT_ERROR
    assert "structure.sha256" in one_line(capsys.readouterr().err)


def test_restart_with_fewer_steps_rewrites_nothing(run_copy, capsys):
    before = folder_md5(run_copy)
    assert main(["restart", str(run_copy), "--set", "md.steps=5"]) == 0
    assert "already at step 10 of 5" in capsys.readouterr().out
    assert folder_md5(run_copy) == before


def test_a_failed_restart_rewrites_nothing(run_copy, capsys):
    before = folder_md5(run_copy)
    assert main(["restart", str(run_copy), "--set", "md.steps=12", "--set", "qm.basis=3-21g"]) == EXIT_INPUT_ERROR
    assert "a restart may change only md.steps" in one_line(capsys.readouterr().err)
    (run_copy / "checkpoint.npz").write_bytes(b"damaged")
    before = folder_md5(run_copy)
    assert main(["restart", str(run_copy), "--set", "md.steps=12"]) == EXIT_INPUT_ERROR
    assert "not a readable qmml checkpoint" in one_line(capsys.readouterr().err)
    assert folder_md5(run_copy) == before


def test_an_extended_run_remembers_its_new_length(run_copy):
    assert main(["restart", str(run_copy), "--set", "md.steps=12"]) == 0
    assert main(["restart", str(run_copy)]) == 0  # nothing to do: the history says 12
    assert read_thermo(run_copy / "thermo.csv")["step"][-1] == 12
    assert [e["command"] for e in qmml.run_folder.read_history(run_copy)] == ["run", "restart"]


# -- 3. one process per run folder --------------------------------------------------------------
def hold_lock(folder):
    code = ("import sys, time; from qmml.run_folder import RunFolderLock\n"
            f"with RunFolderLock({str(folder)!r}):\n    print('held', flush=True); time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(run_copy, capsys):
    holder = hold_lock(run_copy)
    try:
        before = folder_md5(run_copy)
        assert main(["restart", str(run_copy), "--set", "md.steps=12"]) == EXIT_INPUT_ERROR
        line = one_line(capsys.readouterr().err)
        assert f"in use by another qmml process (PID {holder.pid} " in line
        assert folder_md5(run_copy) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["restart", str(run_copy), "--set", "md.steps=12"]) == 0  # the kernel dropped the dead one's lock
    assert read_thermo(run_copy / "thermo.csv")["step"][-1] == 12


def test_two_runs_into_one_new_folder(tmp_path, capsys):
    job = write_job(tmp_path)
    (tmp_path / "x").mkdir()
    holder = hold_lock(tmp_path / "x")
    try:
        assert main(["run", str(job), "--set", "md.run_dir=x"]) == EXIT_INPUT_ERROR
        assert f"PID {holder.pid}" in one_line(capsys.readouterr().err)
        assert not (tmp_path / "x" / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()


def test_two_restarts_at_once_leave_no_duplicated_rows(run_copy):
    command = [sys.executable, "-m", "qmml.cli", "restart", str(run_copy), "--set", "md.steps=40"]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    second = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    results = sorted([(first.wait(timeout=300), first.stderr.read()), (second.wait(timeout=300), second.stderr.read())])
    assert results[0][0] == 0 and results[1][0] == EXIT_INPUT_ERROR
    assert "in use by another qmml process" in results[1][1]
    steps = read_thermo(run_copy / "thermo.csv")["step"]
    assert list(steps) == list(range(41))


# -- 4. non-finite or degenerate input ----------------------------------------------------------
def test_nan_coordinates_in_a_pdb_name_the_atom(tmp_path, capsys):
    water_pdb(tmp_path / "nan.pdb")
    text = (tmp_path / "nan.pdb").read_text().splitlines()
    text[4] = text[4][:30] + f"{'nan':>8s}" + text[4][38:]
    (tmp_path / "nan.pdb").write_text("\n".join(text) + "\n")
    job = write_job(tmp_path, structure="nan.pdb")
    assert main(["run", str(job), "--set", "md.run_dir=x5"]) == EXIT_INPUT_ERROR
    line = one_line(capsys.readouterr().err)
    assert "nan.pdb: the position of atom 4 (HW1) is not finite" in line
    assert not (tmp_path / "x5").exists()


def test_two_atoms_at_one_place_in_a_file(tmp_path, capsys):
    water_pdb(tmp_path / "ov.pdb", move={6: WATERS[1]})
    job = write_job(tmp_path, structure="ov.pdb")
    assert main(["run", str(job), "--set", "md.run_dir=x6"]) == EXIT_INPUT_ERROR
    assert "atom 3 (OW, HOH 2) and atom 6 (OW, HOH 3) are 0.000 Å apart" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("box, message", [("[10,10,10,0,90,90]", "box angles must lie between 0 and 180"),
                                          ("[10,10,10,90,90,179.9]", "do not form a cell"),
                                          ("[.nan,10,10]", "key 'box"), ("[10,.inf,10]", "key 'box")])
def test_bad_box_angles_and_non_finite_boxes(tmp_path, capsys, box, message):
    job = write_job(tmp_path, md=False)
    assert main(["run", str(job), "--set", f"box={box}"]) == EXIT_INPUT_ERROR
    assert message in one_line(capsys.readouterr().err)


def test_a_model_with_nan_weights_is_refused_at_load(tmp_path, capsys):
    from qmml.ml.io import model_path

    blob = torch.load(model_path("water"), weights_only=True)
    key = next(k for k, v in blob["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    blob["state_dict"][key] = blob["state_dict"][key].clone().fill_(float("nan"))
    torch.save(blob, tmp_path / "nanweights.pt")
    job = write_job(tmp_path, md=False)
    assert main(["run", str(job), "--set", "environment.model=nanweights.pt"]) == EXIT_INPUT_ERROR
    line = one_line(capsys.readouterr().err)
    assert "environment.model" in line and key in line and "not finite" in line


# -- 6. operating-system errors ------------------------------------------------------------------
def test_a_run_dir_that_is_a_file(tmp_path, capsys):
    job = write_job(tmp_path)
    (tmp_path / "r_isfile").write_text("mine")
    assert main(["run", str(job), "--set", "md.run_dir=r_isfile"]) == EXIT_INPUT_ERROR
    assert "is a file, not a folder" in one_line(capsys.readouterr().err)
    assert (tmp_path / "r_isfile").read_text() == "mine"


def test_a_run_dir_below_a_file(tmp_path, capsys):
    job = write_job(tmp_path)
    (tmp_path / "afile").write_text("mine")
    assert main(["run", str(job), "--set", "md.run_dir=afile/run"]) == EXIT_INPUT_ERROR
    assert "afile" in one_line(capsys.readouterr().err)


def unprivileged(*command):
    """``command`` without root's power to ignore file modes (the audit's setpriv)."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not available")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]


@pytest.mark.parametrize("where", ["parent", "run folder", "restart"])
def test_read_only_folders_give_one_line(tmp_path, finished, where):
    if where in ("parent", "run folder"):
        ro = tmp_path / "ro"
        ro.mkdir()
        job = write_job(ro)
        target = ro / "job_run"
        if where == "run folder":  # an empty, read-only run folder made beforehand
            target = ro / "run"
            target.mkdir()
            ro = target
        ro.chmod(0o555)
        command = unprivileged(sys.executable, "-m", "qmml.cli", "run", str(job), "--set", f"md.run_dir={target}")
    else:
        ro = tmp_path / "run"
        shutil.copytree(finished, ro)
        for p in ro.iterdir():
            p.chmod(0o444)
        ro.chmod(0o555)
        command = unprivileged(sys.executable, "-m", "qmml.cli", "restart", str(ro), "--set", "md.steps=12")
    before = folder_md5(ro)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        ro.chmod(0o755)
    if "Operation not permitted" in done.stderr and "setpriv" in done.stderr:
        pytest.skip("cannot drop capabilities here")
    assert done.returncode == EXIT_INPUT_ERROR, done.stderr
    line = one_line(done.stderr)
    assert "Permission denied" in line and "check the permissions" in line
    assert folder_md5(ro) == before


def test_a_file_size_limit_stops_with_one_line_and_a_valid_checkpoint(tmp_path):
    job = write_job(tmp_path)
    command = (f"ulimit -f 24; exec {sys.executable} -m qmml.cli run {job} --set md.run_dir=x8 --set md.steps=80 "
               "--set md.trajectory_every=1 --set md.checkpoint_every=2")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_INPUT_ERROR, done.stderr
    line = one_line(done.stderr)
    assert "File too large" in line and "file-size limit" in line
    state, _ = read_checkpoint(tmp_path / "x8" / "checkpoint.npz")
    assert 0 < state.step < 80 and np.isfinite(state.positions).all()
    assert main(["restart", str(tmp_path / "x8"), "--set", "md.steps=" + str(state.step + 2)]) == 0


# -- 7. i-PI --------------------------------------------------------------------------------------
def test_an_ipi_server_that_resets_the_connection(partitioned):
    from qmml.interfaces.ipi import IPIClient, IPIConnectionError

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def reset():
        conn, _ = server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # linger 0: the peer sees a reset, not a clean close

    thread = threading.Thread(target=reset)
    thread.start()
    _, ham = partitioned
    client = IPIClient(ham, "127.0.0.1", port=server.getsockname()[1], connect_timeout_s=10)
    with pytest.raises(IPIConnectionError, match="i-PI (broke the connection|closed the)"):
        client.run()
    thread.join()
    server.close()
    assert client._sock is None


# -- 8. bounds --------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, key", [("qm.conv_tol=.inf", "qm.conv_tol"), ("qm.conv_tol=.nan", "qm.conv_tol"),
                                          ("md.temperature_K=.nan", "md.temperature_K"),
                                          ("md.friction_per_ps=.inf", "md.friction_per_ps"),
                                          ("md.guard.max_displacement_A=0", "md.guard.max_displacement_A"),
                                          ("md.steps=100000000000", "md.steps")])
def test_non_finite_and_out_of_range_settings(tmp_path, capsys, setting, key):
    job = write_job(tmp_path)
    assert main(["run", str(job), "--set", setting, "--set", "md.run_dir=x"]) == EXIT_INPUT_ERROR
    assert f"key '{key}'" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("make, message", [
    (lambda: qmml.VelocityVerlet(500), r"timestep_fs=500 must be above 0 and at most 10 \(fs\)"),
    (lambda: qmml.VelocityVerlet(float("nan")), "timestep_fs=nan"),
    (lambda: qmml.Langevin(0.5, float("inf")), "temperature_K=inf"),
    (lambda: qmml.Langevin(0.5, 300, friction_per_ps=-1), "friction_per_ps=-1"),
    (lambda: qmml.StepGuard(max_displacement_A=float("nan")), "max_displacement_A=nan"),
    (lambda: qmml.PySCFEngine("hf", "sto-3g", conv_tol=float("inf")), r"conv_tol=inf must be above 0"),
    (lambda: qmml.PathIntegralLangevin(0.5, 300, 0), "n_beads=0"),
    (lambda: qmml.MultipleTimeStep(2.0, 10**6, None), "inner_steps=1000000"),
])
def test_constructors_refuse_what_the_schema_refuses(make, message):
    with pytest.raises(qmml.InputError, match=message):
        make()


def test_run_with_a_negative_number_of_steps(partitioned):
    _, ham = partitioned
    sim = qmml.Simulation(ham, qmml.VelocityVerlet(0.5), progress=False)
    with pytest.raises(qmml.InputError, match="n_steps=-5 must be at least 0"):
        sim.run(-5)


# -- 9. smaller defects -----------------------------------------------------------------------------
def test_sigterm_exits_with_the_stopped_status(tmp_path):
    job = write_job(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "qmml.cli", "run", str(job), "--set", "md.steps=100000",
                                "--set", "md.run_dir=x"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not ((tmp_path / "x" / "thermo.csv").exists() and
               (tmp_path / "x" / "thermo.csv").read_text().count("\n") > 3) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == EXIT_STOPPED
    assert read_checkpoint(tmp_path / "x" / "checkpoint.npz")[0].step == read_thermo(tmp_path / "x" / "thermo.csv")["step"][-1]


def test_a_trajectory_named_twice_leaves_no_folder(tmp_path, capsys):
    job = write_job(tmp_path)
    status = main(["run", str(job), "--set", "md.trajectory=[t.extxyz, sub/t.extxyz]", "--set", "md.run_dir=x"])
    assert status == EXIT_INPUT_ERROR
    assert "t.extxyz named more than once" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_a_job_that_cannot_start_leaves_no_half_made_folder(tmp_path, capsys):
    job = write_job(tmp_path)
    assert main(["run", str(job), "--set", "qm.method=nosuchfunctional", "--set", "md.run_dir=x"]) == EXIT_INPUT_ERROR
    one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_partition_fix_hints_name_flags_that_exist(capsys):
    from conftest import STRUCTURES

    args = ["partition", str(STRUCTURES / "butanol.psf"), str(STRUCTURES / "butanol.pdb"), "--qm", "name O1 HO1",
            "--charge", "0"]
    assert main(args) == EXIT_INPUT_ERROR
    line = one_line(capsys.readouterr().err)
    assert "--allow-polar-cuts for qmml partition" in line and "qm.allow_polar_cuts: true" in line
    assert main(args + ["--allow-polar-cuts"]) == 0


def test_help_documents_every_exit_status(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for status in (0, 2, EXIT_UNSTABLE, EXIT_STOPPED, 130):
        assert f"\n  {status:3d}  " in out


# -- 10. noticed in earlier work -------------------------------------------------------------------
def test_a_residue_split_in_the_file_is_warned_about(tmp_path):
    water_pdb(tmp_path / "split.pdb")
    lines = (tmp_path / "split.pdb").read_text().splitlines()
    lines[2], lines[4] = lines[4], lines[2]  # HW2 of water 1 after the first atom of water 2
    lines[4] = lines[4][:22] + "   1" + lines[4][26:]
    lines[2] = lines[2][:22] + "   2" + lines[2][26:]
    lines[2], lines[3] = lines[3], lines[2]
    (tmp_path / "split.pdb").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"residue HOH 1 .*is split.*read as two residues"):
        qmml.load_system(tmp_path / "split.pdb")


def test_tblite_runs_within_its_thread_limit():
    pytest.importorskip("tblite")
    from threadpoolctl import threadpool_info

    from qmml.ml.labelling import XTBLabeller

    seen = []

    class Watching(XTBLabeller):
        def _label(self, positions_A):
            seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp")
            return super()._label(positions_A)

    water = np.add(WATERS[0], [(0, 0, 0), *HYDROGENS])
    one = Watching([8, 1, 1], threads=1)(water)
    assert seen and set(seen) == {1}
    assert abs(one.energy - XTBLabeller([8, 1, 1])(water).energy) < 1e-8


# -- the audit's cases that were already handled well, tried again ---------------------------------
JOB_FILE_CASES = [
    ("missing", None, "no such file"),
    ("empty", "", "expected a mapping"),
    ("yaml syntax", "qm: [unclosed\n", "is not valid YAML"),
    ("unknown key", "+qm.basiss=sto-3g", "did you mean 'basis'"),
    ("unknown top key", "+temperature=300", "key 'temperature'"),
    ("wrong type", "+qm.charge=abc", "key 'qm.charge'"),
    ("dt negative", "+md.timestep_fs=-1", "key 'md.timestep_fs'"),
    ("dt zero", "+md.timestep_fs=0", "key 'md.timestep_fs'"),
    ("dt nan", "+md.timestep_fs=.nan", "key 'md.timestep_fs'"),
    ("dt 500", "+md.timestep_fs=500", "the unit is fs"),
    ("T 1e6", "+md.temperature_K=1e6", "key 'md.temperature_K'"),
    ("T -5", "+md.temperature_K=-5", "key 'md.temperature_K'"),
    ("steps 0", "+md.steps=0", "key 'md.steps'"),
    ("steps -3", "+md.steps=-3", "key 'md.steps'"),
    ("integrator", "+md.integrator=verlet", "key 'md.integrator'"),
    ("no match", "+qm.selection=resname XXX", "resname XXX"),
    ("bad syntax", "+qm.selection=resid ((", "not valid MDAnalysis syntax"),
    ("index 99", "+qm.selection=[99]", "outside 0..11"),
    ("parity", "+qm.charge=1", "cannot have multiplicity 1"),
    ("multiplicity 0", "+qm.multiplicity=0", "key 'qm.multiplicity'"),
    ("method", "+qm.method=b3lypp", "b3lypp"),
    ("basis", "+qm.basis=nosuchbasis", "nosuchbasis"),
    ("model", "+environment.model=nosuchmodel", "no shipped model 'nosuchmodel'"),
    ("negative box", "+box=[-10,10,10]", "box lengths must be positive"),
    ("box 3 A", "+box=[3,3,3]", "the box is too small for the structure"),
    ("select all", "+qm.selection=all", "leaving no environment"),
    ("select none", "+qm.selection=[]", "selects no atom"),
]


@pytest.mark.parametrize("case, content, message", JOB_FILE_CASES, ids=[c[0] for c in JOB_FILE_CASES])
def test_audit_job_file_cases_stay_one_line(tmp_path, capsys, case, content, message):
    job = write_job(tmp_path)
    args = ["run", str(job), "--set", "md.run_dir=x"]
    if content is None:
        args[1] = str(tmp_path / "nothing.yaml")
    elif content.startswith("+"):
        args += ["--set", content[1:]]
    else:
        job.write_text(content)
    assert main(args) == EXIT_INPUT_ERROR
    assert message in one_line(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_audit_a_job_file_that_is_a_folder(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == EXIT_INPUT_ERROR
    assert "no such file" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("name, content, message", [
    ("image.pdb", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "could not read"),
    ("job.xyz", b"structure: w4.pdb\nqm: {selection: 'resid 1'}\n", "could not read"),
    ("w4.foo", b"whatever", "could not read"),
    ("truncated.pdb", None, None),
])
def test_audit_structure_files_that_are_not_structures(tmp_path, capsys, name, content, message):
    job = write_job(tmp_path, md=False)
    if content is None:
        lines = (tmp_path / "w4.pdb").read_text().splitlines(keepends=True)
        (tmp_path / name).write_text("".join(lines[:6]) + lines[6][:35])  # ends inside a coordinate
    else:
        (tmp_path / name).write_bytes(content)
    assert main(["run", str(job), "--set", f"structure={name}"]) == EXIT_INPUT_ERROR
    line = one_line(capsys.readouterr().err)
    assert name in line and (message is None or message in line)


def test_audit_an_ion_the_water_model_does_not_know(tmp_path, capsys):
    water_pdb(tmp_path / "w4.pdb")
    lines = (tmp_path / "w4.pdb").read_text().splitlines()
    lines.insert(-1, "HETATM   13 NA    NA B   5       6.000   6.000   6.000  1.00  0.00          NA")
    (tmp_path / "ion.pdb").write_text("\n".join(lines) + "\n")
    job = write_job(tmp_path, structure="ion.pdb", md=False)
    assert main(["run", str(job)]) == EXIT_INPUT_ERROR
    line = one_line(capsys.readouterr().err)
    assert "not ['Na']" in line and "model" in line


def test_audit_a_psf_with_a_pdb_of_another_system(tmp_path, capsys):
    from conftest import STRUCTURES

    job = write_job(tmp_path, md=False)
    assert main(["run", str(job), "--set", f"structure=[{STRUCTURES / 'butanol.psf'}, w4.pdb]"]) == EXIT_INPUT_ERROR
    assert "butanol.psf" in one_line(capsys.readouterr().err)


def test_audit_paths_with_spaces_and_non_ascii_letters_work(tmp_path, capsys):
    folder = tmp_path / "dossier é x"
    folder.mkdir()
    job = write_job(folder, md=False)
    assert main(["run", str(job), "--set", "output=sortie ü.extxyz"]) == 0
    assert (folder / "sortie ü.extxyz").is_file()


@pytest.mark.parametrize("damage", ["truncate", "random", "empty", "bitflip", "delete"])
def test_audit_a_damaged_checkpoint_is_refused_and_left_as_it_is(run_copy, capsys, damage):
    path = run_copy / "checkpoint.npz"
    data = path.read_bytes()
    if damage == "delete":
        path.unlink()
    else:
        path.write_bytes({"truncate": data[:len(data) // 2], "random": os.urandom(len(data)), "empty": b"",
                          "bitflip": data[:100] + bytes([data[100] ^ 0x40]) + data[101:]}[damage])
    before = folder_md5(run_copy)
    assert main(["restart", str(run_copy), "--set", "md.steps=12"]) == EXIT_INPUT_ERROR
    assert "checkpoint" in one_line(capsys.readouterr().err)
    assert folder_md5(run_copy) == before


@pytest.mark.parametrize("damage, status", [("delete", EXIT_INPUT_ERROR), ("short", EXIT_INPUT_ERROR), ("junk", 0)])
def test_audit_a_changed_thermo_log(run_copy, capsys, damage, status):
    thermo = run_copy / "thermo.csv"
    if damage == "delete":
        thermo.unlink()
    elif damage == "short":
        thermo.write_text("".join(thermo.read_text().splitlines(keepends=True)[:4]))
    else:
        thermo.write_text(thermo.read_text() + "11,5.5,junk\n")
    before = folder_md5(run_copy)
    assert main(["restart", str(run_copy), "--set", "md.steps=12"]) == status
    if status:
        assert "thermo.csv" in one_line(capsys.readouterr().err)
        assert folder_md5(run_copy) == before
    else:  # the junk after the checkpoint is cut off and the log goes on
        assert list(read_thermo(thermo)["step"]) == list(range(13))


@pytest.mark.parametrize("what", ["not a run folder", "corrupt config"])
def test_audit_restart_of_something_that_is_not_a_run(run_copy, tmp_path, capsys, what):
    target = tmp_path / "empty"
    target.mkdir()
    if what == "corrupt config":
        target = run_copy
        (target / "config.yaml").write_text("qm: [\n")
    assert main(["restart", str(target)]) == EXIT_INPUT_ERROR
    assert str(target) in one_line(capsys.readouterr().err)


def test_audit_a_model_file_with_a_pickle_payload_never_runs_it(tmp_path, capsys):
    import pickle

    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "x", "evil": Payload()}, tmp_path / "evil.pt", pickle_module=pickle)
    job = write_job(tmp_path, md=False)
    assert main(["run", str(job), "--set", "environment.model=evil.pt"]) == EXIT_INPUT_ERROR
    assert "evil.pt" in one_line(capsys.readouterr().err)
    assert not marker.exists()


def test_audit_an_scf_that_cannot_converge_keeps_the_checkpoint(tmp_path, capsys):
    job = write_job(tmp_path)
    assert main(["run", str(job), "--set", "qm.conv_tol=1e-30", "--set", "md.run_dir=x"]) == EXIT_INPUT_ERROR
    assert "SCF" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # the first step failed: nothing was started


@pytest.mark.parametrize("positions", [np.zeros((11, 3)), np.zeros((12, 2)), np.zeros(36)])
def test_audit_positions_of_the_wrong_shape(partitioned, positions):
    _, ham = partitioned
    with pytest.raises(qmml.InputError, match="shape"):
        ham.compute(positions)


def test_audit_lists_and_float32_give_the_same_energy(partitioned):
    system, ham = partitioned
    reference = ham.compute(system.positions).energy
    assert ham.compute(system.positions.tolist()).energy == pytest.approx(reference, abs=1e-9)
    assert ham.compute(system.positions.astype(np.float32)).energy == pytest.approx(reference, abs=1e-3)
