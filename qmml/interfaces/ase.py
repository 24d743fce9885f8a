"""`QMMLCalculator`: any qmml potential as an ASE calculator (optimizers, NEB, MD, vibrations).

ASE and qmml share units (Å, eV, eV/Å, amu, e), so nothing is converted.  The calculator wraps a
`qmml.Hamiltonian`, `qmml.MLPotential`, `qmml.QMPotential`, `qmml.Restrained` or any other
`qmml.Potential`; the Atoms object must hold the system's atoms in the
system's order, which `to_ase_atoms` guarantees.

NEB and other multi-image methods: give each image its own calculator around one shared potential,
``image.calc = QMMLCalculator(potential)``.  Each calculator follows its own replica of the potential
(`qmml.Potential.replica`: its own SCF starting density, see ``scf_guess``), so jumping between images
costs SCF cycles at worst, never accuracy; calls are serialized on the shared engine (threads are safe).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..potential import Potential, check_result
from ._guess import newest_only, potential_lock

try:
    from ase import Atoms
    from ase.calculators.calculator import Calculator, all_changes
except ImportError as err:  # pragma: no cover - exercised only without ASE
    raise ImportError('qmml.interfaces.ase needs ASE (the Atomic Simulation Environment): '
                      'pip install "qmml[ase]"') from err

SCF_GUESSES = ("previous", "extrapolate", "shared")


def to_ase_atoms(system, positions=None, *, calculator=None) -> Atoms:
    """An `ase.Atoms` with the elements, masses (amu), positions (Å) and box of a qmml `System`.

    Parameters
    ----------
    system : System or potential
        A potential (anything with ``.system``) stands for its system.
    positions : array_like (n_atoms, 3), optional
        Å; default the system's.
    calculator : ase Calculator, optional
        Attached to the returned atoms.

    Returns
    -------
    ase.Atoms
        Periodic (``pbc=True``, cell = the box's lattice vectors) if the system has a box,
        otherwise open (``pbc=False``, no cell).  Topology charges, when known, are the initial
        charges (``atoms.get_initial_charges()``, e).
    """
    if isinstance(system, Potential):
        system = system.system
    x = system.positions if positions is None else np.asarray(positions, dtype=np.float64)
    if x.shape != (system.n_atoms, 3):
        raise InputError(f"to_ase_atoms: positions have shape {x.shape}, expected ({system.n_atoms}, 3) in Å")
    cell = system.cell
    atoms = Atoms(numbers=system.atomic_numbers, positions=x, masses=np.asarray(system.masses, dtype=float),
                  cell=cell, pbc=cell is not None, charges=system.charges)
    if calculator is not None:
        atoms.calc = calculator
    return atoms


def check_atoms(atoms, system) -> None:
    """Raise `InputError` unless ``atoms`` holds the atoms of ``system`` in the same order and box.

    The message names the first mismatching atom and the fix.

    Parameters
    ----------
    atoms : ase.Atoms
    system : qmml.System
    """
    n = system.n_atoms
    if len(atoms) != n:
        raise InputError(f"the Atoms object has {len(atoms)} atoms but the qmml system ({system.source}) has {n}; "
                         "build the Atoms from the same system: to_ase_atoms(potential.system) or calc.make_atoms()")
    wrong = np.flatnonzero(np.asarray(atoms.numbers) != system.atomic_numbers)
    if len(wrong):
        i = int(wrong[0])
        raise InputError(f"atom {i} of the Atoms object is {atoms[i].symbol} but atom {i} of the qmml system is "
                         f"{system.atom_label(i)}; the atoms must come in the system's order: build them with "
                         "to_ase_atoms(potential.system) or calc.make_atoms()")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = system.cell
    if cell is None:
        if pbc.any():
            raise InputError(f"the Atoms object is periodic (pbc={pbc.tolist()}) but the qmml system "
                             f"({system.source}) has open boundaries; set atoms.pbc = False")
        return
    if not pbc.all() or abs(np.linalg.det(np.asarray(atoms.cell))) < 1e-6:
        raise InputError(f"the Atoms object has pbc={pbc.tolist()} and cell {np.asarray(atoms.cell).round(4).tolist()} "
                         f"but the qmml system ({system.source}) is periodic in three dimensions; set atoms.pbc = True "
                         "and give atoms.cell three lattice vectors (Å)")


def atom_charges(potential, result) -> np.ndarray:
    """Charge on every atom, e: environment charges on environment atoms and 0 on QM atoms (whose charge
    is the QM density), or the model's charges on every atom of an `MLPotential`; zeros if none."""
    if result.charges is None:
        return np.zeros(potential.system.n_atoms)
    return np.asarray(result.charges, dtype=np.float64)


class QMMLCalculator(Calculator):
    """A qmml potential as an ASE calculator: energy (eV), forces (eV/Å) and charges (e).

    Parameters
    ----------
    potential : qmml.Potential
        A `Hamiltonian`, `MLPotential`, `QMPotential`, `Restrained` or your own subclass.
    scf_guess : {"previous", "extrapolate", "shared"}
        Starting density of the QM engine's SCF (changes cycle counts, never results):
        "previous" (default) starts from the density this calculator converged last, which suits
        optimizers and NEB images; "extrapolate" extrapolates through this calculator's own last
        densities (`qmml.qm.guess`), which suits ASE molecular dynamics; "shared" leaves the
        engine's history alone (one calculator per potential, the engine's default behaviour).
        A calculator's first call starts from the density the potential converged last.
    **kwargs
        Passed to `ase.calculators.calculator.Calculator` (e.g. ``label``).

    Notes
    -----
    ``free_energy`` equals ``energy`` (no electronic smearing).  Charges: see `atom_charges`.
    Energy-only requests (``atoms.get_potential_energy()`` first) skip the gradient; asking for
    forces at the same geometry afterwards computes energy and forces again, so ask for forces
    first when both are wanted (ASE optimizers, MD and NEB do).  ``calc.last_result`` is the
    potential's full result of the last call (QM energy, SCF cycles, environment charges, ...).
    Periodic systems: the Atoms' cell is passed to the potential on every call (so ASE cell filters
    and NPT dynamics can change it), and ``stress`` (eV/Å^3, ASE's Voigt order and sign) is
    available when the potential gives one.

    Examples
    --------
    >>> calc = QMMLCalculator(hamiltonian)                           # doctest: +SKIP
    >>> atoms = calc.make_atoms()                                     # doctest: +SKIP
    >>> BFGS(atoms).run(fmax=0.05)                                    # doctest: +SKIP
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces", "charges", "stress"]

    def __init__(self, potential, *, scf_guess: str = "previous", **kwargs):
        if not isinstance(potential, Potential):
            raise InputError(f"QMMLCalculator: {potential!r} is not a qmml potential (a qmml.Potential: Hamiltonian, "
                             "MLPotential, QMPotential, Restrained or your own subclass)")
        if scf_guess not in SCF_GUESSES:
            raise InputError(f"QMMLCalculator: scf_guess={scf_guess!r} is not one of {SCF_GUESSES}")
        super().__init__(**kwargs)
        self.potential = potential
        self.system = potential.system
        self.scf_guess = scf_guess
        self.last_result = None
        self._trajectory = potential if scf_guess == "shared" else potential.replica()

    def __repr__(self) -> str:
        return f"QMMLCalculator({self.potential!r})"

    def make_atoms(self, positions=None) -> Atoms:
        """An `ase.Atoms` of the potential's system (positions in Å, default the system's) with this
        calculator attached; see `to_ase_atoms`."""
        return to_ase_atoms(self.system, positions, calculator=self)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)  # keeps a copy in self.atoms
        check_atoms(self.atoms, self.system)
        want_forces = "forces" in properties or "stress" in properties
        positions = np.array(self.atoms.get_positions(), dtype=np.float64)
        cell = None if self.system.cell is None else np.array(self.atoms.cell, dtype=np.float64)
        result = self._compute(positions, want_forces, cell)
        self.last_result = result
        self.results["energy"] = float(result.energy)
        self.results["free_energy"] = float(result.energy)
        self.results["charges"] = atom_charges(self.potential, result)
        if want_forces:
            self.results["forces"] = np.array(result.forces, dtype=np.float64)
        if result.stress is not None:
            self.results["stress"] = np.asarray(result.stress)[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
        elif "stress" in properties:
            raise InputError(f"QMMLCalculator: {self.potential!r} gives no stress (open boundaries, or a potential "
                             "without cell derivatives)")

    def _compute(self, positions, want_forces: bool, cell=None):
        own = self._trajectory
        with potential_lock(self.potential):
            if self.scf_guess == "previous" and own is not self.potential:
                own.restore(newest_only(own.state()))
            return check_result(own, own.compute(positions, forces=want_forces, cell=cell))
