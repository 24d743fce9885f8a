"""Independent tasks on a process pool, a local Dask cluster and serially (qmml.parallel, qmml.sampling)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import qmml
from qmml.sampling.colvars import Distance
from qmml.errors import InputError
from qmml.ml import LabellerSpec, label_structures
from qmml.parallel import TaskError, make_executor, map_tasks, thread_limits, worker_threads
from qmml.sampling import ConfigPotentialFactory, MLPotentialFactory, run_umbrella_window, run_umbrella_windows

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "examples"


@pytest.fixture(scope="module")
def process_pool():
    with make_executor("process", workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def dask_executor():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with make_executor("dask", address=cluster) as executor:
            yield executor


def _water_windows(output_dir, executor, steps=40, centres=(2.7, 2.9, 3.1, 3.3), model="water"):
    """O-O distance windows on a 6-water cluster with the shipped ML water model, each relaxed towards its
    centre first (20 fs of dynamics alone would barely leave the start)."""
    from conftest import water_cluster

    system = water_cluster(6)  # O3...O6 is a hydrogen bond, 2.83 Å
    return run_umbrella_windows(MLPotentialFactory(system, model), Distance(3, 6, name="r_OO"), centres, 5.0,
                                steps=steps, output_dir=output_dir, seed=11, relax_steps=20, executor=executor,
                                progress=False)


def test_umbrella_windows_are_identical_on_dask_process_pool_and_serial(tmp_path, process_pool, dask_executor):
    runs = {name: _water_windows(tmp_path / name, executor)
            for name, executor in (("serial", "serial"), ("process", process_pool), ("dask", dask_executor))}
    reference = runs["serial"]
    assert [len(s) for s in reference.samples] == [40] * 4
    # the restraints act: window means follow the centres
    means = [s.mean() for s in reference.samples]
    assert np.all(np.diff(means) > 0), means
    profile = reference.free_energy(bins=12)
    assert np.isfinite(profile.free_energy_eV[profile.samples_per_bin > 0]).all()
    for name in ("process", "dask"):
        for ours, theirs in zip(reference.windows, runs[name].windows):
            np.testing.assert_array_equal(theirs.samples, ours.samples)  # bit for bit: same seeds, same threads
            np.testing.assert_array_equal(theirs.steps, ours.steps)
            assert theirs.log_path.read_bytes() == ours.log_path.read_bytes()
        other = runs[name].free_energy(bins=12)
        np.testing.assert_array_equal(other.free_energy_eV, profile.free_energy_eV)
        np.testing.assert_array_equal(other.window_free_energies_eV, profile.window_free_energies_eV)


def test_failed_task_is_reported_with_its_index_and_finished_results_are_kept(process_pool):
    with pytest.raises(TaskError, match=r"1 of 4 tasks of sqrt failed[\s\S]*task 2 \(-1\.0\): ValueError") as info:
        map_tasks(math.sqrt, [4.0, 9.0, -1.0, 16.0], executor=process_pool, progress=False)
    assert set(info.value.failures) == {2} and isinstance(info.value.failures[2], ValueError)
    assert info.value.results[:2] == [2.0, 3.0] and info.value.results[3] == 4.0
    # errors="return": the exception takes the failed task's place
    results = map_tasks(math.sqrt, [4.0, -1.0], executor="serial", progress=False, errors="return")
    assert results[0] == 2.0 and isinstance(results[1], ValueError)
    # the slow first task finishes last; results stay in task order
    assert map_tasks(sum, [range(3_000_000), range(10)], executor=process_pool, progress=False) == [
        sum(range(3_000_000)), 45]
    with pytest.raises(InputError, match="module-level function"):
        map_tasks(lambda x: x, [1], executor=process_pool, progress=False)


def test_progress_bar_counts_tasks_and_can_be_switched_off(capsys):
    assert map_tasks(abs, [-1, -2, 3], executor="serial", description="absolute") == [1, 2, 3]
    assert "absolute" in capsys.readouterr().err
    assert map_tasks(abs, [-1], executor="serial", progress=False) == [1]
    assert capsys.readouterr().err == ""
    assert map_tasks(abs, [], executor="serial") == []


def test_thread_limits_hold_in_workers(process_pool, dask_executor):
    for threads in (1, 2):
        for report in map_tasks(worker_threads, range(2), executor=process_pool, threads_per_task=threads,
                                progress=False):
            assert report["torch"] == threads and report["pyscf"] == threads and report["environment"] == str(threads)
            assert report["openmp"] in (None, threads) and report["blas"] in (None, threads)
    for report in map_tasks(worker_threads, range(2), executor=dask_executor, progress=False):
        assert report["torch"] == 1 and report["pyscf"] == 1 and report["openmp"] in (None, 1)
    # serially the limit holds during the task only
    before = torch.get_num_threads()
    with thread_limits(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    assert map_tasks(worker_threads, [0], executor=make_executor("serial", threads_per_task=3),
                     progress=False)[0]["torch"] == 3
    assert torch.get_num_threads() == before


def test_umbrella_windows_continue_from_their_checkpoints_and_never_overwrite(tmp_path):
    first = _water_windows(tmp_path / "run", "serial", steps=10)
    files = {p: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    assert sorted(p.name for p in files) == [f"window_{k:03d}{s}" for k in range(4) for s in (".csv", ".json", ".npz")]
    # the same call again reads the finished windows back without building the potential (this model does not exist)
    again = _water_windows(tmp_path / "run", "serial", steps=10, model="no-such-model")
    assert {p: p.read_bytes() for p in (tmp_path / "run").iterdir()} == files
    for a, b in zip(first.samples, again.samples):
        np.testing.assert_array_equal(a, b)
    # more steps continue every window exactly as one longer run would have gone
    longer = _water_windows(tmp_path / "run", "serial", steps=20)
    fresh = _water_windows(tmp_path / "fresh", "serial", steps=20)
    for short, long, new in zip(first.samples, longer.samples, fresh.samples):
        assert len(long) == 20
        np.testing.assert_array_equal(long[:10], short)
        np.testing.assert_array_equal(long, new)
    with pytest.raises(TaskError, match="centre_A=2.7, this run asks centre_A=2.6"):
        _water_windows(tmp_path / "run", "serial", steps=10, centres=[2.6])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "window_000.csv").write_text("old results\n")
    with pytest.raises(TaskError, match="never overwritten"):
        _water_windows(tmp_path / "other", "serial", steps=10)
    assert (tmp_path / "other" / "window_000.csv").read_text() == "old results\n"


def test_window_from_a_job_file_builds_its_qm_ml_hamiltonian_in_the_worker(tmp_path, process_pool):
    # HF/STO-3G instead of the file's B3LYP/6-31G*: the point is where the Hamiltonian is built, not its level
    recipe = ConfigPotentialFactory(EXAMPLES / "butanol_in_water.yaml", ["qm.method=hf", "qm.basis=sto-3g"])
    ham = recipe()
    assert isinstance(ham, qmml.Hamiltonian) and ham.system.n_atoms == 192
    c4_o = Distance(3, 4, name="C4_O")
    result = run_umbrella_windows(recipe, c4_o, [1.5], 10.0, steps=2, output_dir=tmp_path, executor=process_pool,
                                  progress=False, timestep_fs=0.5)
    assert len(result.samples[0]) == 2 and abs(result.samples[0][-1] - c4_o.value(ham.system.positions)) < 0.05
    with pytest.raises(InputError, match="no job file"):
        ConfigPotentialFactory(tmp_path / "missing.yaml")


def test_label_structures_matches_the_labellers_called_directly(process_pool):
    from qmml.ml import Dataset, PySCFLabeller, XTBLabeller

    pytest.importorskip("tblite")
    frames = [f for f in Dataset.load(EXAMPLES.parent / "datasets" / "water_test.npz") if len(f.elements) == 18][:3]
    labels = label_structures(LabellerSpec("xtb"), frames, executor=process_pool, progress=False)
    for frame, label in zip(frames, labels):
        direct = XTBLabeller(frame.elements)(frame.positions)
        assert label.energy == pytest.approx(direct.energy, rel=1e-10)
        np.testing.assert_allclose(label.forces, direct.forces, atol=1e-8)
        np.testing.assert_allclose(label.charges, direct.charges, atol=1e-8)
        assert label.energy == pytest.approx(frame.energy, abs=1e-4)  # the dataset's own GFN2-xTB label
    water = (["O", "H", "H"], [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    spec = LabellerSpec("pyscf", "hf", "sto-3g")
    assert spec.reference == "hf/sto-3g (PySCF), RESP charges"
    label, = label_structures(spec, [water], executor="serial", progress=False)
    direct = PySCFLabeller("hf", "sto-3g")([8, 1, 1], np.array(water[1]))
    assert label.energy == pytest.approx(direct.energy, abs=1e-8)
    np.testing.assert_allclose(label.charges, direct.charges, atol=1e-6)
    assert abs(label.charges.sum()) < 1e-10


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="kind='gpu' is not known"):
        make_executor("gpu")
    with pytest.raises(InputError, match="workers=0 must be a positive integer"):
        make_executor("process", workers=0)
    with pytest.raises(InputError, match="scale the cluster itself"):
        make_executor("dask", address="tcp://127.0.0.1:1", workers=2)
    with pytest.raises(InputError, match="not callable"):
        map_tasks(3, [1])
    with pytest.raises(InputError, match="not a concurrent.futures.Executor"):
        map_tasks(abs, [1], executor=object())
    with pytest.raises(InputError, match="kind='dft' is not known"):
        LabellerSpec("dft")
    from conftest import water_cluster

    system = water_cluster(6)
    built = qmml.MLPotential(qmml.load_model("water"), system)
    with pytest.raises(InputError, match="is a built potential"):
        run_umbrella_windows(built, Distance(3, 6), [2.8], 5.0, steps=5, output_dir=tmp_path, executor="serial")
    recipe = MLPotentialFactory(system, "water")
    with pytest.raises(InputError, match="unknown setting 'temperature'"):
        run_umbrella_windows(recipe, Distance(3, 6), [2.8], 5.0, steps=5, output_dir=tmp_path, temperature=300)
    with pytest.raises(InputError, match="2 values for 3 centres"):
        run_umbrella_windows(recipe, Distance(3, 6), [2.7, 2.8, 2.9], [5.0, 5.0], steps=5, output_dir=tmp_path)
    with pytest.raises(InputError, match="force_constant=-1.0 must be positive"):
        run_umbrella_windows(recipe, Distance(3, 6), [2.8], -1.0, steps=5, output_dir=tmp_path)
    with pytest.raises(InputError, match="give an UmbrellaWindow"):
        run_umbrella_window({"centre": 2.8})
    assert not any(tmp_path.iterdir())  # refused before anything was written
