"""Committee predictions over a dataset, per structure: the spread of the members and the true error.

A committee's spread (standard deviation of its members' predictions) is large where the members
were not constrained by training data, so it flags structures unlike the training set without any
reference calculation.  `committee_spread` reports, for every frame of a labelled dataset, the
spread next to the committee-mean error against the labels, so a threshold on the spread can be
chosen and checked (do flagged frames carry the large errors?).

Units: Å, eV, eV/Å, e.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .model import EnvironmentModel, Prediction


def predict_frames(model: EnvironmentModel, dataset: Dataset, *, forces: bool = True,
                   uncertainty: bool = True) -> list[Prediction]:
    """The committee's `Prediction` for every frame of ``dataset``.

    Charges are conserved as the model was trained: per molecule (``frame.molecule`` with
    ``frame.molecule_charges``) or per structure (one group with the frame's total charge, and the
    molecules passed for the optional Coulomb term).

    Parameters
    ----------
    model : EnvironmentModel
    dataset : Dataset
        Frames (open or periodic); their labels are not used here.
    forces : bool
        Compute the committee-mean forces (eV/Å).
    uncertainty : bool
        Also each member's forces, for ``forces_std`` (eV/Å; one backward pass per member).

    Returns
    -------
    list of Prediction
        One per frame, in order: energy (eV), charges (e), forces (eV/Å) and their committee
        standard deviations.
    """
    out = []
    for f in dataset.frames:
        molecule = np.asarray(f.molecule)
        if model.charge_groups == "structure":
            groups = np.zeros(len(molecule), dtype=int)
            group_charges = np.array([float(np.sum(f.molecule_charges))])
        else:
            groups, group_charges = molecule, np.asarray(f.molecule_charges, float)
        out.append(model.predict(f.elements, f.positions, cell=f.cell, groups=groups, group_charges=group_charges,
                                 molecules=molecule, forces=forces, uncertainty=uncertainty))
    return out


def committee_spread(model: EnvironmentModel, dataset: Dataset, *, predictions=None) -> dict[str, np.ndarray]:
    """Committee spread and committee-mean error of every frame of a labelled dataset.

    Parameters
    ----------
    model : EnvironmentModel
        A committee (with one member every spread is zero).
    dataset : Dataset
        Labelled frames (energy eV, forces eV/Å, charges e).
    predictions : list of Prediction, optional
        `predict_frames(model, dataset)` if already computed (with ``uncertainty=True``).

    Returns
    -------
    dict of str to ndarray (n_frames,)
        Spreads (committee standard deviations, population std over the members):

        * ``energy_std_eV_per_atom``: std of the members' energies / number of atoms.
        * ``force_std_eV_A``: root mean square over the frame's atoms and Cartesian components of
          the force-component std, sqrt(<sigma_F,ic^2>); comparable with ``force_rmse_eV_A``.
        * ``max_force_std_eV_A``: largest per-atom spread norm(sigma_F,i) = sqrt(sum_c sigma_F,ic^2)
          (one bad atom in a large frame).
        * ``charge_std_e``: root mean square over atoms of the charge std.

        Errors of the committee mean against the labels:

        * ``energy_error_eV_per_atom``: abs(E - E_ref) / number of atoms.
        * ``force_rmse_eV_A``: sqrt(<(F_ic - F_ref,ic)^2>) over atoms and components.
        * ``max_force_error_eV_A``: largest per-atom norm(F_i - F_ref,i).
        * ``charge_rmse_e``: sqrt(<(q_i - q_ref,i)^2>).

        and ``n_atoms`` (int).
    """
    if predictions is None:
        predictions = predict_frames(model, dataset, forces=True, uncertainty=True)
    if len(predictions) != len(dataset):
        raise ValueError(f"{len(predictions)} predictions for {len(dataset)} frames")
    keys = ("energy_std_eV_per_atom", "force_std_eV_A", "max_force_std_eV_A", "charge_std_e",
            "energy_error_eV_per_atom", "force_rmse_eV_A", "max_force_error_eV_A", "charge_rmse_e")
    out = {k: np.zeros(len(dataset)) for k in keys}
    out["n_atoms"] = np.array([len(f.elements) for f in dataset.frames], dtype=int)
    for k, (f, p) in enumerate(zip(dataset.frames, predictions)):
        if p.forces is None or (p.forces_std is None and len(model.members) > 1):
            raise ValueError("predictions without forces or force spread: use "
                             "predict_frames(model, dataset, forces=True, uncertainty=True)")
        n = len(f.elements)
        sigma_f = np.zeros((n, 3)) if p.forces_std is None else np.asarray(p.forces_std)
        d_f = p.forces - np.asarray(f.forces)
        d_q = p.charges - np.asarray(f.charges)
        out["energy_std_eV_per_atom"][k] = p.energy_std / n
        out["force_std_eV_A"][k] = np.sqrt(np.mean(sigma_f**2))
        out["max_force_std_eV_A"][k] = np.sqrt((sigma_f**2).sum(1)).max()
        out["charge_std_e"][k] = np.sqrt(np.mean(np.asarray(p.charges_std) ** 2))
        out["energy_error_eV_per_atom"][k] = abs(p.energy - f.energy) / n
        out["force_rmse_eV_A"][k] = np.sqrt(np.mean(d_f**2))
        out["max_force_error_eV_A"][k] = np.sqrt((d_f**2).sum(1)).max()
        out["charge_rmse_e"][k] = np.sqrt(np.mean(d_q**2))
    return out
