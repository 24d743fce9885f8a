"""Reference labels (energy, forces, charges) for training environment models.

Two sources:

* `PySCFLabeller`: DFT or HF through `qmml.PySCFEngine`; charges are fitted to the electrostatic
  potential of the SCF density on Merz-Kollman shells (1.4-2.0 x van der Waals radii), with the
  hyperbolic RESP restraint on heavy atoms and the integer charge of every molecule imposed exactly.
* `XTBLabeller`: GFN2-xTB through the ``tblite`` package (optional dependency ``qmml[xtb]``), open
  or periodic; charges are GFN2's Mulliken charges.  About 100x cheaper than DFT, for large sets.

Both return `Label` in eV, eV/Å and e.  Atomic units stay inside this module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from pyscf.data import radii as _radii

from .. import units
from ..elements import ATOMIC_NUMBERS, SYMBOLS, covalent_radius_A
from ..errors import InputError, QmmlError, check_range
from ..parallel import map_tasks
from ..periodic.cell import minimum_image, volume
from .dispersion import simple_dftd3


@dataclass(frozen=True)
class Label:
    """Reference energy (eV), forces (eV/Å) and atomic charges (e) of one structure.

    ``stress`` (periodic boxes only) is (1/V) dE/d(strain) for a homogeneous strain of positions and
    cell, eV/Å^3, the convention of `qmml.ml.MLPotential` results and of ASE.

    Parameters
    ----------
    energy : float
        eV.
    forces : ndarray (n, 3)
        eV/Å.
    charges : ndarray (n,)
        e.
    stress : ndarray (3, 3), optional
        eV/Å^3 (periodic boxes only).
    """

    energy: float
    forces: np.ndarray
    charges: np.ndarray
    stress: np.ndarray | None = None


def bonds_from_distances(elements, positions_A, cell=None, scale: float = 1.2) -> np.ndarray:
    """Covalent bonds (n_bonds, 2) from covalent radii: d < scale * (r_a + r_b).

    Parameters
    ----------
    elements : array_like of int
        Atomic numbers.
    positions_A : array_like (n, 3)
    cell : array_like (3, 3), optional
        Lattice vectors (rows, Å); bonds across the boundary use the minimum image.
    """
    z = np.asarray(elements, dtype=int)
    x = np.asarray(positions_A, dtype=float)
    r = covalent_radius_A(z)
    d = x[:, None, :] - x[None, :, :]
    dist = np.linalg.norm(minimum_image(d, cell), axis=-1)
    bonded = (dist < scale * (r[:, None] + r[None, :])) & ~np.eye(len(z), dtype=bool)
    # alkali and alkaline-earth ions are never covalently bonded here
    ionic = np.isin(z, (3, 11, 19, 37, 55, 12, 20))
    bonded[ionic, :] = bonded[:, ionic] = False
    return np.argwhere(np.triu(bonded))


def molecules_from_distances(elements, positions_A, cell=None, scale: float = 1.2) -> np.ndarray:
    """Molecule index of every atom: connected components of `bonds_from_distances`.

    Parameters
    ----------
    elements : array_like (n,)
        Element symbols or atomic numbers.
    positions_A : array_like (n, 3)
        Å.
    cell : array_like (3, 3), optional
        Lattice vectors (rows, Å) of a periodic box.
    scale : float
        Two atoms are bonded closer than ``scale`` times the sum of their covalent radii.
    """
    graph = nx.Graph()
    graph.add_nodes_from(range(len(elements)))
    graph.add_edges_from(map(tuple, bonds_from_distances(elements, positions_A, cell, scale)))
    molecule = np.empty(len(elements), dtype=np.int64)
    for k, comp in enumerate(sorted(nx.connected_components(graph), key=min)):
        molecule[list(comp)] = k
    return molecule


# -- ESP / RESP charges -------------------------------------------------------------------
#: Merz-Kollman radii (Å) for the ESP grid; elements not listed use 1.0 x PySCF's van der Waals radius.
MK_RADII_A = {1: 1.2, 6: 1.5, 7: 1.5, 8: 1.4, 9: 1.35, 15: 1.8, 16: 1.75, 17: 1.7}


def esp_grid(elements, positions_A, *, shells=(1.4, 1.6, 1.8, 2.0), density_per_A2: float = 3.0) -> np.ndarray:
    """Points on scaled van der Waals surfaces (Merz-Kollman), outside every atom's scaled sphere, Å.

    Parameters
    ----------
    elements : array_like (n,)
        Element symbols or atomic numbers.
    positions_A : array_like (n, 3)
        Å.
    shells : sequence of float
        Scale factors of the van der Waals radii, one surface each.
    density_per_A2 : float
        Points per Å^2 of each surface.
    """
    z = np.asarray(elements, dtype=int)
    x = np.asarray(positions_A, dtype=float)
    rad = np.array([MK_RADII_A.get(int(e), _radii.VDW[e] * units.BOHR_A) for e in z])
    points = []
    for scale in shells:
        for i in range(len(z)):
            r = scale * rad[i]
            n = max(8, int(4 * np.pi * r * r * density_per_A2))
            k = np.arange(n) + 0.5  # Fibonacci sphere: near-uniform points
            phi = np.arccos(1 - 2 * k / n)
            theta = np.pi * (1 + 5**0.5) * k
            p = x[i] + r * np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
            inside = (np.linalg.norm(p[:, None, :] - x[None, :, :], axis=-1) < scale * rad[None, :] - 1e-9).any(1)
            points.append(p[~inside])
    return np.concatenate(points)


def resp_charges(elements, positions_A, grid_A, potential_V, *, molecule=None, molecule_charges=None,
                 restraint: float = 0.0005, hyperbolic_b: float = 0.1, max_iter: int = 50) -> np.ndarray:
    """Atomic charges that best reproduce ``potential_V`` on ``grid_A`` (ESP fit), RESP-restrained.

    Minimizes sum_k (V_k - sum_i q_i / r_ki)^2 + a sum_{heavy i} (sqrt(q_i^2 + b^2) - b) subject to
    every molecule keeping its integer charge.  ``restraint`` a (Hartree^2 per e, the RESP paper's
    units) and ``hyperbolic_b`` b (e) default to the standard single-stage RESP values; a = 0 gives
    plain ESP (Merz-Kollman) charges.

    Parameters
    ----------
    elements : array_like (n,)
        Element symbols or atomic numbers.
    positions_A : array_like (n, 3)
        Å.
    grid_A : array_like (m, 3)
        Points where the potential is known (`esp_grid`), Å.
    potential_V : array_like (m,)
        Electrostatic potential of the structure at the points, V.
    molecule : array_like (n,) int, optional
        Molecule of every atom (default one molecule).
    molecule_charges : array_like, optional
        Integer charge of every molecule, e (default 0).
    restraint : float
        a, the hyperbolic restraint's strength (Hartree^2 per e).
    hyperbolic_b : float
        b, e.
    max_iter : int
        Iterations of the restrained fit.

    Returns
    -------
    ndarray (n_atoms,)
        Charges, e; each molecule's sum is exact to machine precision.
    """
    z = np.asarray(elements, dtype=int)
    n = len(z)
    molecule = np.zeros(n, dtype=int) if molecule is None else np.asarray(molecule, dtype=int)
    n_mol = molecule.max() + 1
    totals = np.zeros(n_mol) if molecule_charges is None else np.asarray(molecule_charges, dtype=float)
    # work in atomic units so the restraint strength has its usual meaning
    v = np.asarray(potential_V, float) / units.HARTREE_EV
    r = np.linalg.norm(np.asarray(grid_A)[:, None, :] - np.asarray(positions_A)[None, :, :], axis=-1)
    design = 1.0 / (r * units.ANGSTROM_BOHR)
    a_mat, b_vec = design.T @ design, design.T @ v
    constraint = np.zeros((n_mol, n))
    constraint[molecule, np.arange(n)] = 1.0
    heavy = z > 1
    q = np.zeros(n)
    for _ in range(max_iter):
        restrained = a_mat.copy()
        restrained[np.diag_indices(n)] += np.where(heavy, restraint / np.sqrt(q * q + hyperbolic_b**2), 0.0)
        kkt = np.block([[restrained, constraint.T], [constraint, np.zeros((n_mol, n_mol))]])
        q_new = np.linalg.solve(kkt, np.concatenate([b_vec, totals]))[:n]
        if np.max(np.abs(q_new - q)) < 1e-8:
            q = q_new
            break
        q = q_new
    return q


class PySCFLabeller:
    """DFT/HF energies, forces and RESP charges of open structures.

    Parameters
    ----------
    method, basis : str
        PySCF method and basis (e.g. "b3lyp", "6-31g*").
    dispersion : {None, "d3bj", "d3zero"}
        Add Grimme's D3 dispersion with Becke-Johnson (or zero) damping and the published parameters of
        ``method`` (simple-dftd3, the ``dftd3`` package), energy and forces: revPBE-D3(BJ) or
        B3LYP-D3(BJ), the functionals whose liquid water is near its real density.
    **engine_options
        Passed to `qmml.PySCFEngine` (density_fit, conv_tol, ...).
    """

    def __init__(self, method: str = "b3lyp", basis: str = "6-31g*", *, dispersion: str | None = None,
                 **engine_options):
        from ..qm import PySCFEngine

        if dispersion not in (None, "d3bj", "d3zero"):
            raise InputError(f"dispersion={dispersion!r}: use None, 'd3bj' or 'd3zero'")
        self.dispersion = dispersion
        if dispersion is not None:
            self._d3_parameters(method)  # an unknown functional fails here, not after the first SCF
        self.engine = PySCFEngine(method, basis, **engine_options)
        suffix = "" if dispersion is None else f"-{dispersion.upper().replace('D3BJ', 'D3(BJ)')}"
        self.reference = f"{method}{suffix}/{basis} (PySCF), RESP charges"

    def _d3_parameters(self, method):
        interface = simple_dftd3()
        damping = interface.RationalDampingParam if self.dispersion == "d3bj" else interface.ZeroDampingParam
        try:
            return damping(method=method)
        except Exception as err:  # simple-dftd3 raises its own error type for an unknown method
            raise InputError(f"simple-dftd3 has no {self.dispersion} parameters for {method!r} ({err}); choose a "
                             "functional it knows (e.g. revpbe, b3lyp, pbe)") from None

    def _d3(self, elements, positions_A):
        """D3 energy (eV) and forces (eV/Å) of the structure."""
        interface = simple_dftd3()
        model = interface.DispersionModel(np.asarray(elements, dtype=np.int32),
                                          np.asarray(positions_A, float) * units.ANGSTROM_BOHR)
        out = model.get_dispersion(self._d3_parameters(self.engine.method), grad=True)
        return out["energy"] * units.HARTREE_EV, -np.asarray(out["gradient"]) * units.HARTREE_EV / units.BOHR_A

    def molecular_guess(self, symbols, positions_A, molecule, molecule_charges):
        """Density matrix of the cluster as the sum of its molecules' own SCF densities (each molecule alone,
        loosely converged on a coarse grid), or None where a molecule is open-shell.  A better start than
        superposed atoms for a cluster of molecules: a 6-water revPBE/def2-SVP cut-out converges in 9 instead of 13
        cycles, to the same energy (3e-10 Eh)."""
        from pyscf import dft, scf

        try:
            full = self.engine.build_molecule(symbols, positions_A, int(round(sum(molecule_charges))), 1)
        except InputError:
            return None  # an odd number of electrons in all
        ao = full.aoslice_by_atom()
        dm = np.zeros((full.nao, full.nao))
        for m, q in enumerate(molecule_charges):
            atoms = np.flatnonzero(np.asarray(molecule) == m)
            try:
                sub = self.engine.build_molecule([symbols[a] for a in atoms], np.asarray(positions_A)[atoms],
                                                 int(round(q)), 1)
            except InputError:
                return None  # an odd number of electrons: no closed-shell guess for this molecule
            if self.engine.is_hf:
                mf = scf.RHF(sub)
            else:
                mf = dft.RKS(sub)
                mf.xc, mf.grids.level = self.engine.method, 1
            mf.conv_tol, mf.verbose = 1e-6, 0
            mf.kernel()
            idx = np.concatenate([np.arange(ao[a, 2], ao[a, 3]) for a in atoms])
            dm[np.ix_(idx, idx)] = mf.make_rdm1()
        return dm

    def __call__(self, elements, positions_A, *, charge: int = 0, multiplicity: int = 1, molecule=None,
                 molecule_charges=None, cell=None) -> Label:
        if cell is not None:
            raise InputError("PySCFLabeller labels open structures only; use XTBLabeller for periodic boxes")
        symbols = [SYMBOLS[int(z) - 1] for z in elements]
        grid = esp_grid(elements, positions_A)
        dm0 = None
        if molecule_charges is not None and len(molecule_charges) > 1 and multiplicity == 1:
            dm0 = self.molecular_guess(symbols, positions_A, molecule, molecule_charges)
        result = self.engine.compute(symbols, positions_A, charge=charge, multiplicity=multiplicity,
                                     probe_positions=grid, dm0=dm0)
        if molecule_charges is None:
            molecule, molecule_charges = None, [charge]
        q = resp_charges(elements, positions_A, grid, result.probe_potential, molecule=molecule,
                         molecule_charges=molecule_charges)
        energy, forces = result.energy, result.forces
        if self.dispersion is not None:
            e_d, f_d = self._d3(elements, positions_A)
            energy, forces = energy + e_d, forces + f_d
        return Label(energy, forces, q)


class XTBLabeller:
    """GFN2-xTB (or GFN1-xTB) energies, forces and Mulliken charges via ``tblite``.

    One labeller follows one composition; successive calls reuse the previous wavefunction as the
    SCF guess, which makes it a cheap force engine for sampling trajectories.

    Parameters
    ----------
    accuracy : float
        tblite's accuracy factor (smaller is tighter; 1.0 is its default).
    elements : array_like of int
    charge : int
    multiplicity : int
    cell : array_like (3, 3), optional
        Lattice vectors (rows, Å) for a periodic box.
    method : str
        "GFN2-xTB" (default) or "GFN1-xTB".
    threads : int, optional
        OpenMP threads tblite may use during a call (threadpoolctl): default the cores this process may run
        on, at most ``OMP_NUM_THREADS``.  tblite stalls when its threads and others' (torch, a second
        labeller) outnumber the cores.

    With a cell, labels also carry the stress (eV/Å^3).
    """

    def __init__(self, elements, *, charge: int = 0, multiplicity: int = 1, cell=None, method: str = "GFN2-xTB",
                 accuracy: float = 1.0, threads: int | None = None):
        try:
            from tblite.interface import Calculator
        except ImportError:
            raise InputError("XTBLabeller needs the tblite package: pip install 'qmml[xtb]'") from None
        self._calculator_class = Calculator
        self.elements = np.asarray(elements, dtype=int)
        self.charge, self.multiplicity, self.method, self.accuracy = charge, multiplicity, method, accuracy
        self.cell = None if cell is None else np.asarray(cell, float)
        self.reference = f"{method} (tblite), Mulliken charges"
        self.threads = _default_threads() if threads is None else int(check_range("threads", threads, low=1))
        self._calc = None
        self._previous = None

    def _start(self, positions_bohr):
        lattice = None if self.cell is None else self.cell * units.ANGSTROM_BOHR
        periodic = None if self.cell is None else np.array([True, True, True])
        self._calc = self._calculator_class(self.method, self.elements, positions_bohr, charge=float(self.charge),
                                            uhf=self.multiplicity - 1, lattice=lattice, periodic=periodic)
        self._calc.set("verbosity", 0)
        self._calc.set("accuracy", self.accuracy)
        self._previous = None

    def __call__(self, positions_A) -> Label:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads, user_api="openmp"):
            return self._label(positions_A)

    def _label(self, positions_A) -> Label:
        x = np.asarray(positions_A, dtype=float) * units.ANGSTROM_BOHR
        if self._calc is None:
            self._start(x)
        else:
            self._calc.update(x)
        try:
            result = self._calc.singlepoint(self._previous) if self._previous is not None else self._calc.singlepoint()
        except RuntimeError:
            result = None
        if result is None:  # retry from a fresh guess before giving up
            self._start(x)
            try:
                result = self._calc.singlepoint()
            except RuntimeError as err:
                self._calc = None
                raise QmmlError(f"{self.method} failed for a {len(x)}-atom structure: {err}") from None
        self._previous = result
        stress = None
        if self.cell is not None:
            # tblite's "virial" is dE/d(strain) in Hartree (checked against finite strain)
            stress = np.asarray(result.get("virial"), dtype=float) * units.HARTREE_EV / volume(self.cell)
        return Label(float(result.get("energy")) * units.HARTREE_EV,
                     -np.asarray(result.get("gradient")) * units.HARTREE_PER_BOHR_EV_PER_A,
                     np.asarray(result.get("charges"), dtype=float).copy(), stress)


def _default_threads() -> int:
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        return max(1, min(cores, int(os.environ.get("OMP_NUM_THREADS", cores))))
    except ValueError:
        return cores


# -- a reference method as a picklable recipe -----------------------------------------------------
@dataclass(frozen=True)
class LabellerSpec:
    """A reference method as a recipe, built in each worker: picklable where a labeller is not.

    Parameters
    ----------
    kind : {"xtb", "pyscf"}
        `qmml.ml.XTBLabeller` (tblite; energies, forces, Mulliken charges; periodic cells allowed)
        or `qmml.ml.PySCFLabeller` (HF/DFT, RESP charges; open structures).
    method : str, optional
        "GFN2-xTB" (default for xtb) or "GFN1-xTB"; a PySCF method (default "b3lyp").
    basis : str
        PySCF basis (kind "pyscf").
    options : dict
        More keyword arguments: ``accuracy`` for xtb; `qmml.PySCFEngine` options (``density_fit``,
        ``conv_tol``, ...) for pyscf.

    Calling it labels one structure (see `label_structures`) and returns a `qmml.ml.Label`
    (eV, eV/Å, e).
    """

    kind: str
    method: str | None = None
    basis: str = "6-31g*"
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("xtb", "pyscf"):
            raise InputError(f"LabellerSpec: kind={self.kind!r} is not known; use 'xtb' (GFN2-xTB through tblite) "
                             "or 'pyscf' (HF/DFT with RESP charges)")
        if self.method is None:
            object.__setattr__(self, "method", "GFN2-xTB" if self.kind == "xtb" else "b3lyp")

    @property
    def reference(self) -> str:
        """The level of theory, as model files record it."""
        if self.kind == "xtb":
            return f"{self.method} (tblite), Mulliken charges"
        return f"{self.method}/{self.basis} (PySCF), RESP charges"

    def __call__(self, structure):
        s = structure_fields(structure)
        if self.kind == "xtb":
            labeller = XTBLabeller(s["elements"], charge=s["charge"], multiplicity=s["multiplicity"], cell=s["cell"],
                                   method=self.method, **self.options)
            return labeller(s["positions"])
        return PySCFLabeller(self.method, self.basis, **self.options)(
            s["elements"], s["positions"], charge=s["charge"], multiplicity=s["multiplicity"], molecule=s["molecule"],
            molecule_charges=s["molecule_charges"], cell=s["cell"])


def structure_fields(structure) -> dict:
    """Elements (atomic numbers), positions (Å), charge and the optional fields of one structure."""
    if isinstance(structure, (tuple, list)) and len(structure) == 2:
        structure = dict(zip(("elements", "positions"), structure))
    get = structure.__getitem__ if isinstance(structure, dict) else functools.partial(getattr, structure)
    try:
        elements, positions = get("elements"), get("positions")
    except (AttributeError, KeyError):
        raise InputError(f"{repr(structure)[:80]} is not a structure; give qmml.ml.Frame "
                         "objects, objects with elements and positions, or (elements, positions) pairs") from None
    try:
        elements = np.array([ATOMIC_NUMBERS[e.capitalize()] if isinstance(e, str) else int(e) for e in elements])
    except KeyError as err:
        raise InputError(f"unknown element {err.args[0]!r}; give element symbols such as 'O' or "
                         "atomic numbers") from None
    positions = np.asarray(positions, dtype=np.float64)
    if positions.shape != (len(elements), 3):
        raise InputError(f"positions have shape {positions.shape}, expected ({len(elements)}, 3)")

    def optional(name, default=None):
        try:
            value = get(name)
        except (AttributeError, KeyError):
            return default
        return default if value is None else value

    molecule_charges = optional("molecule_charges")
    charge = optional("charge", round(float(np.sum(molecule_charges))) if molecule_charges is not None else 0)
    return {"elements": elements, "positions": positions, "charge": int(charge),
            "multiplicity": int(optional("multiplicity", 1)), "molecule": optional("molecule"),
            "molecule_charges": molecule_charges, "cell": optional("cell")}


def label_structures(labeller, structures, *, executor=None, progress: bool = True, errors: str = "raise") -> list:
    """Reference labels (energy, forces, charges) of many structures, one task each.

    Parameters
    ----------
    labeller : LabellerSpec or callable
        ``LabellerSpec("xtb")``, ``LabellerSpec("pyscf", "b3lyp", "6-31g*")``, or any picklable
        ``labeller(structure) -> Label``.
    structures : iterable
        `qmml.ml.Frame` objects (their molecules and molecule charges are used), anything with
        ``elements`` (atomic numbers or symbols) and ``positions`` (Å) and optionally ``charge``,
        ``multiplicity``, ``molecule``, ``molecule_charges`` and ``cell``, or (elements, positions)
        pairs.  Without charge information a structure is neutral; the default multiplicity is 1.
    executor, progress, errors
        As in `qmml.parallel.map_tasks` (default: a local process pool).

    Returns
    -------
    list of qmml.ml.Label
        In the order of ``structures``: energy (eV), forces (eV/Å), charges (e).
    """
    if isinstance(labeller, (PySCFLabeller, XTBLabeller)):
        raise InputError(f"label_structures: give a LabellerSpec (e.g. LabellerSpec('pyscf', 'b3lyp', '6-31g*') or "
                         f"LabellerSpec('xtb')), not a {type(labeller).__name__}: each worker builds its own labeller")
    return map_tasks(labeller, structures, executor=executor, progress=progress, errors=errors,
                     description="labelling")
