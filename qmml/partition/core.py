"""`partition()`: split a System into a QM region (with link atoms) and an environment."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import PartitionError
from ..system import System, check_overlaps
from .boundary import BoundaryMap, build_boundary_map
from .cuts import check_cuts, find_cut_bonds
from .links import LinkAtom, link_scale_factor
from .selection import resolve_qm_atoms
from .shell import MLShell, build_shell

#: Topology charges are treated as integer when within this of one.
INTEGER_TOLERANCE_E = 1e-4


@dataclass(frozen=True, eq=False)
class Partition:
    """A System split into QM atoms + link atoms and environment atoms.

    Attributes
    ----------
    system : System
    qm_atoms, env_atoms : ndarray of int
        Sorted atom indices of the two regions.
    charge, multiplicity : int
        Of the QM region including its link atoms.
    links : tuple of LinkAtom
    boundary : BoundaryMap
        Embedding sites and their charges as linear maps (see `qmml.partition.boundary`).
    env_topology_charges : ndarray or None
        Topology charges of the environment atoms (e), made to sum to an integer (see `report`).
    notes : tuple of str
        Things the user should know (charge corrections, mismatches).
    shell : MLShell or None
        The ML layer of a three-layer (QM/ML/MM) partition (`qmml.partition.shell`); None for two layers.
    """

    system: System
    qm_atoms: np.ndarray
    env_atoms: np.ndarray
    charge: int
    multiplicity: int
    links: tuple[LinkAtom, ...]
    boundary: BoundaryMap
    env_topology_charges: np.ndarray | None
    notes: tuple[str, ...] = ()
    shell: MLShell | None = None
    _qm_map: sp.csr_matrix = field(default=None, repr=False)

    @property
    def qm_elements(self) -> list[str]:
        """Elements of the QM centres: QM atoms, then link atoms."""
        return [str(e) for e in self.system.elements[self.qm_atoms]] + [lk.element for lk in self.links]

    @property
    def qm_atomic_numbers(self) -> np.ndarray:
        """Atomic numbers of the QM centres: QM atoms, then link atoms."""
        from ..elements import ATOMIC_NUMBERS

        return np.array([ATOMIC_NUMBERS[e] for e in self.qm_elements], dtype=int)

    @property
    def n_electrons(self) -> int:
        return int(self.system.atomic_numbers[self.qm_atoms].sum()) + len(self.links) - self.charge

    @property
    def qm_map(self) -> sp.csr_matrix:
        """Sparse (n_qm + n_links, n_atoms) map from atom positions to QM centre positions."""
        return self._qm_map

    def qm_positions(self, positions: np.ndarray) -> np.ndarray:
        """QM centre coordinates (Å): QM atoms then link atoms."""
        return np.asarray(self._qm_map @ positions)

    def qm_atom_forces(self, centre_forces: np.ndarray) -> np.ndarray:
        """Forces on all atoms (n_atoms, 3) from forces on QM centres; link forces split (1-g)/g."""
        return np.asarray(self._qm_map.T @ centre_forces)

    @property
    def shell_atoms(self) -> np.ndarray:
        """Atoms of the ML shell (empty without one)."""
        return self.shell.atoms if self.shell is not None else np.zeros(0, dtype=int)

    @property
    def mm_atoms(self) -> np.ndarray:
        """Environment atoms outside the ML shell: the MM layer of a three-layer partition."""
        return np.setdiff1d(self.env_atoms, self.shell_atoms)

    def report(self) -> str:
        """A readable summary of the partition."""
        s = self.system
        formula = _formula(self.qm_elements)
        lines = [
            f"Partition of {s.source}: {s.n_atoms} atoms",
            f"  QM region     : {_count(len(self.qm_atoms), 'atom')} + {_count(len(self.links), 'link atom')} ({formula}), "
            f"charge {self.charge:+d}, multiplicity {self.multiplicity}, {self.n_electrons} electrons",
            f"  environment   : {_count(len(self.env_atoms), 'atom')}, boundary scheme '{self.boundary.scheme}', "
            f"{self.boundary.n_sites} embedding sites",
        ]
        if self.links:
            lines.append("  cut bonds (Q1 - M1, link atom at R_Q1 + g (R_M1 - R_Q1)):")
            for lk in self.links:
                lines.append(f"    {s.atom_label(lk.q1)} - {s.atom_label(lk.m1)}  "
                             f"{s.elements[lk.q1]}-{s.elements[lk.m1]}  g = {lk.g:.4f}")
        else:
            lines.append("  cut bonds     : none")
        if self.shell is not None:
            residues = len(np.unique(s.residue_index[self.shell.atoms]))
            lines.append(f"  ML shell      : {_count(len(self.shell.atoms), 'atom')} in {_count(residues, 'whole residue')}, "
                         f"charge {self.shell.charge:+d}, {_count(len(self.shell.caps), 'H cap')} in the ML calculation")
            for cap in self.shell.caps:
                lines.append(f"    cap on {s.atom_label(cap.q1)} - {s.atom_label(cap.m1)}  g = {cap.g:.4f}")
            lines.append(f"  MM layer      : {_count(len(self.mm_atoms), 'atom')}")
        if s.charges is not None:
            qm_sum = float(s.charges[self.qm_atoms].sum())
            uncharged = _uncharged_residues(s, self.qm_atoms)
            if len(uncharged) == len(np.unique(s.residue_index[self.qm_atoms])):
                lines.append("  topology charge of QM atoms: none (no force-field parameters)")
            elif uncharged:
                lines.append(f"  topology charge of QM atoms: {qm_sum:+.4f} e, without {', '.join(uncharged)} (no "
                             "force-field parameters), so it says nothing of the QM charge")
            else:
                lines.append(f"  topology charge of QM atoms: {qm_sum:+.4f} e, implying QM charge {round(qm_sum):+d} "
                             f"(given: {self.charge:+d})")
            lines.append(f"  environment topology charge: {float(self.env_topology_charges.sum()):+.4f} e")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def partition(
    system: System,
    qm,
    *,
    charge: int,
    multiplicity: int = 1,
    link="scaled",
    boundary: str = "rcd",
    buffer_A: float | None = None,
    complete: str | None = None,
    allow_polar_cuts: bool = False,
    allow_multiple_bond_cuts: bool = False,
    allow_multiple_links: bool = False,
    shell=None,
    shell_radius_A: float | None = None,
) -> Partition:
    """Split ``system`` into a QM region and an environment.

    Parameters
    ----------
    system : System
    qm : str or array_like of int
        MDAnalysis selection string or atom indices of the QM region.
    charge : int
        Total charge of the QM region (link atoms included), e.
    multiplicity : int
        Spin multiplicity 2S+1 of the QM region.
    link : "scaled" or float
        Link-atom placement: "scaled" puts the H at the tabulated Q1-H length along the cut bond as it is
        in ``system`` (g fixed for the run); a number fixes g.
    boundary : str
        Boundary charge scheme: none, z1, z2, z3, rc, rcd (default) or shift.
    buffer_A : float, optional
        Add every atom within this distance (Å) of the selection.
    complete : {None, "residue", "molecule"}
        Grow the QM region to whole residues or molecules.
    allow_polar_cuts, allow_multiple_bond_cuts, allow_multiple_links : bool
        Overrides for the cuts qmml refuses by default.
    shell : str or array_like of int, optional
        The ML shell of a three-layer QM/ML/MM partition (MDAnalysis selection or atom indices), completed
        to whole residues; see `qmml.partition.shell`.
    shell_radius_A : float, optional
        Instead of ``shell``: every residue with an atom within this distance (Å) of a QM atom.

    Notes
    -----
    When the system has topology charges whose environment part does not sum to an integer
    (the boundary cut through a charge group), the difference to the nearest integer is spread
    evenly over the environment atoms of the residues that hold an M1 atom (all environment atoms
    when nothing is cut); the report states the shift.
    """
    check_overlaps(system)
    if system.bonds is None:
        raise PartitionError(
            f"{system.source} has no bond information, so cut bonds cannot be found; load it with "
            "load_system(..., guess_bonds=True), or give bonds= to System.from_arrays (bonds=[] if there are none)")
    multiplicity, charge = int(multiplicity), int(charge)
    if multiplicity < 1:
        raise PartitionError(f"multiplicity={multiplicity} must be 1 or more")
    qm_atoms = resolve_qm_atoms(system, qm, buffer_A=buffer_A, complete=complete)
    env_atoms = np.setdiff1d(np.arange(system.n_atoms), qm_atoms)
    cuts = find_cut_bonds(system, qm_atoms)
    check_cuts(system, cuts, allow_polar_cuts=allow_polar_cuts,
               allow_multiple_bond_cuts=allow_multiple_bond_cuts, allow_multiple_links=allow_multiple_links)
    links = tuple(
        LinkAtom(q1, m1, link_scale_factor(system, q1, m1, link,
                                           f"cut bond {system.atom_label(q1)} - {system.atom_label(m1)}"))
        for q1, m1 in cuts)

    n_electrons = int(system.atomic_numbers[qm_atoms].sum()) + len(links) - charge
    unpaired = multiplicity - 1
    if n_electrons < 1:
        most = n_electrons + charge - 1
        raise PartitionError(
            f"the QM region ({len(qm_atoms)} atoms + {len(links)} link atoms) has {n_electrons + charge} protons, so "
            f"charge {charge:+d} leaves {n_electrons} electrons; a QM region needs electrons: give a charge of at "
            f"most {most:+d}")
    if n_electrons < unpaired:
        raise PartitionError(
            f"the QM region has {n_electrons} electrons at charge {charge:+d}, too few for multiplicity "
            f"{multiplicity} ({unpaired} unpaired electrons); lower the multiplicity or the charge")
    if (n_electrons - unpaired) % 2:
        raise PartitionError(
            f"the QM region ({len(qm_atoms)} atoms + {len(links)} link atoms) has {n_electrons} electrons at "
            f"charge {charge:+d}, which cannot have multiplicity {multiplicity}; "
            f"change charge= or multiplicity= (an {'even' if n_electrons % 2 == 0 else 'odd'} count needs an "
            f"{'odd' if n_electrons % 2 == 0 else 'even'} multiplicity)")

    notes = []
    env_charges = None
    if system.charges is not None:
        env_charges, note = _integer_environment_charges(system, env_atoms, links)
        if note:
            notes.append(note)
        qm_topology = float(system.charges[qm_atoms].sum())
        # a residue whose charges are all zero (a ligand without force-field parameters) carries no information
        if not _uncharged_residues(system, qm_atoms) and abs(qm_topology - charge) > 0.5:
            notes.append(f"the topology charges of the QM atoms sum to {qm_topology:+.3f} e but charge={charge:+d} "
                         "was given; check the protonation state")

    boundary_map = build_boundary_map(boundary, env_atoms, [lk.m1 for lk in links], system.bond_graph,
                                      system.residue_index, system.n_atoms)
    ml_shell = None
    if shell is not None or shell_radius_A is not None:
        ml_shell = build_shell(system, qm_atoms, shell, shell_radius_A, link)
    return Partition(system, qm_atoms, env_atoms, charge, multiplicity, links, boundary_map, env_charges,
                     tuple(notes), ml_shell, _qm_map=_qm_map(qm_atoms, links, system.n_atoms))


def _qm_map(qm_atoms: np.ndarray, links: tuple[LinkAtom, ...], n_atoms: int) -> sp.csr_matrix:
    rows, cols, vals = list(range(len(qm_atoms))), list(qm_atoms), [1.0] * len(qm_atoms)
    for k, lk in enumerate(links):
        for atom, weight in lk.weights:
            rows.append(len(qm_atoms) + k)
            cols.append(atom)
            vals.append(weight)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(qm_atoms) + len(links), n_atoms))


def _integer_environment_charges(system: System, env_atoms: np.ndarray, links) -> tuple[np.ndarray, str]:
    q = system.charges[env_atoms].astype(np.float64)
    total = float(q.sum())
    excess = round(total) - total
    if abs(excess) <= INTEGER_TOLERANCE_E:
        return q, ""
    cut_residues = {system.residue_index[lk.m1] for lk in links}
    receivers = (np.isin(system.residue_index[env_atoms], list(cut_residues)) if cut_residues
                 else np.ones(len(env_atoms), dtype=bool))
    q[receivers] += excess / receivers.sum()
    where = "the environment atoms of the cut residues" if cut_residues else "all environment atoms"
    return q, (f"environment topology charges summed to {total:+.4f} e; {excess:+.4f} e was spread evenly over "
               f"{int(receivers.sum())} atoms ({where}) to make it {round(total):+d} e")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _formula(elements: list[str]) -> str:
    from collections import Counter

    counts = Counter(elements)
    order = [e for e in ("C", "H") if e in counts] + sorted(e for e in counts if e not in ("C", "H"))
    return "".join(f"{e}{counts[e] if counts[e] > 1 else ''}" for e in order)


def _uncharged_residues(system: System, atoms) -> list[str]:
    """Labels ("CHM 1") of the residues whose ``atoms`` all have zero topology charge."""
    atoms = np.asarray(atoms, dtype=int)
    residues = system.residue_index[atoms]
    labels = []
    for r in np.unique(residues):
        mine = atoms[residues == r]
        if not np.any(system.charges[mine] != 0):
            labels.append(f"{system.resnames[mine[0]]} {system.resids[mine[0]]}")
    return labels
