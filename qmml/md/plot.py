"""Plot of a thermodynamic log: energies and temperature against time."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def read_thermo(path) -> dict[str, np.ndarray]:
    """Columns of a `ThermoLog` CSV by name (units in the names).

    Parameters
    ----------
    path : str or path
        The CSV file.
    """
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    return {name: np.atleast_1d(data[name]) for name in data.dtype.names}


def plot_thermo(csv_path, png_path) -> Path:
    """Energies relative to their start (eV) and temperature (K) against time (fs); returns the PNG path.

    Parameters
    ----------
    csv_path : str or path
        A `ThermoLog` CSV.
    png_path : str or path
        The figure written.
    """
    from matplotlib.figure import Figure  # no pyplot: the caller's backend (a notebook's inline one) stays

    log = read_thermo(csv_path)
    t = log["time_fs"]
    fig = Figure(figsize=(7, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for name, label in (("potential_eV", "potential"), ("total_eV", "total"), ("conserved_eV", "conserved")):
        if len(log[name]):
            top.plot(t, log[name] - log[name][0], label=label)
    top.set_ylabel("energy - initial (eV)")
    top.legend(loc="best")
    bottom.plot(t, log["temperature_K"], color="tab:red")
    bottom.set_ylabel("temperature (K)")
    bottom.set_xlabel("time (fs)")
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    return png_path
