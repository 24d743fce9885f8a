"""SCF initial guesses extrapolated from the densities of previous MD steps.

Along a trajectory the converged density matrix is a smooth function of time, so a polynomial
through the last n converged densities, evaluated one step ahead, starts the next SCF much closer to
convergence than PySCF's superposition-of-atoms guess or the previous step's density:

    D_guess = sum_{j=1}^{n} (-1)^(j+1) C(n, j) D(t - j)        (n = 1: the previous density)

Because qmml converges every SCF to the requested threshold, errors of one guess never feed into
the next density, so the most accurate predictor is the best one; Kolafa's always-stable predictor
(ASPC), built to be stable when the corrector replaces convergence, was measured to need 5.0 cycles per
step where this one needs 3.0 (benchmarks/RESULTS.md).  The guess changes the number of cycles,
never the converged result.  While the history fills, lower orders are used.
"""

from __future__ import annotations

from math import comb

import numpy as np

GUESSES = ("extrapolate", "previous", "default")


def extrapolation_coefficients(n: int) -> np.ndarray:
    """Weights of D(t-1) .. D(t-n) in the degree n-1 polynomial extrapolation to D(t)."""
    return np.array([(-1) ** (j + 1) * comb(n, j) for j in range(1, n + 1)], dtype=float)


class DensityHistory:
    """The last converged density matrices of one molecule, and the guess extrapolated from them.

    Parameters
    ----------
    guess : {"extrapolate", "previous", "default"}
        "extrapolate": polynomial through the last ``order`` densities; "previous": the last
        density; "default": nothing (PySCF's own guess every time).
    order : int
        Densities kept for "extrapolate" (degree order - 1).
    """

    def __init__(self, guess: str = "extrapolate", order: int = 5):
        if guess not in GUESSES:
            from ..errors import InputError

            raise InputError(f"guess={guess!r} is not one of {GUESSES}")
        self.guess = guess
        self.order = max(int(order), 1)
        self.key = None
        self.densities: list[np.ndarray] = []  # newest first

    @property
    def size(self) -> int:
        return {"extrapolate": self.order, "previous": 1, "default": 0}[self.guess]

    def clear(self) -> None:
        self.key, self.densities = None, []

    def push(self, key: str, density: np.ndarray) -> None:
        """Record the converged density of the molecule identified by ``key``."""
        if key != self.key:
            self.clear()
            self.key = key
        self.densities = ([np.array(density, copy=True)] + self.densities)[:self.size]

    def predict(self, key: str) -> np.ndarray | None:
        """The initial density for the next SCF of ``key``, or None for PySCF's default guess."""
        if key != self.key or not self.densities:
            return None
        weights = extrapolation_coefficients(len(self.densities))
        return sum(w * d for w, d in zip(weights, self.densities))

    # -- checkpoints ---------------------------------------------------------------------
    def state(self) -> dict:
        """What reproduces the next guesses exactly after `restore` (a key string and arrays)."""
        return {"key": self.key, "densities": [d.copy() for d in self.densities]}

    def restore(self, state: dict) -> None:
        self.key, self.densities = state["key"], [np.array(d) for d in state["densities"]]

    def copy(self) -> "DensityHistory":
        """An independent history with the same densities (a replica's starting point)."""
        other = DensityHistory(self.guess, self.order)
        other.restore(self.state())
        return other
