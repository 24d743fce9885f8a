"""Hydrogen bonds through MDAnalysis's HydrogenBondAnalysis, with donors and acceptors from qmml charges."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: Donors and acceptors: atoms more negative than this, e (MDAnalysis's default guess).
POLAR_CHARGE = -0.5
#: Hydrogen-bonding hydrogens: atoms of mass 0.9-1.1 amu more positive than this, e.
HYDROGEN_CHARGE = 0.3


@dataclass(frozen=True)
class HydrogenBonds:
    """Hydrogen bonds found in each frame.

    Attributes
    ----------
    table : ndarray (n_bonds, 6)
        frame, donor index, hydrogen index, acceptor index, D-A distance (Å), D-H-A angle (degrees).
    count_by_frame : ndarray (n_frames,)
    """

    table: np.ndarray
    count_by_frame: np.ndarray


def hydrogen_bonds(universe, *, charges=None, donors=None, hydrogens=None, acceptors=None,
                   d_a_cutoff_A: float = 3.0, angle_cutoff_deg: float = 150.0, d_h_cutoff_A: float = 1.2,
                   start=None, stop=None, step=None) -> HydrogenBonds:
    """Hydrogen bonds D-H...A per frame.

    Parameters
    ----------
    start, stop, step : int, optional
        Frames analysed (Python slice of the trajectory).
    universe : MDAnalysis.Universe
    charges : array_like (n_atoms,), optional
        Atomic charges (e), e.g. qmml's topology or ML charges; default the universe's own.  Without
        explicit selections, donors and acceptors are atoms below `POLAR_CHARGE` and hydrogens atoms
        of about 1 amu above `HYDROGEN_CHARGE` (MDAnalysis's thresholds), so the charges qmml
        predicts decide what counts.
    donors, hydrogens, acceptors : str, optional
        MDAnalysis selections that override the guesses.
    d_a_cutoff_A, angle_cutoff_deg, d_h_cutoff_A : float
        Donor-acceptor distance (Å), minimum D-H-A angle (degrees), donor-hydrogen distance for
        pairing without bonds (Å).
    """
    from MDAnalysis.analysis.hydrogenbonds import HydrogenBondAnalysis

    atoms = universe.atoms
    if charges is None and hasattr(atoms, "charges"):
        charges = atoms.charges
    if donors is None or hydrogens is None or acceptors is None:
        if charges is None:
            raise InputError("hydrogen_bonds: give charges= (e.g. the topology or ML charges) to find donors and "
                             "acceptors, or all three of donors=, hydrogens= and acceptors= selections")
        charges = np.asarray(charges, dtype=float).ravel()
        if len(charges) != len(atoms):
            raise InputError(f"hydrogen_bonds: {len(charges)} charges for {len(atoms)} atoms")
        masses = atoms.masses if hasattr(atoms, "masses") else np.full(len(atoms), np.nan)
        light = (masses > 0.9) & (masses < 1.1) if np.all(np.isfinite(masses)) else np.ones(len(atoms), bool)

        def select(mask):
            return "index " + " ".join(map(str, np.flatnonzero(mask))) if mask.any() else ""

        polar = charges < POLAR_CHARGE
        hydrogens = hydrogens or select(light & (charges > HYDROGEN_CHARGE))
        donors = donors or select(polar)
        acceptors = acceptors or select(polar)
    n_frames = len(range(*slice(start, stop, step).indices(len(universe.trajectory))))
    if not (hydrogens and donors and acceptors):
        return HydrogenBonds(np.zeros((0, 6)), np.zeros(n_frames, dtype=int))  # nothing polar enough
    analysis = HydrogenBondAnalysis(universe, donors_sel=donors, hydrogens_sel=hydrogens, acceptors_sel=acceptors,
                                    d_h_cutoff=d_h_cutoff_A, d_a_cutoff=d_a_cutoff_A,
                                    d_h_a_angle_cutoff=angle_cutoff_deg).run(start=start, stop=stop, step=step)
    table = np.asarray(analysis.results.hbonds).reshape(-1, 6)
    frames = np.asarray(analysis.frames)
    counts = np.array([np.count_nonzero(table[:, 0] == f) for f in frames], dtype=int)
    return HydrogenBonds(table, counts)
