"""Free-energy profiles from umbrella sampling (MBAR through pymbar).

Each window ``k`` samples the collective variable ``s`` under a harmonic bias
``w_k(s) = k_k/2 (s - c_k)^2``.  MBAR (Shirts & Chodera, J. Chem. Phys. 129, 124105 (2008))
combines all windows into one unbiased profile F(s) = -kT ln p(s), the binless generalization of
WHAM.  Needs ``pip install 'qmml[tutorials]'`` (pymbar).  Units: Å, eV, K.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import InputError


@dataclass(frozen=True)
class FreeEnergyProfile:
    """Free energy along a collective variable.

    Attributes
    ----------
    bin_centres : ndarray
        Values of the variable, Å.
    free_energy_eV : ndarray
        F relative to its lowest bin, eV (NaN in bins no window visited).
    uncertainty_eV : ndarray
        One standard error of F relative to the lowest bin, eV.
    samples_per_bin : ndarray of int
    window_free_energies_eV : ndarray
        MBAR free energies of the biased windows, eV (relative to the first).
    """

    bin_centres: np.ndarray
    free_energy_eV: np.ndarray
    uncertainty_eV: np.ndarray
    samples_per_bin: np.ndarray
    window_free_energies_eV: np.ndarray


def umbrella_free_energy(samples, centres, force_constants, *, temperature_K: float, bins=30,
                         decorrelate: bool = False) -> FreeEnergyProfile:
    """Unbiased free-energy profile from harmonic umbrella windows, by MBAR.

    Parameters
    ----------
    samples : sequence of array_like
        The collective variable sampled in each window (Å), in time order.
    centres : array_like
        Restraint centres ``c_k``, Å, one per window.
    force_constants : float or array_like
        ``k_k``, eV/Å² (one for all windows, or one per window).
    temperature_K : float
    bins : int or array_like
        Number of bins over the sampled range, or the bin edges (Å).
    decorrelate : bool
        Keep only statistically independent samples of each window (pymbar's
        ``subsample_correlated_data``); use it for production runs, where it makes the error bars honest.

    Returns
    -------
    FreeEnergyProfile
    """
    pymbar_log = logging.getLogger("pymbar")
    if pymbar_log.level == logging.NOTSET:  # its import banners (JAX, timeseries caveats) are not the user's concern
        pymbar_log.setLevel(logging.ERROR)
    try:
        import pymbar
        from pymbar import timeseries
    except ImportError:
        raise InputError("umbrella_free_energy needs pymbar: pip install 'qmml[tutorials]'") from None
    windows = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    centres = np.asarray(centres, dtype=np.float64).ravel()
    k = np.broadcast_to(np.asarray(force_constants, dtype=np.float64), centres.shape)
    if len(windows) != len(centres):
        raise InputError(f"umbrella_free_energy: {len(windows)} windows of samples but {len(centres)} centres")
    if np.any(k <= 0):
        raise InputError("umbrella_free_energy: force constants must be positive (eV/Å²)")
    if any(len(w) < 2 for w in windows):
        raise InputError("umbrella_free_energy: every window needs at least 2 samples")
    if decorrelate:
        windows = [w[timeseries.subsample_correlated_data(w)] for w in windows]
    kT = units.BOLTZMANN_EV_PER_K * float(temperature_K)
    x = np.concatenate(windows)
    n_k = np.array([len(w) for w in windows])
    u_kn = 0.5 * k[:, None] * (x[None, :] - centres[:, None]) ** 2 / kT  # reduced bias of every sample in every window
    edges = np.linspace(x.min(), x.max() + 1e-9, int(bins) + 1) if np.ndim(bins) == 0 else np.asarray(bins, float)
    fes = pymbar.FES(u_kn, n_k)
    # the unbiased target state: its reduced potential differs from every window's by the bias only
    fes.generate_fes(np.zeros(len(x)), x, fes_type="histogram", histogram_parameters={"bin_edges": edges})
    bin_centres = 0.5 * (edges[1:] + edges[:-1])
    counts = np.histogram(x, bins=edges)[0]
    f = np.full(len(bin_centres), np.nan)
    df = np.full(len(bin_centres), np.nan)
    visited = counts > 0
    out = fes.get_fes(bin_centres[visited], reference_point="from-lowest", uncertainty_method="analytical")
    f[visited], df[visited] = out["f_i"] * kT, out["df_i"] * kT
    f_windows = fes.mbar.f_k * kT
    return FreeEnergyProfile(bin_centres, f - np.nanmin(f), df, counts, f_windows - f_windows[0])
