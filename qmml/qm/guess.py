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

Fixed polynomial weights assume equal time steps that are short against the density's own motion.  The
outer step of multiple-time-step dynamics (2 fs, a fifth of an O-H period) is not, and there the "fit" guess
takes its weights from the geometries instead: the weights c (summing to 1) whose combination of the
previous QM geometries comes closest to the new one, least squares,

    min_c || sum_j c_j X(t - j) - X(t) ||^2,   sum_j c_j = 1,      D_guess = sum_j c_j D(t - j),

which is exact where the density is linear in the geometry.  Measured on the SN2 benchmark (HF/6-31G*,
conv_tol 1e-10 Eh, `benchmarks/scf_guess_outer_step.py`): 7.2 SCF cycles per r-RESPA outer step of 2 fs against
8.3 with the polynomial, and 2.7 against 3.0 per velocity-Verlet step of 0.5 fs (a shorter run with a
ridge-regularised fit had given 3.2 against 3.0 there, so the polynomial stays the default until a longer
comparison).
"""

from __future__ import annotations

from math import comb

import numpy as np

GUESSES = ("extrapolate", "fit", "previous", "default")
_FIT_RCOND = 1e-8  # past geometries that nearly coincide: the minimum-norm weights, not huge ones


def extrapolation_coefficients(n: int) -> np.ndarray:
    """Weights of D(t-1) .. D(t-n) in the degree n-1 polynomial extrapolation to D(t)."""
    return np.array([(-1) ** (j + 1) * comb(n, j) for j in range(1, n + 1)], dtype=float)


def geometry_weights(geometries, target) -> np.ndarray:
    """Weights c of ``geometries`` (newest first, each flattened, Å) summing to 1 whose combination is
    closest to ``target`` in the least-squares sense (see the module docstring)."""
    newest = geometries[0]
    steps = np.array([g - newest for g in geometries[1:]]).T  # (3n, m-1): c_1 = 1 - sum of the others
    rest = np.linalg.lstsq(steps, target - newest, rcond=_FIT_RCOND)[0]
    return np.concatenate([[1.0 - rest.sum()], rest])


class DensityHistory:
    """The last converged density matrices of one molecule, and the guess extrapolated from them.

    Parameters
    ----------
    guess : {"extrapolate", "previous", "default"}
        "extrapolate": polynomial through the last ``order`` densities; "fit": the last ``order``
        densities weighted by the least-squares fit of their geometries to the new one (see the module
        docstring; the polynomial while fewer than two geometries are known); "previous": the last
        density; "default": nothing (PySCF's own guess every time).
    order : int
        Densities kept for "extrapolate" and "fit" (degree order - 1).
    """

    def __init__(self, guess: str = "extrapolate", order: int = 5):
        if guess not in GUESSES:
            from ..errors import InputError

            raise InputError(f"guess={guess!r} is not one of {GUESSES}")
        self.guess = guess
        self.order = max(int(order), 1)
        self.key = None
        self.densities: list[np.ndarray] = []  # newest first
        self.geometries: list[np.ndarray] = []  # of the densities, for "fit"; empty where not given

    @property
    def size(self) -> int:
        return {"extrapolate": self.order, "fit": self.order, "previous": 1, "default": 0}[self.guess]

    def clear(self) -> None:
        self.key, self.densities, self.geometries = None, [], []

    def push(self, key: str, density: np.ndarray, positions=None) -> None:
        """Record the converged density of the molecule identified by ``key``, at ``positions`` (its QM
        atoms, Å; used by "fit")."""
        if key != self.key:
            self.clear()
            self.key = key
        aligned = positions is not None and len(self.geometries) == len(self.densities)
        self.densities = ([np.array(density, copy=True)] + self.densities)[:self.size]
        self.geometries = ([np.array(positions, dtype=np.float64).ravel()] + self.geometries)[:self.size] \
            if aligned else []

    def predict(self, key: str, positions=None) -> np.ndarray | None:
        """The initial density for the next SCF of ``key`` at ``positions`` (QM atoms, Å; used by "fit"),
        or None for PySCF's default guess."""
        if key != self.key or not self.densities:
            return None
        weights = extrapolation_coefficients(len(self.densities))
        if self.guess == "fit" and positions is not None and len(self.densities) >= 2 \
                and len(self.geometries) == len(self.densities):
            weights = geometry_weights(self.geometries, np.asarray(positions, dtype=np.float64).ravel())
        return sum(w * d for w, d in zip(weights, self.densities))

    # -- checkpoints ---------------------------------------------------------------------
    def state(self) -> dict:
        """What reproduces the next guesses exactly after `restore` (a key string and arrays)."""
        return {"key": self.key, "densities": [d.copy() for d in self.densities],
                "geometries": [g.copy() for g in self.geometries]}

    def restore(self, state: dict) -> None:
        self.key, self.densities = state["key"], [np.array(d) for d in state["densities"]]
        self.geometries = [np.array(g) for g in state.get("geometries", [])]  # absent in older checkpoints

    def copy(self) -> "DensityHistory":
        """An independent history with the same densities (a replica's starting point)."""
        other = DensityHistory(self.guess, self.order)
        other.restore(self.state())
        return other
