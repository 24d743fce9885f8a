"""Neighbour lists: the one source of atom pairs in qmml.

Every part that needs pairs within a cutoff (the environment model's descriptors and Coulomb term, the Ewald
real-space sum, dispersion, the bonded baseline, the overlap check of a structure) takes them from here.  The
search is vesin's (linear-time cell lists in C++, periodic and triclinic, boxes thinner than twice the cutoff
included): 6x faster than the torch cell list qmml had before, the same pairs (benchmarks/RESULTS.md,
"Neighbour lists of the environment model").  `VerletList` adds a skin, so that an MD run rebuilds its list
only when an atom has moved far enough to matter.

Conventions: a pair (i, j, S) stands for the vector x_j + S @ cell - x_i, with S the integer lattice
translation (zero in open boundaries); positions in Å.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np
import torch


def _box(cell):
    if cell is None:
        return np.zeros((3, 3)), False
    box = np.asarray(cell.detach().cpu() if torch.is_tensor(cell) else cell, dtype=np.float64)
    if box.shape != (3, 3):
        raise ValueError(f"cell must be 3x3 lattice vectors (rows, Å), got shape {box.shape}")
    if abs(np.linalg.det(box)) < 1e-6:
        raise ValueError("cell has zero volume; give three independent lattice vectors in Å")
    return box, True


def pairs(positions, cutoff: float, cell=None, *, full: bool = True):
    """Pairs of atoms closer than ``cutoff``.

    Parameters
    ----------
    positions : array_like (n, 3)
        Å (NumPy or torch; not differentiated).
    cutoff : float
        Å.
    cell : array_like (3, 3), optional
        Lattice vectors as rows, Å; periodic in all three directions.  None: open boundaries.
    full : bool
        Both (i, j) and (j, i) (True), or each pair once (False).

    Returns
    -------
    i, j : ndarray (n_pairs,) int32 (int64 beyond 2^31 atoms)
        In one canonical order: by i, then j, then the shift.
    shifts : ndarray (n_pairs, 3) int8 (int32 if any exceeds 127)
        Lattice translations S of atom j.
    """
    from vesin import NeighborList

    x = np.asarray(positions.detach().cpu() if torch.is_tensor(positions) else positions, dtype=np.float64)
    box, periodic = _box(cell)
    if len(x) == 0:
        empty = np.zeros(0, dtype=np.int32)
        return empty, empty, np.zeros((0, 3), dtype=np.int8)
    # vesin's half list, unsorted: its peak memory is 0.28x that of a sorted full list (measured at 8.4 M pairs,
    # 329k water atoms: +357 MB against +1,270 MB), and the compact copy below is all that outlives the call
    search = NeighborList(cutoff=float(cutoff), full_list=False, sorted=False)
    i, j, shifts = search.compute(points=x, box=box, periodic=periodic, quantities="ijS", copy=False)
    index = np.int32 if len(x) < 2**31 else np.int64
    small = len(shifts) and int(np.abs(shifts).max()) < 128
    i, j, shifts = i.astype(index), j.astype(index), shifts.astype(np.int8 if small else np.int32)
    del search
    if full:  # each pair both ways: (j, i, -S) stands for the same vector reversed
        i, j, shifts = np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([shifts, -shifts])
    return _canonical_order(i, j, shifts, len(x), periodic and len(shifts) and _images_may_repeat(box, cutoff))


def _canonical_order(i, j, shifts, n_atoms: int, repeat: bool):
    """The pairs in one canonical order (by i, then j, then the shift), whatever the search's binning: every
    subset of a list keeps it, so a `VerletList` filtered at any step orders its pairs as a fresh search would,
    and sums over pairs come out the same to the last bit (restarts, serial and parallel runs agree exactly).
    The pairs are bucketed by blocks of centres (a stable radix sort of small block numbers), then each block
    is sorted on its own: memory stays a small multiple of the compact list."""
    if len(i) < 2:
        return i, j, shifts
    block = (i // _SORT_BLOCK_ATOMS).astype(np.int16 if n_atoms // _SORT_BLOCK_ATOMS < 2**15 else np.int64)
    order = np.argsort(block, kind="stable")
    del block
    i, j, shifts = i[order], j[order], shifts[order]
    del order
    low = shifts.min(0).astype(np.int64)
    span = shifts.max(0).astype(np.int64) - low + 1
    bounds = np.searchsorted(i, np.arange(0, n_atoms + _SORT_BLOCK_ATOMS, _SORT_BLOCK_ATOMS))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi - lo < 2:
            continue
        key = (i[lo:hi] - i[lo:hi].min()).astype(np.int64) * n_atoms + j[lo:hi]
        if repeat:
            for axis in range(3):
                key *= span[axis]
                key += shifts[lo:hi, axis] - low[axis]
        order = np.argsort(key, kind="stable")
        i[lo:hi] = i[lo:hi][order]
        j[lo:hi] = j[lo:hi][order]
        shifts[lo:hi] = shifts[lo:hi][order]
    return i, j, shifts


#: Centres per block of the canonical sort in `pairs` (a few MB of keys).
_SORT_BLOCK_ATOMS = 4096


def _images_may_repeat(box, cutoff: float) -> bool:
    """Whether one atom j can meet atom i at two lattice images within ``cutoff`` (a box thinner than
    twice the cutoff), so that (i, j) alone does not name a pair."""
    volume = abs(np.linalg.det(box))
    widths = [volume / np.linalg.norm(np.cross(box[(k + 1) % 3], box[(k + 2) % 3])) for k in range(3)]
    return min(widths) < 2.0 * cutoff


def neighbour_list(positions: torch.Tensor, cutoff: float, cell=None, *, verlet: "VerletList | None" = None):
    """All ordered pairs (i, j) with norm(r_j + shift - r_i) < cutoff, as torch tensors.

    Parameters
    ----------
    positions : Tensor (n, 3)
        Å.  Not differentiated here; pass the returned shifts to rebuild differentiable vectors as
        ``positions[j] + shifts - positions[i]``.
    cutoff : float
        Å.
    cell : array_like (3, 3), optional
        Lattice vectors as rows, Å; periodic in all three directions.  None: open boundaries.

    verlet : VerletList, optional
        The trajectory's lists to reuse (see `VerletList`).

    Returns
    -------
    i, j : Tensor (n_pairs,) int64
    shifts : Tensor (n_pairs, 3)
        Lattice translation (Å) added to r_j; zero for open boundaries.
    """
    positions = torch.as_tensor(positions)
    i, j, s = pairs(positions, cutoff, cell) if verlet is None else verlet.pairs(positions, cutoff, cell)
    box, _ = _box(cell)
    device, dtype = positions.device, positions.dtype
    as_long = lambda v: torch.as_tensor(v, dtype=torch.long, device=device)  # noqa: E731
    return as_long(i), as_long(j), torch.as_tensor(s.astype(np.float64) @ box, device=device).to(dtype)


class VerletList:
    """Pair lists with a skin, kept across the steps of one trajectory (one list per cutoff).

    A list holds the pairs within ``cutoff + skin`` at the positions it was built at.  While no atom has moved
    more than ``skin / 2`` since (and the cell and the number of atoms are the same), no pair can have come
    within ``cutoff`` without being on it, so `pairs` only filters it; otherwise it is rebuilt.  Any sequence
    of positions gives exact pairs; a run that moves little between calls (MD) rebuilds seldom.

    Parameters
    ----------
    skin : float
        Å (1 Å: about one rebuild every 10-20 fs of liquid water at 300 K).

    Attributes
    ----------
    builds : int
        Lists built so far, all cutoffs together (for tests and benchmarks).
    """

    def __init__(self, skin: float = 1.0):
        if not skin >= 0:
            raise ValueError(f"skin must be >= 0 Å, got {skin}")
        self.skin = float(skin)
        self.builds = 0
        self._lists = {}
        self._lock = threading.Lock()  # threads of one executor may share a potential

    def __getstate__(self):  # a copy (another process, a replica) starts with no lists and its own lock
        return {"skin": self.skin}

    def __setstate__(self, state):
        self.__init__(state["skin"])

    def pairs(self, positions, cutoff: float, cell=None, *, full: bool = True):
        """Pairs within ``cutoff`` (Å) at ``positions`` (Å): i, j and integer lattice shifts, as `pairs`."""
        x = np.asarray(positions.detach().cpu() if torch.is_tensor(positions) else positions, dtype=np.float64)
        box = None if cell is None else _box(cell)[0]
        key = (float(cutoff), bool(full))
        with self._lock:
            kept = self._lists.get(key)
            if kept is None or not _still_valid(kept, x, box, self.skin):
                kept = (x.copy(), None if box is None else box.copy(),
                        pairs(x, cutoff + self.skin, box, full=full))
                self._lists[key] = kept
                self.builds += 1
        i, j, s = kept[2]
        vec = x[j] - x[i]
        if box is not None:
            vec += s @ box
        keep = np.einsum("ij,ij->i", vec, vec) < cutoff ** 2
        return i[keep], j[keep], s[keep]


def _still_valid(kept, x, box, skin: float) -> bool:
    reference, reference_box, _ = kept
    if x.shape != reference.shape or (box is None) != (reference_box is None):
        return False
    if box is not None and not np.array_equal(box, reference_box):
        return False
    moved = x - reference
    return bool(np.einsum("ij,ij->i", moved, moved).max(initial=0.0) <= (0.5 * skin) ** 2)


def brute_force_pairs(positions, cutoff, cell=None, max_image: int = 3):
    """Reference O(n^2 images) pair search (testing only): set of (i, j, image triple)."""
    pos = torch.as_tensor(positions, dtype=torch.float64)
    found = set()
    images = [(0, 0, 0)] if cell is None else list(itertools.product(range(-max_image, max_image + 1), repeat=3))
    cell_t = None if cell is None else torch.as_tensor(cell, dtype=torch.float64)
    for img in images:
        shift = torch.zeros(3, dtype=torch.float64) if cell_t is None else torch.tensor(img, dtype=torch.float64) @ cell_t
        d = pos[None, :, :] + shift - pos[:, None, :]
        r = torch.linalg.norm(d, dim=-1)
        for i, j in zip(*torch.nonzero(r < cutoff, as_tuple=True)):
            if i == j and img == (0, 0, 0):
                continue
            found.add((int(i), int(j), img))
    return found


class StackedNeighbours:
    """Pair lists of ``copies`` independent copies of one structure stored back to back, as one
    (copies * n, 3) array of positions (path-integral beads evaluated in one model call).

    Each copy keeps its own `VerletList`, so no pair joins two copies and each copy rebuilds only when its own
    atoms have moved more than half the skin.  Pairs come out in the copies' order, indices offset by the
    copy's first atom: the same pairs as evaluating each copy alone.

    Parameters
    ----------
    copies : int
    skin : float
        Å, of every copy's `VerletList`.
    """

    def __init__(self, copies: int, skin: float = 1.0):
        if int(copies) < 1:
            raise ValueError(f"copies must be at least 1, got {copies}")
        self.copies = int(copies)
        self.lists = [VerletList(skin) for _ in range(self.copies)]

    @property
    def builds(self) -> int:
        """Lists built so far, all copies and cutoffs together."""
        return sum(v.builds for v in self.lists)

    def pairs(self, positions, cutoff: float, cell=None, *, full: bool = True):
        """Pairs within ``cutoff`` (Å) of every copy in ``positions`` (Å): i, j and integer lattice shifts."""
        x = np.asarray(positions.detach().cpu() if torch.is_tensor(positions) else positions, dtype=np.float64)
        if len(x) % self.copies:
            raise ValueError(f"{len(x)} positions do not split into {self.copies} equal copies")
        n = len(x) // self.copies
        found = [v.pairs(x[k * n:(k + 1) * n], cutoff, cell, full=full) for k, v in enumerate(self.lists)]
        return (np.concatenate([f[0] + k * n for k, f in enumerate(found)]),
                np.concatenate([f[1] + k * n for k, f in enumerate(found)]),
                np.concatenate([f[2] for f in found]).reshape(-1, 3))
