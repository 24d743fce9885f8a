"""Radial distribution functions through MDAnalysis."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def radial_distribution(universe, select1: str, select2: str | None = None, *, r_max_A: float = 10.0,
                        n_bins: int = 100, exclude_same: str | None = None, start=None, stop=None, step=None):
    """g(r) between two selections, averaged over frames (periodic boxes are respected).

    Parameters
    ----------
    start, stop, step : int, optional
        Frames analysed (Python slice of the trajectory).
    universe : MDAnalysis.Universe
    select1, select2 : str
        MDAnalysis selections (``select2`` defaults to ``select1``).
    r_max_A : float
        Largest distance, Å.
    n_bins : int
    exclude_same : {"residue", "segment"}, optional
        Skip pairs within one residue (e.g. the O-H pairs of one water).

    Returns
    -------
    r_A : ndarray (n_bins,)
        Bin centres, Å.
    g : ndarray (n_bins,)
    """
    from MDAnalysis.analysis.rdf import InterRDF

    group1 = universe.select_atoms(select1)
    group2 = universe.select_atoms(select2 or select1)
    if len(group1) == 0 or len(group2) == 0:
        raise InputError(f"radial_distribution: selection {select1!r} or {select2!r} matches no atoms")
    if universe.dimensions is None:
        raise InputError("radial_distribution needs a periodic box (the structure has no unit cell)")
    exclusion = (1, 1) if group1 == group2 and exclude_same is None else None
    rdf = InterRDF(group1, group2, nbins=n_bins, range=(0.0, r_max_A), exclusion_block=exclusion,
                   exclude_same=exclude_same).run(start=start, stop=stop, step=step)
    return np.asarray(rdf.results.bins), np.asarray(rdf.results.rdf)
