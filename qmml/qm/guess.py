"""SCF initial guesses extrapolated from the densities of previous MD steps.

Along a trajectory the converged density matrix is a smooth function of time, so a polynomial
extrapolation of the last few densities starts the next SCF much closer to convergence than PySCF's
superposition-of-atoms guess or the previous step's density.  The coefficients are those of Kolafa's
always-stable predictor (ASPC; J. Kolafa, J. Comput. Chem. 25, 335 (2004)), which stay stable
over long runs where plain Lagrange extrapolation amplifies noise:

    D_guess = sum_{j=1}^{K+2} B_j D(t - j),   B_j = (-1)^(j+1) j C(2K+4, K+2-j) / C(2K+2, K+1).

K = 0 is linear extrapolation (2, -1).  The SCF is always converged to the requested threshold, so
the guess changes the number of cycles, not the result (no corrector step; that would trade exact
convergence for speed).
"""

from __future__ import annotations

from math import comb

import numpy as np

GUESSES = ("aspc", "previous", "default")


def aspc_coefficients(order: int) -> np.ndarray:
    """B_1 .. B_{K+2} of the always-stable predictor of order K (they sum to one)."""
    k = int(order)
    return np.array([(-1) ** (j + 1) * j * comb(2 * k + 4, k + 2 - j) / comb(2 * k + 2, k + 1)
                     for j in range(1, k + 3)])


class DensityHistory:
    """The last converged density matrices of one molecule, and the guess extrapolated from them.

    Parameters
    ----------
    guess : {"aspc", "previous", "default"}
        "aspc": always-stable predictor of order ``order`` (lower orders while the history fills);
        "previous": the last density; "default": nothing (PySCF's own guess every time).
    order : int
        ASPC order K (K + 2 densities are kept).
    """

    def __init__(self, guess: str = "aspc", order: int = 3):
        if guess not in GUESSES:
            from ..errors import InputError

            raise InputError(f"guess={guess!r} is not one of {GUESSES}")
        self.guess = guess
        self.order = int(order)
        self.key = None
        self.densities: list[np.ndarray] = []  # newest first

    def clear(self) -> None:
        self.key, self.densities = None, []

    def push(self, key: str, density: np.ndarray) -> None:
        """Record the converged density of the molecule identified by ``key``."""
        if key != self.key:
            self.clear()
            self.key = key
        keep = {"aspc": self.order + 2, "previous": 1, "default": 0}[self.guess]
        self.densities = [np.array(density, copy=True)] + self.densities[:max(keep - 1, 0)]
        if not keep:
            self.densities = []

    def predict(self, key: str) -> np.ndarray | None:
        """The initial density for the next SCF of ``key``, or None for PySCF's default guess."""
        if key != self.key or not self.densities:
            return None
        if self.guess != "aspc" or len(self.densities) == 1:
            return self.densities[0]
        coefficients = aspc_coefficients(min(self.order, len(self.densities) - 2))
        return sum(b * d for b, d in zip(coefficients, self.densities))

    # -- checkpoints ---------------------------------------------------------------------
    def state(self) -> dict:
        """What reproduces the next guesses exactly after `restore` (a key string and arrays)."""
        return {"key": self.key, "densities": [d.copy() for d in self.densities]}

    def restore(self, state: dict) -> None:
        self.key, self.densities = state["key"], [np.array(d) for d in state["densities"]]
