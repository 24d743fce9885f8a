"""Plot helpers for `qmml.analysis` results: labelled axes with units, one function per quantity."""

from __future__ import annotations

from ..units import FS_PER_PS


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt  # whatever backend the session has (headless ones need no display)

        _, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    return ax


def plot_rdf(r_A, g, *, label=None, ax=None):
    """g(r) against r (Å)."""
    ax = _axes(ax)
    ax.plot(r_A, g, label=label)
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.set(xlabel="r (Å)", ylabel="g(r)")
    if label:
        ax.legend()
    return ax


def plot_msd(lag_fs, msd_A2, diffusion=None, *, fit_from_fs=None, label=None, ax=None):
    """MSD (Å^2) against lag (ps), with the fitted 6 D t line when ``diffusion`` is given."""
    ax = _axes(ax)
    ax.plot(lag_fs / FS_PER_PS, msd_A2, label=label or "MSD")
    if diffusion is not None:
        start = fit_from_fs or 0.0
        ax.plot(lag_fs / FS_PER_PS, 6.0 * diffusion.A2_per_fs * (lag_fs - start) + _msd_at(lag_fs, msd_A2, start),
                "--", label=f"D = {diffusion.cm2_per_s:.2e} cm²/s")
    ax.set(xlabel="lag time (ps)", ylabel="MSD (Å²)")
    ax.legend()
    return ax


def _msd_at(lag_fs, msd_A2, t):
    import numpy as np

    return float(np.interp(t, lag_fs, msd_A2))


def plot_conductivity(result, *, ax=None):
    """Current autocorrelation ((e Å/fs)^2) and the running Green-Kubo integral (S/m) against lag (fs)."""
    ax = _axes(ax)
    ax.plot(result.lag_fs, result.acf, color="C0")
    ax.set(xlabel="lag time (fs)", ylabel="<J(0)·J(t)> ((e Å/fs)²)")
    twin = ax.twinx()
    twin.plot(result.lag_fs, result.running_S_per_m, color="C1")
    twin.set_ylabel("running σ (S/m)", color="C1")
    return ax


def plot_free_energy(profile, *, label="free energy", xlabel="collective variable (Å)", ax=None):
    """A `FreeEnergyProfile` (eV) with its one-standard-error band against the variable (Å)."""
    ax = _axes(ax)
    line, = ax.plot(profile.bin_centres, profile.free_energy_eV, ".-", label=label)  # dots: bins between gaps
    ax.fill_between(profile.bin_centres, profile.free_energy_eV - profile.uncertainty_eV,
                    profile.free_energy_eV + profile.uncertainty_eV, color=line.get_color(), alpha=0.25, lw=0)
    ax.set(xlabel=xlabel, ylabel="energy (eV)")
    ax.legend()
    return ax
