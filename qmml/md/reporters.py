"""Reporters: what a simulation writes while it runs.

Every reporter writes every ``every`` steps, flushes at each checkpoint and tells the checkpoint
where its file ended (`bookmark`); a restarted run cuts the file back to that point (`start` with
``resume=``), so output continues exactly where the checkpointed state is, with no duplicated or
half-written frames.  A fresh run never overwrites an existing file.

* `ThermoLog`: CSV, one row per report, units in the column names; a plot of energies and
  temperature at the end.
* `CollectiveVariableLog`: CSV of collective variables (distances, ...) and the restraint energy,
  the input of umbrella-sampling analyses.
* `TrajectoryWriter`: extended XYZ (region and charges per atom by default), or DCD/XTC through
  MDAnalysis.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..errors import InputError

THERMO_COLUMNS = ("step", "time_fs", "potential_eV", "kinetic_eV", "total_eV", "temperature_K", "conserved_eV",
                  "scf_cycles", "energy_std_eV", "wall_s")


def _fresh(path: Path) -> None:
    if path.exists():
        raise InputError(f"{path} already exists and is never overwritten; move it away, choose another name, "
                         "or continue the run with restart")
    path.parent.mkdir(parents=True, exist_ok=True)


def check_resumable(path: Path, size: int) -> None:
    """`InputError` unless ``path`` still holds the ``size`` bytes a checkpoint recorded."""
    if not path.is_file() or path.stat().st_size < size:
        raise InputError(f"{path} is shorter than its checkpoint says ({size} bytes); it was changed after the run "
                         "stopped, so the run cannot continue exactly: restore it or start a new run")


def _cut(path: Path, size: int) -> None:
    check_resumable(path, size)
    with open(path, "r+b") as handle:
        handle.truncate(size)


class Reporter:
    """Base: subclasses implement `_open`, `write`; `every` is the reporting interval in steps.

    ``binary`` reporters (DCD, XTC trajectories) keep their own bookmark even before their file is open.

    Parameters
    ----------
    path : str or path
        The file written (never overwritten by a fresh run).
    every : int
        Reporting interval, steps.
    """

    binary = False

    def __init__(self, path, every: int = 1):
        if int(every) < 1:
            raise InputError(f"{type(self).__name__}: every={every} must be 1 or more steps")
        self.path, self.every = Path(path), int(every)
        self.handle = None

    def start(self, simulation, resume: dict | None = None) -> None:
        if resume is None:
            _fresh(self.path)
            self.handle = open(self.path, "w")
            self._header(simulation)
        else:
            _cut(self.path, resume["bytes"])
            self.handle = open(self.path, "a")

    def _header(self, simulation) -> None:
        pass

    def due(self, state) -> bool:
        return state.step % self.every == 0

    def bookmark(self) -> dict:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return {"bytes": self.handle.tell()}

    def finish(self, simulation) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class ThermoLog(Reporter):
    """Thermodynamic log (CSV): step, time (fs), potential, kinetic, total and conserved energy (eV),
    temperature (K), SCF cycles, committee energy spread (eV) and wall time (s).

    The conserved quantity is total energy plus the heat the thermostat removed; in NVE it is the
    total energy and its drift measures integration error.  An integrator may define it otherwise
    (``conserved_energy(state, masses)``, e.g. the ring-polymer Hamiltonian of path-integral MD, or
    the effective energy E + P0 V + heats under a barostat) and add columns after ``wall_s``
    (``thermo_columns`` names, ``thermo_values(state, masses)`` values, e.g. the quantum
    kinetic-energy estimators, or volume, density, pressure and cell under a barostat).

    Parameters
    ----------
    path : path
    every : int
    plot : bool
        Write ``<path stem>.png`` (energies and temperature against time) when the run ends.
    """

    def __init__(self, path, every: int = 1, plot: bool = True):
        super().__init__(path, every)
        self.plot = plot

    def _header(self, simulation) -> None:
        extra = tuple(simulation.integrator.thermo_columns)
        self.handle.write(",".join(THERMO_COLUMNS + extra) + "\n")

    def report(self, simulation, state) -> None:
        kinetic = simulation.kinetic_energy(state)
        result = state.result
        integrator = simulation.integrator
        conserved = integrator.conserved_energy(state, simulation.masses)
        values = (state.step, state.time_fs, state.potential_energy, kinetic, state.potential_energy + kinetic,
                  simulation.temperature(state), conserved,
                  result.scf_cycles,
                  result.energy_std,
                  time.perf_counter() - simulation.wall_start)
        extra = integrator.thermo_values(state, simulation.masses)
        self.handle.write(f"{values[0]},{values[1]:.6f}," + ",".join(f"{v:.10f}" for v in values[2:7])
                          + f",{values[7]},{values[8]:.6g},{values[9]:.3f}" + "".join(f",{v:.10f}" for v in extra)
                          + "\n")
        self.handle.flush()  # a crash loses at most the row being written

    def finish(self, simulation) -> None:
        super().finish(simulation)
        if self.plot and self.path.is_file():
            from .plot import plot_thermo

            plot_thermo(self.path, self.path.with_suffix(".png"))


class CollectiveVariableLog(Reporter):
    """CSV of collective variables along a run: step, time (fs), one column per variable (named
    ``<name>_A`` for distance-like variables, Å) and the restraint energy (eV, 0 without restraints).

    Parameters
    ----------
    path : path
    variables : sequence of collective variables
        E.g. `qmml.colvars.DistanceDifference`; their ``name`` attributes must differ.
    every : int
    """

    def __init__(self, path, variables, every: int = 1):
        super().__init__(path, every)
        self.variables = list(variables)
        names = [v.name for v in self.variables]
        if not names or len(set(names)) != len(names):
            raise InputError(f"CollectiveVariableLog: give at least one variable, with distinct names (got {names})")

    def _header(self, simulation) -> None:
        self.handle.write(",".join(["step", "time_fs", *(f"{v.name}_A" for v in self.variables),
                                    "restraint_eV"]) + "\n")

    def report(self, simulation, state) -> None:
        values = [v.value(state.positions) for v in self.variables]
        bias = state.result.details.get("restraint_energy", 0.0)
        self.handle.write(f"{state.step},{state.time_fs:.6f}," + ",".join(f"{v:.8f}" for v in values)
                          + f",{bias:.10f}\n")
        self.handle.flush()


class TrajectoryWriter(Reporter):
    """Trajectory frames: extended XYZ (default, by suffix ``.xyz``/``.extxyz``) or DCD/XTC.

    Extended XYZ frames hold element, position (Å), region (QM or ENV; ML for an ML-only run) and
    charge (e: the environment model's charges; 0 on QM atoms) per atom, optionally forces (eV/Å)
    and velocities (Å/fs); the comment line has step, time (fs), energy (eV) and the box.
    DCD/XTC (MDAnalysis) hold positions and the box only; frames are buffered between checkpoints and
    appended then, so these files also end exactly at the checkpoint.  Under a barostat every frame
    carries its own box (``Lattice=`` in extended XYZ).

    Parameters
    ----------
    path : path
    every : int
    forces, velocities : bool
        Add these arrays to extended XYZ frames.
    """

    def __init__(self, path, every: int = 10, *, forces: bool = False, velocities: bool = False):
        super().__init__(path, every)
        suffix = self.path.suffix.lower()
        if suffix not in (".xyz", ".extxyz", ".dcd", ".xtc"):
            raise InputError(f"trajectory {self.path}: unknown format {suffix!r}; use .extxyz, .xyz, .dcd or .xtc")
        self.binary = suffix in (".dcd", ".xtc")
        self.forces, self.velocities = forces, velocities
        self.buffer: list[tuple] = []  # (positions, cell or None) per frame

    # -- extended XYZ --------------------------------------------------------------------
    def report(self, simulation, state) -> None:
        if self.binary:
            self.buffer.append((state.positions.copy(), None if state.cell is None else state.cell.copy()))
            return
        system = simulation.system
        regions, charges = simulation.regions, simulation.atom_charges(state)
        props = "species:S:1:pos:R:3:region:S:1:charges:R:1"
        columns = [state.positions, charges[:, None]]
        if self.forces:
            props += ":forces:R:3"
            columns.append(state.forces)
        if self.velocities:
            props += ":velocities:R:3"
            columns.append(state.velocities)
        lattice = ""
        cell = state.cell if state.cell is not None else system.cell  # the barostat's box, else the system's
        if cell is not None:
            lattice = 'Lattice="' + " ".join(f"{x:.6f}" for x in cell.ravel()) + '" pbc="T T T" '
        lines = [str(system.n_atoms),
                 f'{lattice}Properties={props} step={state.step} time_fs={state.time_fs:.6f} '
                 f'energy={state.potential_energy:.10f} units="positions:Angstrom energy:eV charges:e time:fs"']
        numbers = np.hstack(columns)
        for k in range(system.n_atoms):
            row = numbers[k]
            text = " ".join(f"{x:.10f}" for x in row[:3]) + f" {regions[k]} " + " ".join(f"{x:.6f}" for x in row[3:])
            lines.append(f"{system.elements[k]:2s} {text}")
        self.handle.write("\n".join(lines) + "\n")

    # -- DCD / XTC -----------------------------------------------------------------------
    def start(self, simulation, resume: dict | None = None) -> None:
        if not self.binary:
            return super().start(simulation, resume)
        self.system = simulation.system
        if resume is None:
            _fresh(self.path)
            self.path.touch()
        else:
            _cut(self.path, resume["bytes"])

    def bookmark(self) -> dict:
        if not self.binary:
            return super().bookmark()
        self._append_buffer()
        return {"bytes": self.path.stat().st_size}

    def finish(self, simulation) -> None:
        if self.binary:
            self._append_buffer()
        else:
            super().finish(simulation)

    def _append_buffer(self) -> None:
        """Write the buffered frames with MDAnalysis to a temporary file, then append its frames."""
        if not self.buffer:
            return
        import MDAnalysis as mda

        tmp = self.path.with_name(f".{self.path.name}.part{self.path.suffix}")
        universe = mda.Universe.empty(self.system.n_atoms, trajectory=True)
        from MDAnalysis.lib.mdamath import triclinic_box

        with mda.Writer(str(tmp), n_atoms=self.system.n_atoms) as writer:
            for positions, cell in self.buffer:
                universe.atoms.positions = positions
                if cell is not None:  # a barostat's box changes from frame to frame
                    universe.dimensions = triclinic_box(*cell)
                elif self.system.box is not None:
                    universe.dimensions = self.system.box
                writer.write(universe.atoms)
        data = tmp.read_bytes()
        tmp.unlink()
        existing = self.path.stat().st_size
        if self.path.suffix.lower() == ".dcd" and existing:
            data = data[_dcd_header_size(data, len(self.buffer)):]  # frames follow one header
        with open(self.path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        self.buffer = []


def _dcd_header_size(data: bytes, n_frames: int) -> int:
    """Bytes before the first frame of a DCD file written by MDAnalysis with ``n_frames`` frames."""
    import struct

    offset = 0
    for _ in range(3):  # three Fortran records: main header, title, atom count
        (length,) = struct.unpack_from("<i", data, offset)
        offset += 4 + length + 4
    assert (len(data) - offset) % n_frames == 0, "unexpected DCD layout"
    return offset
