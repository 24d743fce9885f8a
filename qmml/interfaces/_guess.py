"""SCF initial guesses when one potential serves several geometries that are not one trajectory.

A QM engine starts each SCF from densities of its previous calls (`qmml.qm.guess`).  That is right
along one MD trajectory, but NEB images, path-integral beads and the replicas a driver is handed
in turn jump between geometries: an extrapolation through the densities of *different* images is a
poor (though harmless: every SCF is converged to ``conv_tol``) starting point.  The helpers here
save and restore the potential's guess state around each call, so that each ASE calculator (NEB
image) or each i-PI geometry starts from the density of its own closest predecessor.  They change
SCF cycle counts only, never results.

A lock per potential serializes calls from several threads (ASE's threaded NEB), because a
potential holds state (SCF history, cached setup) that one calculation at a time may change.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def potential_lock(potential) -> threading.RLock:
    """The lock that every interface takes around ``potential.compute``: one per underlying potential,
    so that ``Restrained(ham, ...)`` and ``ham`` itself, which share one QM engine, share it too."""
    for _ in range(16):  # wrappers of wrappers; bounded in case one refers to itself
        inner = getattr(potential, "potential", None)
        if inner is None or inner is potential:
            break
        potential = inner
    with _LOCKS_GUARD:
        try:
            lock = _LOCKS.get(potential)
            if lock is None:
                lock = _LOCKS[potential] = threading.RLock()
        except TypeError:  # unhashable or not weak-referenceable: such a potential's calls are not serialized
            lock = threading.RLock()
        return lock


def has_guess_state(potential) -> bool:
    """Whether ``potential`` keeps SCF-guess state (a QM engine) that `state`/`restore` move."""
    return callable(getattr(potential, "state", None)) and callable(getattr(potential, "restore", None))


def newest_only(state: dict) -> dict:
    """``state`` with its SCF history cut to the last converged density (a "previous density" guess).

    Along an optimizer path or between replicas, steps are not equal time steps, so a polynomial
    extrapolation through several densities can overshoot; the last density cannot.
    """
    guess = state.get("scf_guess")
    if not guess or not guess.get("densities"):
        return state
    return {**state, "scf_guess": {**guess, "densities": guess["densities"][:1]}}


class NearestGeometryGuess:
    """Start each SCF from the converged density of the most similar recent geometry.

    For path-integral MD through one client: bead k at step t is closest to bead k at step t-1
    (a step moves atoms ~0.01 Å, beads differ by ~0.1 Å), so its own history supplies the guess
    without knowing which bead i-PI sent.

    Parameters
    ----------
    potential : potential with ``state()``/``restore()``, or any potential (then this does nothing)
    size : int
        Geometries remembered (at least the number of beads times the force evaluations per step).
    """

    def __init__(self, potential, size: int = 64):
        self.potential = potential
        self.active = has_guess_state(potential) and size > 0
        self.size = int(size)
        self._positions: list[np.ndarray] = []
        self._states: list[dict] = []

    def before(self, positions: np.ndarray) -> None:
        if not self.active or not self._positions:
            return
        stack = np.stack(self._positions)
        distance = np.sqrt(np.mean(np.sum((stack - positions) ** 2, axis=2), axis=1))
        self.potential.restore(self._states[int(np.argmin(distance))])

    def after(self, positions: np.ndarray) -> None:
        if not self.active:
            return
        self._positions.append(np.array(positions, dtype=float, copy=True))
        self._states.append(newest_only(self.potential.state()))
        if len(self._positions) > self.size:  # oldest first: beads revisit their recent geometries only
            del self._positions[0], self._states[0]
