"""Neighbour lists in linear time: a cell list in fractional coordinates, in plain PyTorch.

Works for open structures and for periodic boxes of any triclinic shape, including boxes thinner
than twice the cutoff (then several images of one atom are neighbours, as they physically are).
Cells are laid out along the lattice vectors; the number of cells to scan along vector a is
ceil(cutoff / cell width perpendicular to the b-c plane), so no pair within the cutoff is missed.
"""

from __future__ import annotations

import itertools

import torch


def _as_cell(cell, dtype, device):
    if cell is None:
        return None
    cell = torch.as_tensor(cell, dtype=dtype, device=device)
    if cell.shape != (3, 3):
        raise ValueError(f"cell must be 3x3 lattice vectors (rows, Å), got shape {tuple(cell.shape)}")
    if torch.abs(torch.det(cell)) < 1e-6:
        raise ValueError("cell has zero volume; give three independent lattice vectors in Å")
    return cell


def neighbour_list(positions: torch.Tensor, cutoff: float, cell=None, *, centres: torch.Tensor | None = None,
                   max_candidates: int = 20_000_000):
    """All ordered pairs (i, j) with |r_j + shift - r_i| < cutoff.

    Parameters
    ----------
    positions : Tensor (n, 3)
        Å.  Not differentiated here; pass the returned shifts to rebuild differentiable vectors as
        ``positions[j] + shifts - positions[i]``.
    cutoff : float
        Å.
    cell : array_like (3, 3), optional
        Lattice vectors as rows, Å; periodic in all three directions.  None: open boundaries.
    centres : Tensor (m,) of int, optional
        Only pairs whose first atom is in ``centres`` (evaluation in chunks of atoms).

    Returns
    -------
    i, j : Tensor (n_pairs,) int64
    shifts : Tensor (n_pairs, 3)
        Lattice translation (Å) added to r_j; zero for open boundaries.
    """
    return CellList(positions, cutoff, cell).pairs(centres, max_candidates=max_candidates)


class CellList:
    """Atoms binned into cells once; `pairs` then answers for any subset of centre atoms in time
    proportional to that subset, so chunked evaluation of a large system stays linear overall."""

    def __init__(self, positions: torch.Tensor, cutoff: float, cell=None):
        device, dtype = positions.device, positions.dtype
        pos = positions.detach()
        n = len(pos)
        cell = _as_cell(cell, dtype, device)
        self.n, self.cutoff, self.cell, self.pos = n, cutoff, cell, pos
        if n == 0:
            return

        if cell is None:
            lo = pos.min(0).values - 1e-3
            extent = pos.max(0).values + 1e-3 - lo
            frac = (pos - lo) / extent
            widths = extent
            periodic = False
        else:
            inv = torch.linalg.inv(cell)
            frac = pos @ inv
            frac = frac - torch.floor(frac)
            volume = torch.abs(torch.det(cell))
            widths = torch.stack([volume / torch.linalg.norm(torch.linalg.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
                                  for k in range(3)])
            periodic = True
        # cells of half the cutoff: 125 cells of (r_c/2)^3 hold fewer candidates than 27 of r_c^3, and a box
        # only somewhat wider than the cutoff still gets several cells instead of one holding every atom
        n_cells = torch.clamp(torch.floor(2.0 * widths / cutoff), min=1).long()
        reach = torch.ceil(cutoff * n_cells / widths - 1e-12).long()
        idx3 = torch.minimum((frac * n_cells).long(), n_cells - 1)
        nc = [int(v) for v in n_cells]
        cell_id = (idx3[:, 0] * nc[1] + idx3[:, 1]) * nc[2] + idx3[:, 2]
        order = torch.argsort(cell_id)
        counts = torch.bincount(cell_id, minlength=nc[0] * nc[1] * nc[2])
        starts = torch.cumsum(counts, 0) - counts

        # Unwrapped positions: atom coordinates inside the home cell plus shifts give exact images.
        home = frac @ cell if periodic else pos
        offsets = torch.tensor(list(itertools.product(*[range(-int(r), int(r) + 1) for r in reach])), device=device)

        self.periodic, self.n_cells, self.nc, self.idx3 = periodic, n_cells, nc, idx3
        self.order, self.counts, self.starts = order, counts, starts
        self.home, self.offsets = home, offsets

    def pairs(self, centres: torch.Tensor | None = None, *, max_candidates: int = 20_000_000):
        """Pairs (i, j, shifts) with i in ``centres`` (default all atoms); see `neighbour_list`."""
        pos, cutoff, cell = self.pos, self.cutoff, self.cell
        device, dtype = pos.device, pos.dtype
        centres = torch.arange(self.n, device=device) if centres is None else centres.to(device)
        if self.n == 0 or len(centres) == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty, torch.zeros((0, 3), dtype=dtype, device=device)
        periodic, n_cells, nc, idx3 = self.periodic, self.n_cells, self.nc, self.idx3
        order, counts, starts, home, offsets = self.order, self.counts, self.starts, self.home, self.offsets
        out_i, out_j, out_s = [], [], []
        c_idx3 = idx3[centres]
        step = max(1, max_candidates // max(1, len(offsets) * int(counts.max())))
        for k0 in range(0, len(centres), step):
            ci = centres[k0:k0 + step]
            c3 = c_idx3[k0:k0 + step]
            nb = c3[:, None, :] + offsets[None, :, :]  # (m, o, 3) unwrapped neighbour cells
            if periodic:
                wrap = torch.div(nb, n_cells, rounding_mode="floor")
                nb = nb - wrap * n_cells
                valid = torch.ones(nb.shape[:2], dtype=torch.bool, device=device)
            else:
                wrap = torch.zeros_like(nb)
                valid = ((nb >= 0) & (nb < n_cells)).all(-1)
                nb = torch.clamp(nb, min=0)
                nb = torch.minimum(nb, n_cells - 1)
            nid = (nb[..., 0] * nc[1] + nb[..., 1]) * nc[2] + nb[..., 2]
            cnt = torch.where(valid, counts[nid], 0).reshape(-1)
            total = int(cnt.sum())
            if total == 0:
                continue
            flat_i = ci[:, None].expand(-1, len(offsets)).reshape(-1)
            flat_start = starts[nid].reshape(-1)
            flat_wrap = wrap.reshape(-1, 3)
            rep = torch.repeat_interleave(torch.arange(len(cnt), device=device), cnt)
            local = torch.arange(total, device=device) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
            j = order[flat_start[rep] + local]
            i = flat_i[rep]
            if periodic:
                shift = flat_wrap[rep].to(dtype) @ cell
                d = home[j] + shift - home[i]
            else:
                shift = torch.zeros((total, 3), dtype=dtype, device=device)
                d = pos[j] - pos[i]
            r2 = (d * d).sum(-1)
            keep = (r2 < cutoff * cutoff) & ((i != j) | (shift.abs().sum(-1) > 0))
            i, j, shift = i[keep], j[keep], shift[keep]
            if periodic:
                # express the shift relative to the caller's (unwrapped) positions
                shift = shift + (home[j] - pos[j]) - (home[i] - pos[i])
            out_i.append(i)
            out_j.append(j)
            out_s.append(shift)
        if not out_i:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty, torch.zeros((0, 3), dtype=dtype, device=device)
        return torch.cat(out_i), torch.cat(out_j), torch.cat(out_s)




def brute_force_pairs(positions, cutoff, cell=None, max_image: int = 3):
    """Reference O(n^2 images) pair search (testing only): set of (i, j, image triple)."""
    pos = torch.as_tensor(positions, dtype=torch.float64)
    pairs = set()
    images = [(0, 0, 0)] if cell is None else list(itertools.product(range(-max_image, max_image + 1), repeat=3))
    cell_t = None if cell is None else torch.as_tensor(cell, dtype=torch.float64)
    for img in images:
        shift = torch.zeros(3, dtype=torch.float64) if cell_t is None else torch.tensor(img, dtype=torch.float64) @ cell_t
        d = pos[None, :, :] + shift - pos[:, None, :]
        r = torch.linalg.norm(d, dim=-1)
        for i, j in zip(*torch.nonzero(r < cutoff, as_tuple=True)):
            if i == j and img == (0, 0, 0):
                continue
            pairs.add((int(i), int(j), img))
    return pairs
