"""Property-based fuzzing of the job file and of restarts (hypothesis): whatever a user writes, qmml either
runs it or stops with one line and a documented exit status, never a traceback; a refused restart changes
no file.

Examples are derandomized (the same in every CI run); the base job is the reliability tests' (one HF/STO-3G
QM water among three ML waters) with at most three steps, so a job that runs costs about a second.
"""

import copy
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qmml.cli import EXIT_INPUT_ERROR, EXIT_UNSTABLE, main
from qmml.md import read_thermo
from test_reliability import folder_md5, water_pdb

BASE = {
    "structure": "w4.pdb",
    "guess_bonds": True,
    "qm": {"selection": "resid 1", "charge": 0, "method": "hf", "basis": "sto-3g"},
    "environment": {"type": "ml", "model": "water"},
    "task": "md",
    "md": {"integrator": "langevin", "timestep_fs": 0.5, "steps": 2, "checkpoint_every": 1, "progress": False},
}
KEYS = ["structure", "guess_bonds", "box", "vdw", "task", "output", "qm", "qm.selection", "qm.charge",
        "qm.multiplicity", "qm.method", "qm.basis", "qm.conv_tol", "qm.guess", "qm.guess_order", "qm.far_field_A",
        "qm.link", "qm.boundary", "qm.buffer_A", "qm.complete", "qm.allow_polar_cuts", "environment",
        "environment.type", "environment.model", "environment.scheme", "environment.coulomb",
        "environment.total_charge", "environment.charge_radii_A", "environment.embedding_cutoff_A",
        "environment.switch_width_A", "md", "md.integrator", "md.timestep_fs", "md.steps", "md.temperature_K",
        "md.initial_temperature_K", "md.friction_per_ps", "md.seed", "md.inner_steps", "md.beads",
        "md.contracted_beads", "md.pressure_bar", "md.thermo_every", "md.trajectory", "md.trajectory_every",
        "md.checkpoint_every", "md.guard", "md.guard.temperature_factor", "md.guard.max_displacement_A",
        "unknown_key", "qm.unknown_key", "md.timestep"]
VALUES = st.sampled_from([
    None, True, False, 0, 1, 2, 3, -1, -5, 10**12, 0.0, 0.5, 2.0, -1.0, 1e-12, 1e6, float("nan"), float("inf"),
    float("-inf"), "", "abc", "sto-3g", "3-21g", "b3lyp", "resid 1", "resid 2", "resid 9", "all", "name OW",
    "water", "organic", "nosuchmodel", "missing.pdb", "w4.pdb", "langevin", "velocity_verlet", "path_integral",
    "multiple_time_step", "single_point", "md", "lj", "auto", "ewald", "subtractive", "x" * 300, "t.extxyz",
    "t.dcd", "t.txt", [], [1, 2], [10.0, 10.0, 10.0], [10, 10, 10, 0, 90, 90], ["t.xyz", "t.xyz"], {}, {"a": 1}])
#: values a user would plausibly write for a key, so that many fuzzed jobs are valid and run
PLAUSIBLE = {
    "guess_bonds": [True], "box": [[12.0, 12.0, 12.0], None], "vdw": ["lj", None, "auto"], "task": ["single_point"],
    "qm.charge": [0, 1, -1], "qm.multiplicity": [1, 3], "qm.method": ["b3lyp", "hf"], "qm.basis": ["3-21g"],
    "qm.conv_tol": [1e-7, 1e-10], "qm.guess": ["previous", "default"], "qm.guess_order": [2, 4],
    "qm.far_field_A": [None, 6.0], "qm.link": ["scaled"], "qm.boundary": ["z1", "rc", "none"], "qm.buffer_A": [0.0],
    "qm.complete": ["residue", None], "environment.scheme": ["subtractive"], "environment.total_charge": [0],
    "environment.embedding_cutoff_A": [8.0], "environment.switch_width_A": [0.5],
    "md.integrator": ["velocity_verlet", "multiple_time_step", "path_integral"], "md.timestep_fs": [0.25, 1.0],
    "md.steps": [1, 3], "md.temperature_K": [0.0, 100.0, 600.0], "md.initial_temperature_K": [50.0],
    "md.friction_per_ps": [0.0, 20.0], "md.seed": [7], "md.inner_steps": [2], "md.beads": [2],
    "md.contracted_beads": [1], "md.thermo_every": [2], "md.trajectory": [["t.dcd"], ["t.xtc", "t.extxyz"]],
    "md.trajectory_every": [1], "md.checkpoint_every": [2], "md.guard": [None, {"max_displacement_A": 0.5}],
    "md.guard.temperature_factor": [2.0], "md.guard.max_displacement_A": [0.3],
}
EDITS = st.sampled_from(KEYS).flatmap(
    lambda key: st.tuples(st.just(key), st.one_of(st.sampled_from(PLAUSIBLE[key]), VALUES) if key in PLAUSIBLE
                          else VALUES))
FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def set_key(data: dict, dotted: str, value) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def check_outcome(status: int, err: str) -> None:
    event(f"exit status {status}")  # pytest --hypothesis-show-statistics shows how many ran and how many stopped
    assert "Traceback" not in err, err
    assert status in (0, EXIT_INPUT_ERROR, EXIT_UNSTABLE), (status, err)
    if status:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("qmml: "), err


def bounded_steps(job: dict) -> None:
    """Keep a valid job short: a fuzzed step count may be valid and large."""
    md = job.get("md")
    if isinstance(md, dict) and isinstance(md.get("steps"), int) and not isinstance(md.get("steps"), bool) \
            and 3 < md["steps"] <= 10**10:
        md["steps"] = 3
    if isinstance(md, dict) and isinstance(md.get("beads"), int) and 8 < md.get("beads", 0) <= 4096:
        md["beads"] = 2


@FUZZ
@given(edits=st.lists(EDITS, max_size=3),
       dropped=st.lists(st.sampled_from(["qm", "structure", "md", "qm.selection", "environment.model"]), max_size=1))
def test_any_job_file_runs_or_gives_one_line(capsys, edits, dropped):
    job = copy.deepcopy(BASE)
    for key, value in edits:
        set_key(job, key, value)
    for key in dropped:
        node = job
        *parents, last = key.split(".")
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    bounded_steps(job)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        water_pdb(folder / "w4.pdb")
        (folder / "job.yaml").write_text(yaml.safe_dump(job))
        capsys.readouterr()
        status = main(["run", str(folder / "job.yaml"), "--set", f"md.run_dir={folder / 'run'}"])
        check_outcome(status, capsys.readouterr().err)


def corrupt_bytes(path: Path, offset_fraction: float, mode: str) -> None:
    data = bytearray(path.read_bytes())
    k = int(offset_fraction * max(len(data) - 1, 0))
    if mode == "truncate":
        data = data[:k]
    elif mode == "flip" and data:
        data[k] ^= 0xFF
    else:
        data += b"junk,1,2\n"
    path.write_bytes(bytes(data))


@settings(max_examples=25, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(config_edits=st.lists(EDITS, max_size=2),
       damaged=st.lists(st.tuples(st.sampled_from(["checkpoint.npz", "thermo.csv", "trajectory.extxyz",
                                                   "config.yaml", "config_history.yaml"]),
                                  st.floats(0, 1), st.sampled_from(["truncate", "flip", "append", "delete"])),
                        max_size=1),
       overrides=st.lists(st.sampled_from(["md.steps=12", "md.steps=3", "md.steps=-1", "md.steps=abc",
                                           "md.progress=false", "qm.basis=3-21g", "md.timestep_fs=1", "md.steps"]),
                          max_size=2),
       allow=st.booleans())
def test_any_restart_continues_or_gives_one_line_and_changes_nothing(tmp_path_factory, capsys, config_edits,
                                                                      damaged, overrides, allow):
    finished = _finished(tmp_path_factory)
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        shutil.copytree(finished, run)
        if config_edits:
            config = yaml.safe_load((run / "config.yaml").read_text())
            for key, value in config_edits:
                set_key(config, key, value)
            bounded_steps(config)
            (run / "config.yaml").write_text(yaml.safe_dump(config))
        for name, where, mode in damaged:
            if mode == "delete":
                (run / name).unlink(missing_ok=True)
            elif (run / name).exists():
                corrupt_bytes(run / name, where, mode)
        before = folder_md5(run)
        capsys.readouterr()
        args = ["restart", str(run), *[a for item in overrides for a in ("--set", item)]]
        status = main(args + (["--allow-changes"] if allow else []))
        check_outcome(status, capsys.readouterr().err)
        if status == EXIT_INPUT_ERROR:
            assert folder_md5(run) == before
        elif status == 0 and folder_md5(run) != before:  # it ran: the log continues without gaps or repeats
            steps = read_thermo(run / "thermo.csv")["step"]
            assert np.all(np.diff(steps) == 1) and steps[0] == 0


_FINISHED = {}


def _finished(factory) -> Path:
    """One finished 10-step run of the base job, made once for all examples."""
    if "run" not in _FINISHED:
        folder = factory.mktemp("fuzz_base")
        water_pdb(folder / "w4.pdb")
        job = copy.deepcopy(BASE)
        job["md"].update(steps=10, checkpoint_every=5, trajectory_every=2)
        (folder / "job.yaml").write_text(yaml.safe_dump(job))
        assert main(["run", str(folder / "job.yaml"), "--set", f"md.run_dir={folder / 'run'}"]) == 0
        _FINISHED["run"] = folder / "run"
    return _FINISHED["run"]
