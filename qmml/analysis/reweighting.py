"""Reweighting samples of one potential to another: removing a model's residual error from averages.

Samples drawn with a potential V (an ML model, or an ML reference on contracted beads) are averages in the
ensemble of a reference potential V_ref after weighting each by w = exp(-beta dV), dV = V_ref - V at that
sample.  For path-integral samples the weight of a ring polymer is exp(-beta_P sum_k dV(q_k)) with
beta_P = beta / P, that is exp(-beta dV_bar) with dV_bar the bead average: pass bead-averaged differences (the
``reference_delta_eV`` column of a path-integral `qmml.ThermoLog` run with ``reference=``).  An observable that
depends on the potential itself (the centroid-virial kinetic energy) must be the reference's (the
``kinetic_virial_reference_eV`` column).

The estimate is unbiased but its variance grows as the weights spread: the Kish effective sample size
(sum w)^2 / sum w^2 says how many independent samples it is worth, and a warning (`qmml.errors.ReweightingWarning`)
fires when it falls below a fraction of the samples.  Units: eV, K.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import InputError, ReweightingWarning


@dataclass(frozen=True, eq=False)
class Reweighted:
    """Outcome of `reweight`.

    Attributes
    ----------
    mean : float or ndarray (k,)
        Reweighted average of each observable (its units).
    error : float or ndarray (k,)
        Standard error from consecutive blocks, each reweighted on its own.
    effective_samples : float
        Kish effective sample size (sum w)^2 / sum w^2.
    samples : int
    weights : ndarray (n,)
        Normalized weights (summing to 1).
    """

    mean: float | np.ndarray
    error: float | np.ndarray
    effective_samples: float
    samples: int
    weights: np.ndarray

    @property
    def effective_fraction(self) -> float:
        return self.effective_samples / self.samples


def reweight(samples, delta_energy, temperature_K: float, *, blocks: int = 10,
             min_effective_fraction: float = 0.1) -> Reweighted:
    """Averages in the ensemble of a reference potential from samples of another.

    Parameters
    ----------
    samples : array_like (n,) or (n, k)
        Observables at each of n samples (k observables side by side).
    delta_energy : array_like (n,)
        V_ref - V at each sample, eV (bead-averaged for path integrals).
    temperature_K : float
        Physical temperature of the run, K.
    blocks : int
        Consecutive blocks for the standard error (each long against the correlation time).
    min_effective_fraction : float
        Warn (`qmml.errors.ReweightingWarning`) when the effective sample size falls below this fraction of n.

    Returns
    -------
    Reweighted
    """
    values = np.asarray(samples, dtype=np.float64)
    delta = np.asarray(delta_energy, dtype=np.float64)
    if delta.ndim != 1 or values.ndim not in (1, 2) or len(values) != len(delta):
        raise InputError(f"samples ({values.shape}) and delta_energy ({delta.shape}) must be one row per sample: "
                         "shapes (n,) or (n, k) and (n,)")
    if not (np.isfinite(values).all() and np.isfinite(delta).all()):
        raise InputError("samples and delta_energy must be finite; drop the unfinished rows of the log")
    if not temperature_K > 0:
        raise InputError(f"temperature_K={temperature_K} must be positive (K)")
    if int(blocks) < 2 or len(delta) < 2 * int(blocks):
        raise InputError(f"blocks={blocks} needs 2 or more blocks of 2 or more samples ({len(delta)} samples)")
    beta = 1.0 / (units.BOLTZMANN_EV_PER_K * temperature_K)
    log_w = -beta * delta
    w = np.exp(log_w - log_w.max())  # shifted: the largest weight is 1, no overflow
    w /= w.sum()
    effective = float(1.0 / np.sum(w * w))
    mean = np.tensordot(w, values, axes=1)
    per_block = []
    for part in np.array_split(np.arange(len(delta)), int(blocks)):
        wb = w[part] / w[part].sum()
        per_block.append(np.tensordot(wb, values[part], axes=1))
    error = np.std(per_block, axis=0, ddof=1) / np.sqrt(int(blocks))
    if effective < min_effective_fraction * len(delta):
        warnings.warn(f"reweighting: {effective:.0f} effective samples of {len(delta)} ({effective / len(delta):.1%}); "
                      "the reference and sampled ensembles overlap too little for a reliable average: sample "
                      "closer to the reference or with more data", ReweightingWarning, stacklevel=2)
    scalar = values.ndim == 1
    return Reweighted(mean=float(mean) if scalar else mean, error=float(error) if scalar else error,
                      effective_samples=effective, samples=len(delta), weights=w)
