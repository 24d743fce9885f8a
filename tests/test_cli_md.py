"""``qmml run`` for MD, ``qmml restart``, ``--set``, and runs killed with SIGKILL or stopped with SIGTERM."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from conftest import DATA, STRUCTURES
from qmml.cli import EXIT_STOPPED, main
from qmml.md import read_checkpoint, read_thermo
from qmml.units import BOLTZMANN_EV_PER_K

# the main job's system with a cheap QM method, so that a run takes seconds
JOB = f"""
structure: [{STRUCTURES / 'sn2_water.psf'}, {STRUCTURES / 'sn2_water.pdb'}]
qm: {{selection: "resname CLA MCL", charge: -1, method: hf, basis: sto-3g, conv_tol: 1.0e-10}}
environment: {{type: ml, model: water}}
task: md
md:
  integrator: langevin
  timestep_fs: 0.5
  steps: 24
  seed: 4
  trajectory: [trajectory.extxyz, trajectory.xtc]
  trajectory_every: 2
  checkpoint_every: 5
  progress: false
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("job")
    path = folder / "job.yaml"
    path.write_text(JOB)
    return path


@pytest.fixture(scope="module")
def reference(job):
    """The uninterrupted run."""
    assert main(["run", str(job), "--set", "md.run_dir=reference"]) == 0
    return job.parent / "reference"


def assert_same_run(a, b):
    from test_md import assert_same_extxyz

    assert_same_extxyz(a / "trajectory.extxyz", b / "trajectory.extxyz")
    ta, tb = read_thermo(a / "thermo.csv"), read_thermo(b / "thermo.csv")
    for key in ta:
        if key != "wall_s":
            assert np.abs(ta[key] - tb[key]).max() < 1e-8, key
    import MDAnalysis as mda

    xa, xb = ([ts.positions.copy() for ts in mda.coordinates.XTC.XTCReader(str(d / "trajectory.xtc"))] for d in (a, b))
    assert len(xa) == len(xb) == 13 and np.abs(np.array(xa) - np.array(xb)).max() < 2e-3  # XTC precision


def test_md_run_writes_the_run_folder(reference):
    names = {p.name for p in reference.iterdir()}
    assert {"config.yaml", "thermo.csv", "thermo.png", "trajectory.extxyz", "trajectory.xtc", "checkpoint.npz"} <= names
    resolved = yaml.safe_load((reference / "config.yaml").read_text())
    assert resolved["md"]["run_dir"] == str(reference.resolve()) and resolved["qm"]["guess"] == "extrapolate"
    assert os.path.isabs(resolved["structure"][0])
    assert read_checkpoint(reference / "checkpoint.npz")[0].step == 24
    frame = (reference / "trajectory.extxyz").read_text().splitlines()[:3]
    assert frame[0] == "129" and "region:S:1:charges:R:1" in frame[1] and " QM " in frame[2]


def run_in_background(job, run_dir):
    return subprocess.Popen([sys.executable, "-m", "qmml.cli", "run", str(job), "--set", f"md.run_dir={run_dir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_rows(path, rows, process, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if path.is_file() and len(path.read_text().splitlines()) > rows:
            return
        if process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("the run did not get going")


def test_sigkill_mid_run_restarts_from_the_last_checkpoint(job, reference):
    killed = job.parent / "killed"
    process = run_in_background(job, "killed")
    wait_for_rows(killed / "thermo.csv", 13, process)  # past the checkpoints at steps 5 and 10
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = read_checkpoint(killed / "checkpoint.npz")[0]
    assert 5 <= state.step < 24
    # what a kill in the middle of writing leaves behind: half a frame, a half-written checkpoint
    with open(killed / "trajectory.extxyz", "a") as handle:
        handle.write("129\nProperties=species:S:1:pos:R:3 step=99\nO 1.0 2.0")
    (killed / ".checkpoint.npz.tmp").write_bytes(b"PK\x03\x04 half a zip file")
    assert main(["restart", str(killed)]) == 0
    assert_same_run(reference, killed)


def test_sigterm_checkpoints_then_restart_finishes_the_run(job, reference):
    stopped = job.parent / "stopped"
    process = run_in_background(job, "stopped")
    wait_for_rows(stopped / "thermo.csv", 8, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == EXIT_STOPPED  # stopped early: a scheduler can tell it from a finished run
    last_row = read_thermo(stopped / "thermo.csv")["step"][-1]
    assert read_checkpoint(stopped / "checkpoint.npz")[0].step == last_row < 24  # nothing lost, nothing extra
    assert main(["restart", str(stopped)]) == 0
    assert_same_run(reference, stopped)


def test_restart_extends_a_finished_run_with_set(job, reference, tmp_path):
    extended = tmp_path / "extended"
    shutil.copytree(reference, extended)
    assert main(["restart", str(extended), "--set", "md.steps=28"]) == 0
    assert read_thermo(extended / "thermo.csv")["step"][-1] == 28


def test_existing_run_folder_is_never_overwritten(job, reference, capsys):
    before = (reference / "thermo.csv").read_text()
    assert main(["run", str(job), "--set", "md.run_dir=reference"]) == 2
    err = capsys.readouterr().err
    assert "already exists and is never overwritten" in err and "qmml restart" in err
    assert (reference / "thermo.csv").read_text() == before


def test_path_integral_job_contracts_the_qm_region_and_restarts_exactly(job, capsys):
    settings = ["--set", "md.integrator=path_integral", "--set", "md.beads=4", "--set", "md.contracted_beads=1",
                "--set", "md.fast_model=organic", "--set", "md.timestep_fs=0.25", "--set", "md.steps=4", "--set", "md.checkpoint_every=2",
                "--set", "md.trajectory=[trajectory.extxyz]"]
    assert main(["run", str(job), *settings, "--set", "md.run_dir=pimd_whole"]) == 0
    out = capsys.readouterr().out
    assert "path_integral" in out and "4 beads, QM/ML on 1" in out and "mean quantum kinetic energy" in out
    whole = read_thermo(job.parent / "pimd_whole" / "thermo.csv")
    # 129 atoms at 300 K: the centroid-virial estimator is above the classical 3/2 N kT (zero-point motion)
    classical = 1.5 * 129 * 300 * BOLTZMANN_EV_PER_K
    assert np.all(whole["kinetic_virial_eV"] > classical)
    short = [*settings[:-6], "--set", "md.steps=2", "--set", "md.trajectory=[trajectory.extxyz]"]
    assert "md.steps=4" in settings[-5] and "md.steps=4" not in " ".join(short)
    assert main(["run", str(job), *short, "--set", "md.checkpoint_every=2", "--set", "md.run_dir=pimd_split"]) == 0
    assert main(["restart", str(job.parent / "pimd_split"), "--set", "md.steps=4"]) == 0
    split = read_thermo(job.parent / "pimd_split" / "thermo.csv")
    for key in ("potential_eV", "kinetic_virial_eV", "conserved_eV"):
        assert np.abs(whole[key] - split[key]).max() < 1e-8, key
    assert main(["run", str(job), *settings[:4], "--set", "md.contracted_beads=8", "--set", "md.run_dir=never"]) == 2
    assert "key 'md.contracted_beads'" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("md.timestep_fs=500", "500.0 fs is not a molecular-dynamics time step; the unit is fs"),
    ("md.temperature_K=-3", "outside 0-5000 K; the unit is kelvin"),
    ("md.timestep=0.5", "key 'md.timestep': Extra inputs are not permitted; did you mean 'timestep_fs'?"),
    ("md.integrator=nose", "key 'md.integrator'"),
    ("qm.selection=resname NOPE", "selects no atom"),
    ("environment.model=nosuchmodel", "key 'environment.model'"),
    ("md.steps", "expected key=value"),
])
def test_bad_settings_are_one_clear_line_with_status_2(job, capsys, override, message):
    assert main(["run", str(job), "--set", override, "--set", "md.run_dir=never"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (job.parent / "never").exists()


def test_restart_refuses_changes_that_would_not_continue_the_same_run(reference, capsys):
    assert main(["restart", str(reference), "--set", "md.timestep_fs=1.0"]) == 2
    assert "may change only md.steps" in capsys.readouterr().err
    assert main(["restart", str(reference.parent / "nothing")]) == 2
    assert "no config.yaml there" in capsys.readouterr().err


def test_shipped_main_job_is_valid():
    from qmml.config import load_config

    config, root = load_config(DATA / "examples" / "sn2_in_water.yaml")
    assert config.task == "md" and all((root / s).is_file() for s in config.structure)
