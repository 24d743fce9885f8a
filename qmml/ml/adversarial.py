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


def adversarial_attack(model, elements=None, positions=None, *, objective: str = "uncertainty", molecule=None,
                       molecule_charges=None, cell=None, temperature_K: float = 300.0, steps: int = 60,
                       step_size_A: float = 0.01, initial_displacement_A: float = 0.01, seed: int = 0,
                       norm_A: float = 0.3, hessian_modes: int = 0):
    """Gradient ascent of an adversarial objective from one structure.

    Parameters
    ----------
    model : EnvironmentModel or qmml.Potential
        With ``objective="uncertainty"`` a committee (two or more members); with ``"energy"`` any potential.
    objective : {"uncertainty", "energy"}
        "uncertainty": the committee's force variance at a thermal energy cost (the module docstring), returning an
        `AdversarialResult`.  "energy": the softest path to instability, `energy_ascent` of the potential from
        ``positions`` (``elements`` unused; ``norm_A``, ``hessian_modes`` and ``seed`` passed on), returning an
        `EnergyAscent`.
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
    norm_A, hessian_modes
        See `energy_ascent` (``objective="energy"`` only).

    Returns
    -------
    AdversarialResult or EnergyAscent
    """
    if objective == "energy":
        from ..potential import Potential

        if not isinstance(model, Potential):
            raise InputError("objective='energy' follows the energy of a qmml potential (QMPotential, Hamiltonian, "
                             "MLPotential(model, system)), not a bare EnvironmentModel")
        return energy_ascent(model, positions, norm_A=norm_A, hessian_modes=hessian_modes, seed=seed, cell=cell)
    if objective != "uncertainty":
        raise InputError(f"objective={objective!r}: choose 'uncertainty' (committee disagreement) or 'energy' "
                         "(softest path to instability)")
    if elements is None or positions is None:
        raise InputError("objective='uncertainty' needs elements and positions")
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


# -- energy objective: the softest path to instability ------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EnergyAscent:
    """Outcome of `energy_ascent`.

    Attributes
    ----------
    direction : ndarray (n, 3)
        Unit displacement (Euclidean norm 1 over all atoms) of lowest curvature, net translation and rotation removed,
        signed so that the energy rises less going along it than against it (the easier way up), Å/Å.
    curvature_eV_A2 : float
        d^2E/ds^2 along it at the start, eV/Å^2 (negative at a saddle point).
    displacements_A : ndarray (k,)
        Norms s of the displacements s * direction along which the energy was evaluated, Å.
    energies_eV : ndarray (k,)
        E(x + s direction) - E(x), eV.
    positions : ndarray (n, 3)
        The structure at the largest displacement, Å.
    mode_overlaps : ndarray (m,) or None
        abs(direction . v_i) with the m lowest vibrational (non-rigid) Hessian modes v_i, by finite differences
        (``hessian_modes=m``); None without.
    hessian_eigenvalues_eV_A2 : ndarray (m,) or None
    iterations : int
        Hessian-vector products (two force evaluations each) spent on the direction.
    """

    direction: np.ndarray
    curvature_eV_A2: float
    displacements_A: np.ndarray
    energies_eV: np.ndarray
    positions: np.ndarray
    mode_overlaps: np.ndarray | None
    hessian_eigenvalues_eV_A2: np.ndarray | None
    iterations: int


def _rigid_basis(x: np.ndarray, periodic: bool) -> np.ndarray:
    """Orthonormal rows spanning the net translations (and, in open boundaries, the rigid rotations) at x."""
    n = len(x)
    vectors = [np.tile(np.eye(3)[a], n) for a in range(3)]
    if not periodic:
        centred = x - x.mean(0)
        vectors += [np.cross(np.eye(3)[a], centred).ravel() for a in range(3)]
    q, r = np.linalg.qr(np.array(vectors).T)
    return q[:, np.abs(np.diag(r)) > 1e-8 * max(1.0, np.abs(r).max())].T


def _forces(potential, x, cell):
    from ..potential import check_result

    return np.asarray(check_result(potential, potential.compute(x, cell=cell)).forces, dtype=np.float64).ravel()


def energy_ascent(potential, positions=None, *, norm_A: float = 0.3, points: int = 7, max_iterations: int = 60,
                  tolerance: float = 1e-4, step_A: float = 5e-3, hessian_modes: int = 0, seed: int = 0,
                  cell=None) -> EnergyAscent:
    """The softest path to instability: the displacement direction along which the energy rises least per
    displacement norm, and the energy along it.

    At a minimum the energy of a small displacement s d (unit d) is E + s^2 d.H.d / 2, so the direction that goes
    uphill at the least cost (and the one that a transition or a phase change follows first) is the Hessian
    eigenvector of lowest curvature, translations and rotations excluded.  It is found from Hessian-vector products
    by central differences of the forces, H d = -(F(x + h d) - F(x - h d)) / 2h, in a Lanczos (Krylov) iteration
    with full reorthogonalisation; no Hessian is built.  Works with any qmml potential (QM, QM/ML, ML).

    Parameters
    ----------
    potential : qmml.Potential
    positions : array_like (n, 3), optional
        Start (Å), ideally a minimum; default the potential's system.
    norm_A : float
        Largest displacement norm along the direction at which the energy is reported, Å.
    points : int
        Displacements from 0 to ``norm_A``.
    max_iterations : int
        Hessian-vector products at most (each two force evaluations); at most 3n - 6 are ever needed.
    tolerance : float
        Stop when the lowest Ritz value changes by less than this fraction of its size, relative.
    step_A : float
        Finite-difference step of the Hessian-vector products, Å.
    hessian_modes : int
        Also compute the full Hessian by finite differences (6n force evaluations) and report the overlaps with
        its this many lowest vibrational modes; 0 skips it.
    seed : int
        Starting vector of the iteration.
    cell : array_like (3, 3), optional
        Box (rows, Å) for periodic potentials (rotations are then not removed); default the system's.

    Returns
    -------
    EnergyAscent
    """
    from ..potential import check_result

    system = potential.system
    x0 = np.array(system.positions if positions is None else positions, dtype=np.float64)
    if x0.shape != (system.n_atoms, 3) or not np.isfinite(x0).all():
        raise InputError(f"positions must be finite with shape ({system.n_atoms}, 3), got {x0.shape}")
    if not norm_A > 0 or int(points) < 2 or not step_A > 0 or int(max_iterations) < 1:
        raise InputError(f"norm_A={norm_A} and step_A={step_A} must be positive (Å), points={points} at least 2 and "
                         f"max_iterations={max_iterations} at least 1")
    cell = system.cell if cell is None else np.asarray(cell, dtype=np.float64)
    rigid = _rigid_basis(x0, cell is not None)
    dof = 3 * len(x0) - len(rigid)
    if dof < 1:
        raise InputError("the structure has no internal degrees of freedom to follow")

    def project(v):
        v = v - rigid.T @ (rigid @ v)
        return v

    def hessian_times(v):
        d = v.reshape(-1, 3) * step_A
        return project(-(_forces(potential, x0 + d, cell) - _forces(potential, x0 - d, cell)) / (2 * step_A))

    v = project(np.random.default_rng(seed).standard_normal(x0.size))
    basis, products = [v / np.linalg.norm(v)], []
    lowest, previous = None, None
    for _ in range(min(int(max_iterations), dof)):
        products.append(hessian_times(basis[-1]))
        q = np.array(basis)
        small = q @ np.array(products).T
        values, vectors = np.linalg.eigh(0.5 * (small + small.T))
        lowest, direction = values[0], vectors[:, 0] @ q
        if previous is not None and abs(lowest - previous) <= tolerance * max(abs(lowest), 1e-12):
            break
        previous = lowest
        residual = products[-1] - q.T @ (q @ products[-1])  # the next Krylov vector, orthogonal to all before
        residual = project(residual - q.T @ (q @ residual))
        if np.linalg.norm(residual) < 1e-10 * max(1.0, np.linalg.norm(products[-1])):
            break
        basis.append(residual / np.linalg.norm(residual))
    direction = direction / np.linalg.norm(direction)
    e0 = float(check_result(potential, potential.compute(x0, forces=False, cell=cell)).energy)
    steps = np.linspace(0.0, float(norm_A), int(points))

    def profile(sign):
        return np.array([float(check_result(potential, potential.compute(x0 + sign * s * direction.reshape(-1, 3),
                                                                           forces=False, cell=cell)).energy) - e0
                         for s in steps])

    up, down = profile(1.0), profile(-1.0)
    sign, energies = (1.0, up) if up[-1] <= down[-1] else (-1.0, down)
    direction = sign * direction.reshape(-1, 3)
    overlaps = eigenvalues = None
    if int(hessian_modes) > 0:
        columns = [hessian_times(e) for e in np.eye(x0.size)]
        hessian = project(project(np.array(columns).T).T)  # rigid directions projected out on both sides
        values, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
        keep = np.abs(vectors.T @ rigid.T).max(axis=1) < 0.5  # drop the (zero) rigid modes
        values, vectors = values[keep][:int(hessian_modes)], vectors[:, keep][:, :int(hessian_modes)]
        overlaps, eigenvalues = np.abs(vectors.T @ direction.ravel()), values
    return EnergyAscent(direction=direction, curvature_eV_A2=float(lowest), displacements_A=steps,
                        energies_eV=energies, positions=x0 + float(norm_A) * direction, mode_overlaps=overlaps,
                        hessian_eigenvalues_eV_A2=eigenvalues, iterations=len(products))
