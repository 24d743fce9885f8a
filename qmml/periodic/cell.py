"""Cell geometry and homogeneous strain of periodic boxes (numpy arrays or torch tensors).

Convention: the lattice vectors a1, a2, a3 are the ROWS of the 3x3 matrix H (Å), as in ASE and
`qmml.System.cell`; a position with fractional coordinates f (row) is R = f H.

Strain: a symmetric 3x3 strain tensor ε deforms every position and lattice vector alike,
R' = R (I + ε)^T and H' = H (I + ε)^T (rows).  The stress of a potential E is

    stress = (1/V) dE/dε  at ε = 0,   eV/Å^3,

the ASE sign convention: a box that wants to shrink has negative diagonal stress, and the pressure
is P = -trace(stress)/3 plus the kinetic part.  `qmml.units.EV_PER_A3_GPA` converts to GPa.

Functions taking a torch tensor return torch tensors (differentiable); numpy in, numpy out.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else np


def _as_array(x):
    return x if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)


def volume(cell):
    """Cell volume |det H|, Å^3."""
    cell = _as_array(cell)
    return _lib(cell).abs(_lib(cell).linalg.det(cell))


def metric_tensor(cell):
    """Metric tensor G = H H^T (Å^2): G[i, j] = a_i . a_j for lattice vectors a_i (rows of H)."""
    cell = _as_array(cell)
    return cell @ cell.T


def deformation(strain):
    """The deformation gradient I + ε of a strain ε (3, 3)."""
    strain = _as_array(strain)
    eye = torch.eye(3, dtype=strain.dtype, device=strain.device) if isinstance(strain, torch.Tensor) else np.eye(3)
    return eye + strain


def strained(vectors, strain):
    """Rows deformed by the strain ε: ``vectors (I + ε)^T``.

    Applies alike to a cell H (3, 3, lattice vectors as rows) and to positions R (n, 3), Å.
    """
    vectors = _as_array(vectors)
    return vectors @ deformation(strain).T


def wrap(positions, cell):
    """Positions (n, 3), Å, moved by lattice vectors into the cell: fractional coordinates in [0, 1)."""
    positions, cell = _as_array(positions), _as_array(cell)
    lib = _lib(positions)
    frac = positions @ lib.linalg.inv(cell)
    return (frac - lib.floor(frac)) @ cell


def perpendicular_widths(cell):
    """Distances (Å) between opposite faces of the cell: V / |a_j x a_k| for the face spanned by a_j, a_k
    opposite a_i, i = 0, 1, 2.  A sphere of radius r fits the cell only if every width is >= 2 r."""
    cell = _as_array(cell)
    if isinstance(cell, torch.Tensor):
        faces = torch.linalg.cross(cell[[1, 2, 0]], cell[[2, 0, 1]])
        return volume(cell) / torch.linalg.norm(faces, dim=1)
    faces = np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]])
    return volume(cell) / np.linalg.norm(faces, axis=1)


def check_cell(cell, cutoff: float | None = None, *, right_handed: bool = True, name: str = "cell") -> np.ndarray:
    """The cell as a float64 (3, 3) array, or `InputError` with the fix.

    Parameters
    ----------
    cell : array_like (3, 3)
        Lattice vectors as rows, Å.
    cutoff : float, optional
        Å: the cell must be at least twice as wide as ``cutoff`` in every direction (a sphere of
        that radius fits, so the minimum-image convention holds within it).  None: no width check.
    right_handed : bool
        Refuse a left-handed cell (det H < 0).
    name : str
        What to call the cell in messages (a key of an input file, say).
    """
    if isinstance(cell, torch.Tensor):
        cell = cell.detach().cpu().numpy()
    try:
        h = np.asarray(cell, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be 3x3 lattice vectors (rows, Å), got {cell!r}") from None
    if h.shape != (3, 3):
        raise InputError(f"{name} must be 3x3 lattice vectors (rows, Å), got shape {h.shape}")
    if not np.isfinite(h).all():
        raise InputError(f"{name} has non-finite entries: {h.tolist()}")
    lengths = np.linalg.norm(h, axis=1)
    det = float(np.linalg.det(h))
    # relative to the lengths, so the test means "nearly coplanar" at any size
    if lengths.min() <= 0 or abs(det) <= 1e-8 * float(np.prod(lengths)):
        raise InputError(f"{name} is degenerate (volume {abs(det):.3g} Å^3 for vectors of length "
                         f"{np.array2string(lengths, precision=3)} Å): give three independent lattice vectors as rows")
    if right_handed and det < 0:
        raise InputError(f"{name} is left-handed (det H = {det:.6g} Å^3 < 0): swap two lattice vectors or "
                         "negate one to describe the same lattice right-handedly")
    if cutoff is not None:
        widths = perpendicular_widths(h)
        if widths.min() < 2.0 * cutoff:
            raise InputError(f"{name} is {widths.min():.3f} Å wide (perpendicular widths "
                             f"{np.array2string(widths, precision=3)} Å), thinner than twice the {cutoff:g} Å "
                             "cutoff: use a larger box (e.g. replicate it) or a shorter cutoff")
    return h


def minimum_image(vectors, cell) -> np.ndarray:
    """Separation vectors (..., 3), Å, at their shortest periodic image in ``cell`` (3x3 rows, Å; None: open
    boundaries, returned unchanged).

    Rounding the fractional coordinates finds the shortest image in an orthorhombic cell; in a skewed one
    it can miss it, so the shortest of the 27 neighbouring images of the rounded one is taken (exact for
    any cell whose reduced description is not skewed beyond 45 degrees).  The one minimum image of qmml.
    """
    d = np.asarray(vectors, dtype=np.float64)
    if cell is None:
        return d
    h = np.asarray(cell, dtype=np.float64)
    frac = d @ np.linalg.inv(h)
    d = (frac - np.round(frac)) @ h
    best, best_r2 = d.copy(), np.einsum("...x,...x->...", d, d)
    for shift in _NEIGHBOUR_CELLS @ h:
        trial = d + shift
        r2 = np.einsum("...x,...x->...", trial, trial)
        closer = r2 < best_r2 - 1e-12
        best[closer] = trial[closer]
        best_r2 = np.where(closer, r2, best_r2)
    return best


_NEIGHBOUR_CELLS = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                             if (a, b, c) != (0, 0, 0)], dtype=np.float64)
