"""SCF initial guesses when one potential serves several geometries that are not one trajectory.

A potential with a QM part starts each SCF from the densities of its previous calls (its own
`state`, `qmml.qm.guess`).  That is right along one MD trajectory, but NEB images and the geometries
i-PI sends in turn (its beads) jump between structures: an extrapolation through the densities of
*different* images is a poor (though harmless: every SCF is converged to ``conv_tol``) starting
point.  So each ASE calculator follows its own replica of the potential (`qmml.Potential.replica`),
and the i-PI client keeps the states of recent geometries on a private replica and starts each SCF
from its closest predecessor's.  They change SCF cycle counts only, never results.

A lock per underlying potential serializes calls from several threads (ASE's threaded NEB): replicas
share one QM engine and one environment model, whose computations (PySCF's and torch's thread pools)
are not meant to run concurrently in one process.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from ..potential import PotentialWrapper, check_result

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def potential_lock(potential) -> threading.RLock:
    """The lock that the ASE calculator takes around ``compute``: one per underlying potential, so that
    ``Restrained(ham, ...)``, ``ham`` itself and their replicas, which share one QM engine, share it too."""
    while isinstance(potential, PotentialWrapper):
        potential = potential.potential
    with _LOCKS_GUARD:
        try:
            lock = _LOCKS.get(potential)
            if lock is None:
                lock = _LOCKS[potential] = threading.RLock()
        except TypeError:  # unhashable or not weak-referenceable: such a potential's calls are not serialized
            lock = threading.RLock()
        return lock


def has_guess_state(potential) -> bool:
    """Whether ``potential`` keeps state from call to call (an SCF guess history) that `state`/`restore` move."""
    return bool(potential.state())


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
    potential : qmml.Potential
        Computed through a private replica, whose state is moved between geometries; the caller's
        potential is never touched.  One that keeps no state from call to call (no QM part) is used as
        it is.
    size : int
        Geometries remembered (at least the number of beads times the force evaluations per step).
    """

    def __init__(self, potential, size: int = 64):
        self.potential = potential.replica()
        self.active = has_guess_state(self.potential) and size > 0
        self.size = int(size)
        self._positions: list[np.ndarray] = []
        self._states: list[dict] = []

    def compute(self, positions: np.ndarray, *, cell=None):
        """The potential's result at ``positions`` (Å, in ``cell``), its SCF started from the closest
        remembered geometry's density."""
        if self.active and self._positions:
            stack = np.stack(self._positions)
            distance = np.sqrt(np.mean(np.sum((stack - positions) ** 2, axis=2), axis=1))
            self.potential.restore(self._states[int(np.argmin(distance))])
        result = check_result(self.potential, self.potential.compute(positions, cell=cell))
        if self.active:
            self._positions.append(np.array(positions, dtype=float, copy=True))
            self._states.append(newest_only(self.potential.state()))
            if len(self._positions) > self.size:  # oldest first: beads revisit their recent geometries only
                del self._positions[0], self._states[0]
        return result
