"""`Simulation`: drives an integrator over a potential, with reporters, checkpoints and clean stops.

A run stops cleanly (checkpoint written, files flushed, plot drawn) when it has done its steps, on
SIGTERM (a batch system's time limit), when the soft-stop file appears, and when a step fails (an
SCF that does not converge): the checkpoint then holds the last completed step.  `Simulation.restart`
continues from a checkpoint exactly as if the run had never stopped.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, UnstableDynamicsError, check_range
from ..potential import Potential, PotentialResult
from .checkpoint import read_checkpoint, write_checkpoint
from .guard import StepGuard
from .reporters import Reporter, check_resumable
from .state import kinetic_energy, maxwell_boltzmann, temperature

log = logging.getLogger(__name__)


class Simulation:
    """Molecular dynamics of a QM/ML `Hamiltonian` (or any potential) with one integrator.

    Parameters
    ----------
    hamiltonian : qmml.Potential
        A `Hamiltonian`, an `MLPotential`, any wrapper of them, or your own `qmml.Potential` subclass:
        its ``system`` gives elements, masses, starting positions and box.  Under a barostat it is
        called with ``cell=`` (3x3, rows, Å) and its result must carry ``stress`` (eV/Å^3).
    integrator : VelocityVerlet, Langevin or MultipleTimeStep
        ``Langevin(..., barostat=StochasticCellRescaling(...))`` for constant pressure.
    reporters : sequence of Reporter
        E.g. `ThermoLog`, `TrajectoryWriter`.
    positions : array_like (n, 3), optional
        Starting positions, Å (default: the system's).
    velocities : array_like (n, 3), optional
        Starting velocities, Å/fs.  Default: Maxwell-Boltzmann at ``temperature_K`` (zero total
        momentum), or zero without it.
    temperature_K : float, optional
    seed : int
        Seeds the initial velocities.
    checkpoint : path, optional
        Checkpoint file, rewritten atomically every ``checkpoint_every`` steps, at the end, on
        SIGTERM, on the soft stop and when a step fails.
    checkpoint_every : int
    stop_file : path, optional
        Creating this file stops the run cleanly after the current step (the file is then removed).
    progress : bool
        Show a tqdm progress bar.
    guard : StepGuard or None
        Physics checks after every step (default `StepGuard()`); a tripped step raises
        `qmml.errors.UnstableDynamicsError` and is neither reported nor checkpointed.  None turns them off.
    metadata : dict, optional
        JSON values stored in every checkpoint (``qmml run`` keeps the job's physics fingerprint there);
        `Simulation.restart` returns them as ``simulation.checkpoint_metadata``.
    """

    def __init__(self, hamiltonian, integrator, *, reporters=(), positions=None, velocities=None,
                 temperature_K: float | None = None, seed: int = 0, checkpoint=None, checkpoint_every: int = 100,
                 stop_file=None, progress: bool = True, guard: StepGuard | None = StepGuard(), metadata=None,
                 _state=None):
        if not isinstance(hamiltonian, Potential):
            raise InputError(f"Simulation: {hamiltonian!r} is not a qmml potential; subclass qmml.Potential (system, "
                             "compute(positions, *, forces=True, cell=None) -> qmml.PotentialResult)")
        self.potential = hamiltonian
        self.integrator = integrator
        self.reporters = list(reporters)
        for reporter in self.reporters:
            if not isinstance(reporter, Reporter):
                raise InputError(f"Simulation: {reporter!r} is not a reporter; subclass qmml.md.Reporter (start, due, "
                                 "report, bookmark, finish)")
        self.system = hamiltonian.system
        self.masses = np.asarray(self.system.masses, dtype=np.float64)
        check_range("checkpoint_every", checkpoint_every, low=1, unit="steps")
        if guard is not None and not isinstance(guard, StepGuard):
            raise InputError(f"Simulation: guard={guard!r} is not a qmml.md.StepGuard (or None for no checks)")
        self.guard = guard
        self.metadata = dict(metadata or {})
        self.checkpoint_metadata: dict = {}
        self.checkpoint_path = None if checkpoint is None else Path(checkpoint)
        self.checkpoint_every = int(checkpoint_every)
        self.stop_file = None if stop_file is None else Path(stop_file)
        self.progress = progress
        self.stopped_by: str | None = None
        self.wall_start = time.perf_counter()
        self.regions = self._regions()
        n = self.system.n_atoms
        if _state is not None:
            self.state, self._resume, guard_state = _state
            self.start_temperature_K = float(guard_state.get("start_temperature_K", 0.0))
            self._conserved_reference = guard_state.get("conserved_reference")
            return
        self._resume = None
        if temperature_K is not None:
            check_range("temperature_K", temperature_K, low=0, high=1e5, unit="K")
        x = self.system.positions if positions is None else np.asarray(positions, dtype=np.float64)
        if velocities is None:
            velocities = (maxwell_boltzmann(self.masses, temperature_K, seed) if temperature_K
                          else np.zeros((n, 3)))
        v = np.asarray(velocities, dtype=np.float64)
        for name, value in (("positions", x), ("velocities", v)):
            if value.shape != (n, 3):
                raise InputError(f"Simulation: {name} have shape {value.shape}, expected ({n}, 3)")
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            raise InputError(f"{self.checkpoint_path} already exists and is never overwritten; continue that run "
                             "with Simulation.restart (qmml restart RUN_DIR) or choose another checkpoint path")
        for name, value in (("positions", x), ("velocities", v)):
            bad = np.nonzero(~np.isfinite(value).all(axis=1))[0]
            if len(bad):
                raise InputError(f"Simulation: the {name} of {self.system.atom_label(int(bad[0]))} are not finite "
                                 f"({len(bad)} atoms in all); give finite {name}")
        self.state = integrator.init(hamiltonian, x, v, self.masses)
        if self.guard is not None:
            self.guard.check_finite(self.state, self.system, "the starting structure")
        with np.errstate(over="ignore"):
            self.start_temperature_K = self.temperature()
        if self.guard is not None:
            limit = max(self.guard.max_temperature_K, self.guard.temperature_factor * (integrator.temperature_K or 0.0))
            if not self.start_temperature_K <= limit:
                raise InputError(f"Simulation: the starting velocities give {self.start_temperature_K:.4g} K, above the "
                                 f"guard's limit of {limit:g} K (max_temperature_K, or temperature_factor x the "
                                 "thermostat's); give velocities in Å/fs (or raise the guard's limits)")
        self._conserved_reference = self.integrator.conserved_energy(self.state, self.masses)

    # -- construction from a checkpoint ---------------------------------------------------
    @classmethod
    def restart(cls, checkpoint, hamiltonian, integrator, *, reporters=(), **options) -> "Simulation":
        """Continue the run saved in ``checkpoint`` with the same potential, integrator and reporters.

        Output files are cut back to where they were when the checkpoint was written, so the
        continued run appends exactly the frames the uninterrupted run would have written.
        """
        state, sections = read_checkpoint(checkpoint)
        if sections.get("integrator_name") != integrator.name:
            raise InputError(f"{checkpoint}: written by the {sections.get('integrator_name')} integrator, not "
                             f"{integrator.name}; restart with the same integrator settings")
        if len(state.positions) != hamiltonian.system.n_atoms:
            raise InputError(f"{checkpoint}: {len(state.positions)} atoms, but the system has "
                             f"{hamiltonian.system.n_atoms}; restart with the same structure")
        if not isinstance(hamiltonian, Potential):
            raise InputError(f"Simulation.restart: {hamiltonian!r} is not a qmml potential (subclass qmml.Potential)")
        hamiltonian.restore(sections.get("potential", {}))
        integrator.restore(sections.get("integrator", {}))
        result = _restored_result(state, sections.get("result", {}), hamiltonian.partition)
        sim = cls(hamiltonian, integrator, reporters=reporters, checkpoint=checkpoint,
                  _state=(state.replace(result=result), sections.get("reporters", {}), sections.get("guard", {})),
                  **options)
        sim.checkpoint_metadata = dict(sections.get("metadata", {}))
        for reporter in sim.reporters:  # refuse now, before anything is written, rather than at run()
            bookmark = sim._resume.get(sim._key(reporter))
            if bookmark is not None:
                check_resumable(reporter.path, bookmark["bytes"])
        return sim

    # -- quantities -----------------------------------------------------------------------
    def kinetic_energy(self, state=None) -> float:
        """eV."""
        return kinetic_energy(self.masses, (state or self.state).velocities)

    def temperature(self, state=None) -> float:
        """Kinetic temperature over the integrator's degrees of freedom, K."""
        return temperature(self.masses, (state or self.state).velocities,
                           self.integrator.degrees_of_freedom(self.system.n_atoms))

    def atom_charges(self, state=None) -> np.ndarray:
        """Charge on every atom for output, e: environment-model charges, 0 on QM atoms (zeros for a
        potential without charges)."""
        charges = (state or self.state).result.charges
        return np.zeros(self.system.n_atoms) if charges is None else np.asarray(charges, dtype=np.float64)

    def _regions(self) -> np.ndarray:
        partition = self.potential.partition
        if partition is None:
            return np.array(["ML"] * self.system.n_atoms)
        regions = np.array(["ENV"] * self.system.n_atoms)
        regions[partition.qm_atoms] = "QM"
        return regions

    # -- running --------------------------------------------------------------------------
    def run(self, n_steps: int) -> "Simulation":
        """Advance ``n_steps`` steps (fewer if stopped by SIGTERM or the stop file); returns self.

        Calling it again continues the run: reporters append to their files.

        Raises
        ------
        qmml.errors.UnstableDynamicsError
            A step broke a limit of the `StepGuard`; the checkpoint holds the last good step.
        """
        from tqdm.auto import tqdm

        n_steps = int(check_range("n_steps", n_steps, low=0, unit="steps"))
        resume, self._resume = self._resume, None
        for reporter in self.reporters:
            reporter.start(self, resume=None if resume is None else resume.get(self._key(reporter)))
        if resume is None:
            self._report(self.state)
        signalled = []
        previous_handler = None
        try:
            previous_handler = signal.signal(signal.SIGTERM, lambda *_: signalled.append("SIGTERM"))
        except ValueError:  # not the main thread: no signal handling
            pass
        bar = tqdm(total=int(n_steps), unit="step", disable=not self.progress, dynamic_ncols=True)
        self.stopped_by = None
        try:
            for _ in range(int(n_steps)):
                try:
                    state = self.integrator.step(self.potential, self.state, self.masses)
                    if self.guard is not None:
                        self.guard.check_step(self, self.state, state, self._conserved_reference)
                except BaseException as err:  # a failed SCF, a tripped guard, Ctrl-C: keep the last good step
                    self._checkpoint()
                    if isinstance(err, UnstableDynamicsError):
                        err.args = (f"MD stopped at {err}; the checkpoint holds step {self.state.step}",)
                        raise
                    what = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
                    log.error("step %d %s; the checkpoint holds step %d", self.state.step + 1, what, self.state.step)
                    raise
                self.state = state
                self._report(self.state)
                bar.update(1)
                if self.progress and self.state.step % 5 == 0:
                    bar.set_postfix(T=f"{self.temperature():.0f} K", E=f"{self.state.potential_energy:.3f} eV")
                if self.state.step % self.checkpoint_every == 0:
                    self._checkpoint()
                if signalled:
                    self.stopped_by = "SIGTERM"
                elif self.stop_file is not None and self.stop_file.exists():
                    self.stopped_by = f"stop file {self.stop_file}"
                    self.stop_file.unlink()
                if self.stopped_by:
                    log.warning("stopping at step %d (%s); continue with restart", self.state.step, self.stopped_by)
                    break
            self._checkpoint()
        finally:
            bar.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            # a further run() continues these files where this one ended, as a restart would
            self._resume = {self._key(r): r.bookmark() for r in self.reporters
                            if r.handle is not None or r.binary}
            for reporter in self.reporters:
                reporter.finish(self)
        return self

    def _key(self, reporter) -> str:
        """Where a reporter writes, relative to the checkpoint's folder when inside it (so a run
        folder can be moved or copied and still continue)."""
        path = reporter.path.resolve()
        if self.checkpoint_path is not None:
            try:
                return str(path.relative_to(self.checkpoint_path.resolve().parent))
            except ValueError:
                pass
        return str(path)

    def _report(self, state) -> None:
        for reporter in self.reporters:
            if reporter.due(state):
                reporter.report(self, state)

    def write_checkpoint(self) -> None:
        """Write the checkpoint now (nothing without a checkpoint path), e.g. when a driver such as
        `qmml.ml.ActiveLearning` saves its own state alongside."""
        self._checkpoint()

    def _checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        result = self.state.result
        write_checkpoint(
            self.checkpoint_path, self.state,
            integrator_name=self.integrator.name,
            potential=self.potential.state(),
            integrator=self.integrator.state(),
            reporters={self._key(r): r.bookmark() for r in self.reporters if r.handle is not None or
                       r.binary},
            result={"scf_cycles": int(result.scf_cycles), "energy_std": float(result.energy_std),
                    "charges": result.charges},
            guard={"start_temperature_K": float(self.start_temperature_K),
                   "conserved_reference": None if self._conserved_reference is None
                   else float(self._conserved_reference)},
            metadata=self.metadata,
        )


def _restored_result(state, values: dict, partition) -> PotentialResult:
    """The potential's result at a restored state, as far as reporters need it (energy, forces, stress,
    charges, SCF cycles); checkpoints written before per-atom charges kept the environment's only."""
    charges = values.get("charges")
    if charges is None and values.get("env_charges") is not None and partition is not None:
        charges = np.zeros(len(state.positions))
        charges[partition.env_atoms] = values["env_charges"]
    return PotentialResult(energy=state.potential_energy, forces=state.forces, stress=state.stress, charges=charges,
                           energy_std=float(values.get("energy_std", 0.0)), scf_cycles=int(values.get("scf_cycles", 0)))
