"""Command line: help, partition report, a whole job, and one-line errors with exit status 2."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qmml

from conftest import DATA, STRUCTURES
from qmml.cli import main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "qmml.cli", "--help"], capture_output=True, text=True, check=True)
    assert "run" in out.stdout and "partition" in out.stdout


def test_partition_command_prints_report(capsys):
    assert main(["partition", str(STRUCTURES / "butanol.psf"), str(STRUCTURES / "butanol.pdb"),
                 "--qm", "name C4 O1 H41 H42 HO1", "--charge", "0"]) == 0
    assert "C-C  g = 0.7330" in capsys.readouterr().out  # the 1.090 Å C-H over this structure's 1.487 Å C4-C3


def test_partition_command_error_is_one_line_with_status_2(capsys):
    status = main(["partition", str(STRUCTURES / "butanol.psf"), str(STRUCTURES / "butanol.pdb"),
                   "--qm", "name O1 HO1", "--charge", "0"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "polar O-C bond" in err and "allow_polar_cuts=True" in err


def write_job(tmp_path, extra="", qm_extra=""):
    job = tmp_path / "job.yaml"
    job.write_text(
        f"structure: [{STRUCTURES / 'butanol.psf'}, {STRUCTURES / 'butanol.pdb'}]\n"
        "qm:\n  selection: name C4 O1 H41 H42 HO1\n  charge: 0\n  method: hf\n  basis: sto-3g\n" + qm_extra + extra)
    return job


def test_run_single_point_writes_extxyz_and_never_overwrites(tmp_path, capsys):
    job = write_job(tmp_path, extra="output: forces.xyz\n")
    assert main(["run", str(job)]) == 0
    out = capsys.readouterr().out
    assert "total energy" in out and "net force" in out
    written = (tmp_path / "forces.xyz").read_text()
    assert written.startswith("15\nProperties=species:S:1:pos:R:3:forces:R:3 energy=")
    assert main(["run", str(job)]) == 2
    assert "already exists and is never overwritten" in capsys.readouterr().err
    assert (tmp_path / "forces.xyz").read_text() == written


@pytest.mark.parametrize("qm_extra, message", [
    ("  chrage: 1\n", "key 'qm.chrage': Extra inputs are not permitted; did you mean 'charge'?"),
    ("  boundary: rcdd\n", "key 'qm.boundary'"),
])
def test_bad_config_key_is_named(tmp_path, capsys, qm_extra, message):
    assert main(["run", str(write_job(tmp_path, qm_extra=qm_extra))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_structure_file(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("structure: nothere.pdb\nqm: {selection: all, charge: 0}\n")
    assert main(["run", str(job)]) == 2
    assert "nothere.pdb: no such file" in capsys.readouterr().err


def test_shipped_example_config_is_valid():
    from qmml.config import load_config

    config, root = load_config(DATA / "examples" / "butanol_in_water.yaml")
    assert all(Path(s).is_absolute() and Path(s).is_file() for s in config.structure)  # resolved once, here
    assert config.qm.engine_options()["conv_tol"] == qmml.PySCFEngine().conv_tol  # defaults: the engine's


def test_far_field_and_device_reach_the_engine_from_the_job_file():
    from qmml.config import load_config
    from qmml.errors import InputError
    from qmml.jobs import build_potential

    job = DATA / "examples" / "sn2_in_water.yaml"
    config, root = load_config(job, ["qm.far_field_A=12", "qm.far_field_width_A=3", "qm.device=auto"])
    engine = build_potential(config).qm
    assert (engine.far_field_A, engine.far_field_width_A) == (12.0, 3.0)
    assert engine.device in ("cpu", "gpu")
    config, root = load_config(job, ["qm.far_field_A=12", "qm.far_field_width_A=20"])
    with pytest.raises(InputError, match="far_field_A"):
        build_potential(config)


def test_periodic_job_prints_the_stress_and_a_split_qm_region_is_refused(tmp_path, capsys):
    """The shipped periodic example (HF/STO-3G here): the stress line, and the cell reaching the engine."""
    from qmml.config import load_config
    from qmml.jobs import build_partition, build_potential

    job = DATA / "examples" / "water_box.yaml"
    assert main(["run", str(job), "--set", "qm.method=hf", "--set", "qm.basis=sto-3g"]) == 0
    out = capsys.readouterr().out
    assert "stress (GPa)" in out and "potential pressure" in out
    config, root = load_config(job, ["box=[20, 20, 20]", "qm.near_field_A=7.5"])
    part = build_partition(config)
    assert part.system.box[:3].tolist() == [20.0, 20.0, 20.0]
    assert build_potential(config).qm.near_field_A == 7.5
    config, root = load_config(job, ["box=[20, 20]"])
    with pytest.raises(qmml.InputError, match="key 'box'"):
        build_partition(config)


def test_elastic_task_prints_the_elastic_constants_and_refuses_an_open_box(capsys):
    """``task: elastic`` on the periodic example (HF/STO-3G, clamped ions): the 6x6 matrix and the moduli; the
    open-boundary main job gets one clear error (exit 2)."""
    job = DATA / "examples" / "water_box.yaml"
    settings = ["qm.method=hf", "qm.basis=sto-3g", "task=elastic", "elastic.relax_ions=false", "elastic.strain=0.01"]
    assert main(["run", str(job)] + [x for s in settings for x in ("--set", s)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["xx"], ["yy"], ["zz"], ["yz"],
                                                                                ["xz"], ["xy"])]
    matrix = np.array([[float(v) for v in row[1:]] for row in rows])
    assert matrix.shape == (6, 6) and np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) > 0)
    assert "bulk modulus (Voigt)" in out
    assert main(["run", str(DATA / "examples" / "sn2_in_water.yaml"), "--set", "task=elastic"]) == 2
    assert "no periodic box" in capsys.readouterr().err


def test_npt_job_runs_qm_ml_at_constant_pressure(tmp_path):
    """md.pressure_bar turns the Langevin run of the periodic example into NPT: the thermo log carries the
    volume, density and pressure, and the box moves; a non-Langevin integrator is refused."""
    from qmml.config import load_config
    from qmml.jobs import build_integrator, build_potential
    from qmml.md import read_thermo

    job = DATA / "examples" / "water_box.yaml"
    run = tmp_path / "npt"
    settings = ["qm.method=hf", "qm.basis=sto-3g", "task=md", "md.steps=3", "md.pressure_bar=1",
                "md.barostat_relaxation_fs=50", "md.timestep_fs=1", "md.progress=false", f"md.run_dir={run}"]
    assert main(["run", str(job)] + [x for s in settings for x in ("--set", s)]) == 0
    thermo = read_thermo(run / "thermo.csv")
    assert {"volume_A3", "density_g_per_cm3", "pressure_bar"} <= set(thermo)
    assert len(set(np.round(thermo["volume_A3"], 6))) > 1
    config, root = load_config(job, ["task=md", "md.pressure_bar=1", "md.integrator=velocity_verlet"])
    with pytest.raises(qmml.InputError, match="md.pressure_bar"):
        build_integrator(config, build_potential(config))
