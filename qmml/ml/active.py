"""Active learning during dynamics: label what the committee is unsure about, retrain, continue.

`ActiveLearning` drives a `Simulation` whose potential holds a committee (an `MLPotential`, or a
QM/ML `Hamiltonian` with an ML environment).  Every ``check_every`` steps it measures the committee
spread (`qmml.ml.uncertainty`: per-atom forces, per-atom charges, and the embedding energy
sum_j phi_j q~_j); above a threshold the structure around the flagged atoms is cut out and capped
(`qmml.ml.cutout`) and queued.  When ``batch_size`` structures are queued, or at the end of every
segment of ``segment_steps``, the queue is labelled with the reference method (in parallel through
any `concurrent.futures.Executor`), added to the dataset, and the committee is retrained from its
current weights; the new model replaces the old one in the running potential and the dynamics
continue from the same state (positions, velocities, random-number state).

Every round writes the dataset and the model, numbered, into ``directory``, and a CSV of the
spreads at every check.  The rounds and the queue are saved (``active_learning_state.npz``) whenever they
change, together with the simulation's checkpoint, so `ActiveLearning.resume` continues a killed run with
the latest model, its dataset and the structures still waiting for labels.

Units: Å, eV, eV/Å, e, fs.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..header_npz import read_header_npz, write_header_npz
from ..periodic.cell import minimum_image
from .cutout import Cluster, cut_out
from .dataset import Dataset
from .train import TrainingOptions, evaluate, train
from .uncertainty import committee_uncertainty

log = logging.getLogger(__name__)


# -- the driver ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Thresholds:
    """Committee spreads above which a structure is labelled.

    Attributes
    ----------
    force_eV_A : float
        Per-atom force spread norm(sigma_F,i), eV/Å.  About 3x the model's validation force error is a
        common choice: spreads below it are noise.
    charge_e : float
        Per-atom charge spread, e.
    embedding_eV : float
        Spread of the embedding energy sum_j phi_j q~_j, eV (QM/ML runs); the cut-out is then taken
        around the QM region.
    """

    force_eV_A: float = 0.3
    charge_e: float = 0.05
    embedding_eV: float = 0.05


STATE_FILE = "active_learning_state.npz"
_CLUSTER_FIELDS = ("elements", "positions", "molecule", "molecule_charges", "source", "centres")
_LOG_COLUMNS = ("step", "time_fs", "max_force_std_eV_A", "max_charge_std_e", "embedding_std_eV", "flagged_atoms",
                "queued", "round")


class ActiveLearning:
    """Run dynamics, label uncertain structures, retrain the committee, continue.

    Parameters
    ----------
    simulation : Simulation
        Its potential holds the committee (`MLPotential`, or a `Hamiltonian` with an ML environment,
        possibly `Restrained`).
    reference : LabellerSpec or callable
        ``LabellerSpec("xtb")``, ``LabellerSpec("pyscf", "b3lyp", "6-31g*")`` or any picklable
        ``reference(cluster) -> Label``; use the method the model was trained on.
    dataset : Dataset
        The model's training data; labelled clusters are added to a copy of it.
    directory : path
        New (or empty) folder for ``uncertainty.csv``, ``dataset_roundNN.npz`` and
        ``model_roundNN.pt``.
    thresholds : Thresholds
    check_every : int
        Steps between uncertainty checks (each costs one committee evaluation with per-member forces).
    batch_size : int
        Queued structures that trigger labelling and retraining at once (in place).
    segment_steps : int, optional
        Also label and retrain whatever is queued every ``segment_steps`` steps.
    radius_A : float, optional
        Cut-out radius around flagged atoms, Å; default the model's cutoff.
    training : TrainingOptions, optional
        Retraining options (the architecture comes from the current model); default 60 epochs at
        most with patience 15.
    executor : concurrent.futures.Executor or str, optional
        Runs the labelling jobs (`qmml.parallel.make_executor`, or a kind such as "process");
        default serial, in this process.
    max_rounds : int, optional
        Stop retraining after this many rounds (the dynamics go on with the last model).

    Give the simulation a checkpoint file: it is written with the learner's state, and a killed run
    continues with ``Simulation.restart`` and `ActiveLearning.resume`.
    """

    def __init__(self, simulation, reference, dataset: Dataset, directory, *, thresholds: Thresholds | None = None,
                 check_every: int = 10, batch_size: int = 4, segment_steps: int | None = None,
                 radius_A: float | None = None, training: TrainingOptions | None = None, executor=None,
                 max_rounds: int | None = None, _saved: dict | None = None):
        self.simulation = simulation
        model = simulation.potential.environment_model
        if model is None:
            raise InputError(f"{simulation.potential!r} has no environment model: active learning needs an MLPotential "
                             "or a Hamiltonian with an ML environment (qmml.load_model(...))")
        if len(model.members) < 2:
            raise InputError("active learning needs a committee (two or more members) to measure uncertainty")
        if not callable(reference):
            raise InputError(f"reference={reference!r} is not callable: use qmml.ml.LabellerSpec('xtb') or "
                             "LabellerSpec('pyscf', method, basis)")
        for name, value in (("check_every", check_every), ("batch_size", batch_size)):
            if int(value) < 1:
                raise InputError(f"{name}={value} must be 1 or more")
        if segment_steps is not None and int(segment_steps) < 1:
            raise InputError(f"segment_steps={segment_steps} must be 1 or more steps (or None)")
        self.directory = Path(directory)
        if _saved is None and self.directory.exists() and any(self.directory.iterdir()):
            raise InputError(f"{self.directory} is not empty and nothing in it is overwritten; choose a new folder, "
                             "or continue the run in it with ActiveLearning.resume")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.reference = reference
        self.dataset = Dataset(list(dataset.frames), dict(dataset.metadata))
        self.thresholds = thresholds or Thresholds()
        self.check_every, self.batch_size = int(check_every), int(batch_size)
        self.segment_steps = None if segment_steps is None else int(segment_steps)
        self.radius_A = float(radius_A) if radius_A is not None else model.cutoff
        self.training = training or TrainingOptions(max_epochs=60, patience=15, progress=False)
        self.executor = executor
        self.max_rounds = max_rounds
        self.queue: list[tuple[int, Cluster]] = []
        self.rounds: list[dict] = []
        self.checks: list[dict] = []
        self._log_path = self.directory / "uncertainty.csv"
        if _saved is not None:
            self.rounds, self.queue = _saved["rounds"], _saved["queue"]
            return
        with open(self._log_path, "w", newline="") as fh:
            csv.writer(fh).writerow(_LOG_COLUMNS)
        self.dataset.save(self.directory / "dataset_round00.npz")

    @classmethod
    def resume(cls, simulation, reference, directory, **options) -> "ActiveLearning":
        """Continue the active learning saved in ``directory`` with ``simulation`` restarted from its checkpoint
        (`Simulation.restart`): the latest round's model goes into its potential, the latest dataset and the
        queued structures (those up to the simulation's step) come back.  ``options`` as for the constructor."""
        directory = Path(directory)
        path = directory / STATE_FILE
        if not path.is_file():
            raise InputError(f"{directory}: no {STATE_FILE} there; give the folder of an ActiveLearning run")
        header, arrays = read_header_npz(path, "active-learning state")
        step = simulation.state.step
        queue = [(int(s), Cluster(**{f: arrays[f"q{k}_{f}"] for f in _CLUSTER_FIELDS}))
                 for k, s in enumerate(header["queue_steps"]) if s <= step]
        rounds = header["rounds"]
        k = len(rounds)
        dataset = Dataset.load(directory / f"dataset_round{k:02d}.npz")
        learner = cls(simulation, reference, dataset, directory, _saved={"rounds": rounds, "queue": queue}, **options)
        if k:
            from .io import load_model

            current = learner.model
            learner.install(load_model(directory / f"model_round{k:02d}.pt", dtype=current.dtype,
                                       device=next(current.parameters()).device))
        return learner

    def _save(self) -> None:
        """The simulation's checkpoint, then the rounds and the queue (atomically), so the two agree."""
        write = getattr(self.simulation, "write_checkpoint", None)
        if write is not None:
            write()
        arrays = {f"q{k}_{f}": np.asarray(getattr(cluster, f)) for k, (_, cluster) in enumerate(self.queue)
                  for f in _CLUSTER_FIELDS}
        write_header_npz(self.directory / STATE_FILE,
                         {"rounds": self.rounds, "queue_steps": [int(s) for s, _ in self.queue]}, arrays)

    # -- one check -----------------------------------------------------------------------
    def check(self) -> dict:
        """Measure the committee spread at the current state and queue a cut-out if it is too large."""
        sim = self.simulation
        state = sim.state
        u = committee_uncertainty(sim.potential, state.positions, state.result)
        t = self.thresholds
        excess = np.maximum(u.force_std / t.force_eV_A, u.charge_std / t.charge_e)
        flagged = np.flatnonzero(excess > 1)
        centres = self._centres(flagged, excess, state.positions)
        partition = sim.potential.partition
        if u.embedding_std > t.embedding_eV and partition is not None:
            centres = np.union1d(centres, partition.qm_atoms)  # the charges around the QM region
        queued = False
        if len(centres) and self._retraining_allowed():
            cluster = cut_out(sim.system, state.positions, centres, radius_A=self.radius_A, atoms=u.model_atoms)
            self.queue.append((state.step, cluster))
            queued = True
            self._save()
        row = {"step": state.step, "time_fs": state.time_fs, "max_force_std_eV_A": u.max_force_std,
               "max_charge_std_e": u.max_charge_std, "embedding_std_eV": u.embedding_std,
               "flagged_atoms": len(flagged), "queued": int(queued), "round": len(self.rounds)}
        self.checks.append(row)
        with open(self._log_path, "a", newline="") as fh:
            csv.writer(fh).writerow([row[c] for c in _LOG_COLUMNS])
        return row

    def _centres(self, flagged, excess, positions):
        """The flagged atoms near the most uncertain one: one cluster of bounded size per check (the
        other uncertain regions are caught at later checks, if retraining has not fixed them)."""
        if len(flagged) == 0:
            return flagged
        worst = flagged[np.argmax(excess[flagged])]
        d = minimum_image(positions[flagged] - positions[worst], self.simulation.system.cell)
        return flagged[np.linalg.norm(d, axis=1) < 2 * self.radius_A]

    def _retraining_allowed(self) -> bool:
        return self.max_rounds is None or len(self.rounds) < self.max_rounds

    # -- labelling and retraining --------------------------------------------------------
    def retrain(self) -> dict | None:
        """Label the queued clusters, add them to the dataset, retrain, and swap the new model in."""
        if not self.queue:
            return None
        start = time.perf_counter()
        steps = [s for s, _ in self.queue]
        clusters = [c for _, c in self.queue]
        self.queue = []
        from .labelling import label_structures

        labels = label_structures(self.reference, clusters, executor=self.executor or "serial", progress=False)
        for cluster, label in zip(clusters, labels):
            self.dataset.append(cluster.to_frame(label))
        old = self.model
        new_frames = Dataset([c.to_frame(lb) for c, lb in zip(clusters, labels)])
        before = evaluate(old, new_frames)
        model = train(self.dataset, self.training, initial=old).to(old.dtype)
        after = evaluate(model, new_frames)
        self.install(model)
        k = len(self.rounds) + 1
        self.dataset.metadata = {**self.dataset.metadata, "active_learning_round": k}
        self.dataset.save(self.directory / f"dataset_round{k:02d}.npz")
        from .io import save_model

        reference = getattr(self.reference, "reference", repr(self.reference))
        save_model(model, self.directory / f"model_round{k:02d}.pt", reference=reference,
                   training_set_hash=self.dataset.hash(), metrics={"validation": model.training_report["validation"]},
                   description=f"active-learning round {k}")
        info = {"round": k, "step": self.simulation.state.step, "flagged_steps": steps, "new_structures": len(clusters),
                "new_atoms": int(sum(len(c.elements) for c in clusters)), "dataset_frames": len(self.dataset),
                "force_rmse_new_before_eV_A": before["force_rmse_eV_A"],
                "force_rmse_new_after_eV_A": after["force_rmse_eV_A"], "seconds": time.perf_counter() - start}
        self.rounds.append(info)
        self._save()
        log.info("active learning round %d: %d structures labelled, force RMSE on them %.3f -> %.3f eV/Å", k,
                 len(clusters), before["force_rmse_eV_A"], after["force_rmse_eV_A"])
        return info

    def install(self, model) -> None:
        """Put ``model`` into the running potential and recompute the current state with it
        (`Integrator.refresh`: forces, energy, stress in the current cell, every bead, fast forces)."""
        sim = self.simulation
        sim.potential.environment_model = model
        sim.state = sim.integrator.refresh(sim.potential, sim.state)

    # -- running -------------------------------------------------------------------------
    def run(self, n_steps: int) -> "ActiveLearning":
        """Advance the simulation ``n_steps`` steps with checks and retraining; returns self."""
        from tqdm.auto import tqdm

        sim = self.simulation
        shown, sim.progress = sim.progress, False  # one bar for the whole run, not one per chunk
        bar = tqdm(total=int(n_steps), unit="step", disable=not shown, dynamic_ncols=True)
        done = since_segment = 0
        try:
            while done < n_steps:
                chunk = min(self.check_every, n_steps - done)
                sim.run(chunk)
                done += chunk
                since_segment += chunk
                bar.update(chunk)
                if sim.stopped_by:
                    break
                row = self.check()
                segment_over = self.segment_steps is not None and since_segment >= self.segment_steps
                if len(self.queue) >= self.batch_size or (segment_over and self.queue):
                    self.retrain()
                if segment_over:
                    since_segment = 0
                bar.set_postfix(sigma_F=f"{row['max_force_std_eV_A']:.3f} eV/A", queued=len(self.queue),
                                rounds=len(self.rounds))
        finally:
            bar.close()
            sim.progress = shown
        return self

    @property
    def model(self):
        """The committee now in use."""
        return self.simulation.potential.environment_model
