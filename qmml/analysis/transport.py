"""Transport: mean squared displacement, diffusion coefficients and Green-Kubo ionic conductivity."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from .. import units
from ..errors import InputError

#: Yeh & Hummer, J. Phys. Chem. B 108, 15873 (2004): the constant xi of a cubic periodic lattice.
YEH_HUMMER_XI = 2.837297


def mean_squared_displacement(universe, select: str = "all", *, timestep_fs: float | None = None,
                              fft: bool | None = None):
    """Einstein MSD of a selection (MDAnalysis ``EinsteinMSD``), averaged over atoms and time origins.

    Parameters
    ----------
    universe : MDAnalysis.Universe
        Trajectory with unwrapped positions (continuous across periodic boundaries), Å.
    select : str
        MDAnalysis selection of the atoms averaged over.
    timestep_fs : float, optional
        Time between frames, fs; default the trajectory's own dt.
    fft : bool, optional
        Use the O(N log N) algorithm through tidynamics (``pip install 'qmml[analysis]'``); the default uses it
        when tidynamics is installed, the direct O(N^2) sum otherwise (same result).

    Returns
    -------
    lag_fs : ndarray
        Lag times, fs.
    msd_A2 : ndarray
        MSD, Å^2.
    """
    from MDAnalysis.analysis.msd import EinsteinMSD

    if len(universe.select_atoms(select)) == 0:
        raise InputError(f"mean_squared_displacement: selection {select!r} matches no atoms")
    if fft is None:
        fft = importlib.util.find_spec("tidynamics") is not None
    elif fft and importlib.util.find_spec("tidynamics") is None:
        raise InputError("mean_squared_displacement(fft=True) needs tidynamics: pip install 'qmml[analysis]'")
    msd = EinsteinMSD(universe, select=select, msd_type="xyz", fft=bool(fft)).run()
    dt_fs = timestep_fs if timestep_fs is not None else universe.trajectory.dt * units.FS_PER_PS
    lag_fs = np.arange(msd.n_frames) * dt_fs
    return lag_fs, np.asarray(msd.results.timeseries)


@dataclass(frozen=True)
class Diffusion:
    """Self-diffusion coefficient from the slope of the MSD, D = slope / 6 (three dimensions).

    Attributes
    ----------
    A2_per_fs : float
    cm2_per_s : float
    stderr_A2_per_fs : float
        Standard error of the fitted slope / 6.
    """

    A2_per_fs: float
    cm2_per_s: float
    stderr_A2_per_fs: float


def diffusion_coefficient(lag_fs, msd_A2, *, fit_from_fs: float, fit_to_fs: float) -> Diffusion:
    """Self-diffusion coefficient from a fit of MSD = 6 D t + c over the linear (diffusive) window.

    Parameters
    ----------
    lag_fs : array_like (n,)
        Lag times, fs.
    msd_A2 : array_like (n,)
        Mean squared displacements, Å^2.
    fit_from_fs, fit_to_fs : float
        The fit window, fs (at least 3 points).

    Returns
    -------
    Diffusion
        D in Å^2/fs and cm^2/s, with the standard error of the fit.
    """
    lag_fs, msd_A2 = np.asarray(lag_fs, float), np.asarray(msd_A2, float)
    window = (lag_fs >= fit_from_fs) & (lag_fs <= fit_to_fs)
    if window.sum() < 3:
        raise InputError(f"diffusion_coefficient: the fit window {fit_from_fs}-{fit_to_fs} fs holds "
                         f"{int(window.sum())} points; choose a window inside 0-{lag_fs[-1]:g} fs with at least 3")
    (slope, _), cov = np.polyfit(lag_fs[window], msd_A2[window], 1, cov=True)
    d = slope / 6.0
    return Diffusion(float(d), float(d * units.A2_PER_FS_CM2_PER_S), float(np.sqrt(cov[0, 0]) / 6.0))


def current_autocorrelation(current, max_lag: int) -> np.ndarray:
    """<J(0) . J(t)> averaged over time origins.

    Parameters
    ----------
    current : array_like (n_frames, ...)
        The current at every frame (any units; components summed in the dot product).
    max_lag : int
        Largest lag, frames (1 to n_frames - 1).

    Returns
    -------
    ndarray (max_lag + 1,)
        The autocorrelation for lags 0..max_lag frames, in units of J squared.
    """
    j = np.asarray(current, dtype=float).reshape(len(current), -1)
    n = len(j)
    if not 0 < max_lag < n:
        raise InputError(f"current_autocorrelation: max_lag={max_lag} must lie between 1 and {n - 1} frames")
    return np.array([np.einsum("ti,ti->", j[: n - lag], j[lag:]) / (n - lag) for lag in range(max_lag + 1)])


@dataclass(frozen=True)
class Conductivity:
    """Green-Kubo ionic conductivity, sigma = 1/(3 V k_B T) int_0^t <J(0).J(t')> dt'.

    Attributes
    ----------
    S_per_m : float
        Conductivity at the end of the integration window.
    lag_fs, acf, running_S_per_m : ndarray
        Lags (fs), the current autocorrelation ((e Å/fs)^2) and the running integral (S/m), to check
        that the integral has reached its plateau.
    """

    S_per_m: float
    lag_fs: np.ndarray
    acf: np.ndarray
    running_S_per_m: np.ndarray


def green_kubo_conductivity(current_e_A_per_fs, *, timestep_fs: float, volume_A3: float, temperature_K: float,
                            max_lag: int) -> Conductivity:
    """Ionic conductivity from the Green-Kubo integral of the total charge current J(t) = sum_i q_i v_i.

    For a qmml trajectory J is ``(charges[:, :, None] * velocities).sum(axis=1)``; with ML charges that
    change along the run, the current uses the charges of each frame.

    Parameters
    ----------
    current_e_A_per_fs : array_like (n_frames, 3)
        Total charge current, e Å/fs.
    timestep_fs : float
        Time between frames, fs.
    volume_A3 : float
        Box volume, Å^3.
    temperature_K : float
        K.
    max_lag : int
        Upper limit of the integral, frames.

    Returns
    -------
    Conductivity
        The conductivity (S/m), the autocorrelation and the running integral.
    """
    acf = current_autocorrelation(current_e_A_per_fs, max_lag)
    lag_fs = np.arange(max_lag + 1) * timestep_fs
    steps = np.diff(lag_fs)
    running = np.concatenate([[0.0], np.cumsum(0.5 * (acf[1:] + acf[:-1]) * steps)])  # trapezoid, (e Å/fs)^2 fs
    kT = units.BOLTZMANN_EV_PER_K * temperature_K
    running_S_per_m = running / (3.0 * volume_A3 * kT) * units.CONDUCTIVITY_S_PER_M
    return Conductivity(float(running_S_per_m[-1]), lag_fs, acf, running_S_per_m)


def msd_all_origins(positions) -> np.ndarray:
    """MSD averaged over all time origins, per lag, of unwrapped trajectories.

    MSD(m) = 1/(N-m) sum_k norm(x_{k+m} - x_k)^2, computed in O(N log N) from a sum of squares and an
    autocorrelation (Kneller, Keiner, Kneller & Schiller, Comput. Phys. Commun. 91, 191 (1995)).

    Parameters
    ----------
    positions : array_like (n_frames, ..., 3)
        Unwrapped positions, Å.

    Returns
    -------
    ndarray (n_frames, ...)
        MSD per lag (frames), Å^2: summed over x, y, z, not averaged over the middle axes (atoms).
    """
    x = np.asarray(positions, dtype=float)
    n = len(x)
    sq = (x * x).sum(-1)
    f = np.fft.rfft(x, n=2 * n, axis=0)
    acf = np.fft.irfft(f * f.conj(), axis=0)[:n].sum(-1) / (n - np.arange(n)).reshape((n,) + (1,) * (x.ndim - 2))
    s = np.empty_like(acf)
    q = 2.0 * sq.sum(0)
    for m in range(n):
        if m > 0:
            q = q - sq[m - 1] - sq[n - m]
        s[m] = q / (n - m)
    return s - 2.0 * acf


def yeh_hummer_correction(temperature_K: float, box_A: float, viscosity_mPa_s: float) -> float:
    """Finite-size correction xi k_B T / (6 pi eta L) to add to a self-diffusion coefficient from a cubic
    periodic box (Yeh & Hummer 2004).

    Parameters
    ----------
    temperature_K : float
        K.
    box_A : float
        Edge of the cubic box, Å.
    viscosity_mPa_s : float
        Shear viscosity, mPa s (0.89 for water at 298 K).

    Returns
    -------
    float
        The correction, Å^2/fs.
    """
    kT_J = units.BOLTZMANN_EV_PER_K * temperature_K * units.ELEMENTARY_CHARGE_C
    d_m2_per_s = YEH_HUMMER_XI * kT_J / (6 * np.pi * viscosity_mPa_s * 1e-3 * box_A * 1e-10)
    return d_m2_per_s * 1e4 / units.A2_PER_FS_CM2_PER_S
