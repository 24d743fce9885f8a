"""Adversarial sampling: displacements that make the committee disagree, at a thermal energy cost.

Schwalbe-Koda, Tan & Gómez-Bombarelli, Nat. Commun. 12, 5104 (2021): new training structures are
found by gradient ascent of the adversarial loss

    A(delta) = sigma_F^2(X + delta) * exp(-E(X + delta) / kT) / Q

over displacements delta of a structure X, where sigma_F^2 is the committee variance of the forces
(mean over atoms and components) and E the committee-mean energy.  The Boltzmann factor keeps the
structures thermally reachable at the chosen temperature; the partition function Q (a sum over the
training set) does not depend on delta and is left out.  The ascent maximizes
log sigma_F^2 - (E - E(X)) / kT, which has the same maximum and stays finite.

Units: Å, eV, eV/Å, K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import units
from ..errors import InputError
from .cutout import Cluster
from .dataset import Frame
from .model import EnvironmentModel
from .train import _Batch, _member_forward


@dataclass(frozen=True, eq=False)
class AdversarialResult:
    """One adversarial structure.

    Attributes
    ----------
    positions : ndarray (n, 3)
        Displaced structure, Å.
    displacement_rms_A : float
        Root mean square displacement from the start, Å.
    force_std_start_eV_A, force_std_eV_A : float
        Committee force spread sqrt(sigma_F^2) at the start and at the end, eV/Å.
    energy_change_eV : float
        Committee-mean energy at the end minus at the start, eV.
    history : dict of ndarray
        ``objective``, ``force_std_eV_A`` and ``energy_change_eV`` at every ascent step.
    cluster : Cluster
        The structure with its molecules, ready for `qmml.ml.label_structures`.
    """

    positions: np.ndarray
    displacement_rms_A: float
    force_std_start_eV_A: float
    force_std_eV_A: float
    energy_change_eV: float
    history: dict
    cluster: Cluster


def _committee(model: EnvironmentModel, frame: Frame, x: torch.Tensor):
    """Committee-mean energy (eV) and force variance (eV²/Å², mean over atoms and components) at x,
    differentiable with respect to x."""
    batch = _Batch(model, [Frame(frame.elements, x.detach().cpu().numpy(), frame.energy, frame.forces, frame.charges,
                                 frame.molecule, frame.molecule_charges, frame.cell)], model.dtype)
    energies, forces = [], []
    for m in range(len(model.members)):
        e, f, _ = _member_forward(model, m, batch, create_graph=True, positions=x)
        energies.append(e.sum())
        forces.append(f)
    forces = torch.stack(forces)
    return torch.stack(energies).mean(), forces.var(0, unbiased=False).mean()


def adversarial_attack(model: EnvironmentModel, elements, positions, *, molecule=None, molecule_charges=None,
                       cell=None, temperature_K: float = 300.0, steps: int = 60, step_size_A: float = 0.01,
                       initial_displacement_A: float = 0.01, seed: int = 0) -> AdversarialResult:
    """Gradient ascent of the adversarial loss from one structure.

    Parameters
    ----------
    model : EnvironmentModel
        A committee (two or more members).
    elements : array_like (n,) int
        Atomic numbers.
    positions : array_like (n, 3)
        Starting structure, Å (e.g. from the training set or a trajectory).
    molecule, molecule_charges : array_like, optional
        Molecule of every atom and each molecule's charge (e), as in a training `Frame`; default one
        neutral molecule.
    cell : array_like (3, 3), optional
        Lattice vectors (rows, Å) of a periodic structure.
    temperature_K : float
        kT of the Boltzmann factor: higher temperatures allow larger, costlier distortions.
    steps : int
        Ascent steps (Adam).
    step_size_A : float
        Adam learning rate, about the largest displacement per step, Å.
    initial_displacement_A : float
        Random starting displacement (per component, Å), so that several attacks from one
        structure with different ``seed`` find different structures.
    seed : int

    Returns
    -------
    AdversarialResult
    """
    if len(model.members) < 2:
        raise InputError("adversarial sampling needs a committee (two or more members)")
    if not temperature_K > 0:
        raise InputError(f"temperature_K={temperature_K} must be positive (K)")
    if int(steps) < 1 or not step_size_A > 0:
        raise InputError(f"steps={steps} must be 1 or more and step_size_A={step_size_A} positive (Å)")
    z = np.asarray(elements, dtype=int)
    x0 = np.asarray(positions, dtype=np.float64)
    n = len(z)
    if x0.shape != (n, 3):
        raise InputError(f"positions have shape {x0.shape}, expected ({n}, 3)")
    mol = np.zeros(n, dtype=int) if molecule is None else np.asarray(molecule, dtype=int)
    mol_q = np.zeros(mol.max() + 1) if molecule_charges is None else np.asarray(molecule_charges, float)
    frame = Frame(z, x0, 0.0, np.zeros((n, 3)), np.zeros(n), mol, mol_q, None if cell is None else np.asarray(cell))
    kT = units.BOLTZMANN_EV_PER_K * float(temperature_K)
    dtype = model.dtype
    start = torch.as_tensor(x0, dtype=dtype)
    gen = torch.Generator().manual_seed(int(seed))
    delta = (torch.randn(start.shape, generator=gen, dtype=dtype) * initial_displacement_A).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=float(step_size_A))
    with torch.enable_grad():
        e0, var0 = _committee(model, frame, start.clone().requires_grad_(True))
    e0, var0 = float(e0.detach()), float(var0.detach())
    history = {"objective": [], "force_std_eV_A": [], "energy_change_eV": []}
    best = (-np.inf, delta.detach().clone(), var0, 0.0)
    for _ in range(int(steps)):
        optimizer.zero_grad()
        energy, variance = _committee(model, frame, start + delta)
        objective = torch.log(variance) - (energy - e0) / kT
        (-objective).backward()
        value, variance, energy = objective.item(), variance.item(), energy.item()
        history["objective"].append(value)
        history["force_std_eV_A"].append(variance ** 0.5)
        history["energy_change_eV"].append(energy - e0)
        if value > best[0]:
            best = (value, delta.detach().clone(), variance, energy - e0)
        optimizer.step()
    _, d, variance, de = best
    x = (start + d).cpu().numpy().astype(np.float64)
    cluster = Cluster(z.copy(), x, mol.copy(), mol_q.copy(), np.arange(n), np.arange(n))
    return AdversarialResult(x, float(np.sqrt(np.mean(np.sum((x - x0) ** 2, 1)))), var0 ** 0.5, variance ** 0.5, de,
                             {k: np.asarray(v) for k, v in history.items()}, cluster)
