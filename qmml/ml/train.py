"""Training environment models on labelled datasets (energies, forces, charges, stress).

`train` fits each committee member separately (its own initialization and batch order, same
train/validation split) with Adam, a plateau learning-rate schedule and early stopping on the
validation loss, then joins the members into one `EnvironmentModel`.  Loss per member::

    w_E <((E - E_ref)/n_atoms)^2> + w_F <|F - F_ref|^2>/3 + w_q <(q - q_ref)^2>
        + w_S <|W - W_ref|^2 / n_atoms^2>/9

where W = dE/d(strain) = V * stress is the virial of a periodic frame (only frames whose labels
carry a stress enter the last term).  A model with an embedding-charge head
(``embedding_charges=True``) adds w_esp <(q_emb - q_esp)^2> over the atoms of frames with ESP-fitted
charges (`Frame.esp_charges`); q_ref then trains only the latent head.  W comes out of the same backward pass as the forces: the
model sees positions only through pair vectors x_j + s - x_i, so
W = sum_i dE/dx_i (x) x_i + sum_pairs dE/ds (x) s, with s the lattice shift of the pair.

A model with fixed terms (``model.dispersion``, ``model.baseline``: `EnvironmentModel.fixed_terms`) is
fitted to the labels minus those terms (energies, forces and stress), so that the trained model plus
the terms reproduces the labels.

Neighbour lists of the (fixed) training structures are built once.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import units
from ..periodic.cell import volume
from .baseline import BondBaseline
from .dataset import Dataset
from .model import EnvironmentModel, Member, dsf_coulomb_pairs, neighbour_density
from ..periodic.neighbours import neighbour_list

log = logging.getLogger(__name__)


@dataclass
class TrainingOptions:
    """Hyperparameters of `train` (units: eV, Å, e).

    Attributes
    ----------
    cutoff : float
        Descriptor cutoff, Å.
    n_radial, n_channels : int
        Radial basis functions and channels of the descriptor.
    hidden : tuple of int
        Hidden layer widths of every member's network.
    n_members : int
        Committee size.
    coulomb_cutoff : float, optional
        Cutoff of the model's Coulomb term between molecules (DSF), Å; None: no Coulomb term.
    charge_groups : {"molecule", "structure"}
        Where charge is conserved.
    dispersion : dict, optional
        `D3Dispersion` parameters; its coefficients are fitted on the training frames.
    baseline : dict, optional
        `BondBaseline` parameters ({} for the defaults).
    embedding_charges : bool
        A second charge head, trained on ``Frame.esp_charges``.
    refit_energy_offsets : bool, optional
        With ``initial``, fit its per-element energy offsets to the new labels by least squares before
        training (a change of teacher, e.g. GFN2-xTB to DFT, shifts every element's energy by a constant the
        networks should not have to learn).  None (default): refit when the training set's ``reference``
        differs from the initial model's header ``reference``.
    energy_weight, force_weight, charge_weight, stress_weight, esp_weight : float
        Loss weights of energies per atom (eV), forces (eV/Å), charges (e), stresses (GPa) and embedding
        charges (e).
    learning_rate : float
        Adam's initial learning rate.
    batch_size : int
        Frames per optimizer step.
    max_epochs, patience : int
        Epoch limit, and epochs without validation improvement before stopping.
    validation_fraction : float
        Part of the training frames held out when no validation set is given.
    seed : int
    dtype : {"float32", "float64"}
    max_minutes : float, optional
        Wall-clock cap on the whole training, minutes.
    progress : bool
        A progress bar per member.
    history : list
        Filled by `train`: one dict per member and epoch (losses and validation errors).
    """

    cutoff: float = 5.0
    n_radial: int = 12
    n_channels: int = 10
    hidden: tuple = (64, 64)
    n_members: int = 1
    coulomb_cutoff: float | None = None
    charge_groups: str = "molecule"
    dispersion: dict | None = None  # D3Dispersion parameters; coefficients are fitted on the training frames
    baseline: dict | None = None  # BondBaseline parameters ({} for the defaults)
    embedding_charges: bool = False  # a second charge head, trained on Frame.esp_charges
    refit_energy_offsets: bool | None = None  # None: when the labels' reference differs from the initial model's
    energy_weight: float = 10.0
    force_weight: float = 1.0
    charge_weight: float = 100.0
    stress_weight: float = 10.0
    esp_weight: float = 100.0  # weight of the embedding charges against Frame.esp_charges
    learning_rate: float = 2e-3
    batch_size: int = 16
    max_epochs: int = 200
    patience: int = 25
    validation_fraction: float = 0.1
    seed: int = 0
    dtype: str = "float32"
    max_minutes: float | None = None
    progress: bool = True
    history: list = field(default_factory=list)


class _Batch:
    """Frames joined into one disconnected structure, with precomputed pairs."""

    def __init__(self, model: EnvironmentModel, frames, dtype):
        n_atoms = [len(f.elements) for f in frames]
        offsets = np.concatenate([[0], np.cumsum(n_atoms)])
        self.n_frames = len(frames)
        self.species = model.species(np.concatenate([f.elements for f in frames]))
        self.positions = torch.as_tensor(np.concatenate([f.positions for f in frames]), dtype=dtype)
        self.frame = torch.as_tensor(np.repeat(np.arange(len(frames)), n_atoms))
        self.n_atoms = torch.as_tensor(n_atoms, dtype=dtype)
        self.energy = torch.as_tensor([f.energy for f in frames], dtype=dtype)
        self.forces = torch.as_tensor(np.concatenate([f.forces for f in frames]), dtype=dtype)
        self.charges = torch.as_tensor(np.concatenate([f.charges for f in frames]), dtype=dtype)
        # ESP-fitted charges, the embedding head's targets; NaN (and has_esp False) where a frame has none
        self.esp_charges = torch.as_tensor(np.concatenate([np.full(len(f.elements), np.nan) if f.esp_charges is None
                                                           else f.esp_charges for f in frames]), dtype=dtype)
        self.has_esp = torch.isfinite(self.esp_charges)
        self.has_stress = torch.as_tensor([f.stress is not None for f in frames])
        self.volume = np.array([0.0 if f.cell is None else volume(f.cell) for f in frames])  # Å^3, 0 if open
        # the virial W = V * stress (eV), the quantity the model's strain derivative gives
        self.virial = torch.as_tensor(np.stack([np.zeros((3, 3)) if f.stress is None else np.asarray(f.stress) * v
                                                for f, v in zip(frames, self.volume)]), dtype=dtype)
        for term in model.fixed_terms:  # the networks learn the labels minus the fixed terms
            for k, f in enumerate(frames):
                e_d, f_d, w_d = term.compute(f.elements, f.positions, f.cell, f.molecule)
                self.energy[k] -= e_d
                self.forces[offsets[k]:offsets[k + 1]] -= torch.as_tensor(f_d, dtype=dtype)
                if f.stress is not None:
                    self.virial[k] -= torch.as_tensor(w_d, dtype=dtype)
        if model.charge_groups == "structure":
            self.groups = self.frame
            self.group_charges = torch.as_tensor([np.sum(f.molecule_charges) for f in frames], dtype=dtype)
        else:
            g_off = np.concatenate([[0], np.cumsum([len(f.molecule_charges) for f in frames])])
            self.groups = torch.as_tensor(np.concatenate([f.molecule + g_off[k] for k, f in enumerate(frames)]))
            self.group_charges = torch.as_tensor(np.concatenate([f.molecule_charges for f in frames]), dtype=dtype)
        pi, pj, ps, ci, cj, cs = [], [], [], [], [], []
        for k, f in enumerate(frames):
            pos = torch.as_tensor(f.positions, dtype=torch.float64)
            i, j, s = neighbour_list(pos, model.cutoff, f.cell)
            pi.append(i + offsets[k]), pj.append(j + offsets[k]), ps.append(s)
            if model.coulomb_cutoff is not None:
                i, j, s = neighbour_list(pos, model.coulomb_cutoff, f.cell)
                keep = f.molecule[i.numpy()] != f.molecule[j.numpy()]
                ci.append(i[keep] + offsets[k]), cj.append(j[keep] + offsets[k]), cs.append(s[keep])
        self.i, self.j, self.shifts = torch.cat(pi), torch.cat(pj), torch.cat(ps).to(dtype)
        self.coulomb_pairs = (torch.cat(ci), torch.cat(cj), torch.cat(cs).to(dtype)) if ci else None


def _member_forward(model: EnvironmentModel, member_index: int, batch: _Batch, create_graph: bool, positions=None,
                    virial: bool = False):
    """Energies (frames), forces and conserved charges of one member on a batch (differentiable).

    ``positions`` (a tensor that requires grad) replaces the batch's own, so that quantities built
    from the forces can be differentiated with respect to it (adversarial sampling).  With
    ``virial``, a fourth output holds each frame's dE/d(strain) (n_frames, 3, 3), eV.  The charges are
    the latent head's (those the labels' ``charges`` train); `_embedding_charges` gives the other head's."""
    x = batch.positions.clone().requires_grad_(True) if positions is None else positions
    shifts = batch.shifts.clone().requires_grad_(virial)
    e_atom, raw, _ = model.atomic_terms(batch.species, x, batch.i, batch.j, shifts, 0, len(x),
                                        members=[member_index])
    q = model.conserve(raw, batch.species, batch.groups, batch.group_charges, members=[member_index])[0]
    e_atom, raw = e_atom[0], raw[0]
    energy = raw.new_zeros(batch.n_frames).index_add_(0, batch.frame, e_atom)
    inputs = [x, shifts]
    if batch.coulomb_pairs is not None:
        ci, cj, cs = batch.coulomb_pairs
        cs = cs.clone().requires_grad_(virial)
        inputs.append(cs)
        rr = torch.linalg.norm(x[cj] + cs - x[ci], dim=1)
        pair_e = 0.5 * dsf_coulomb_pairs(q[ci], q[cj], rr, model.coulomb_cutoff)
        energy = energy.index_add(0, batch.frame[ci], pair_e)
    if not virial:
        forces = -torch.autograd.grad(energy.sum(), x, create_graph=create_graph)[0]
        return energy, forces, q
    grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph)
    w = x.new_zeros((batch.n_frames, 3, 3)).index_add_(0, batch.frame, grads[0][:, :, None] * x[:, None, :])
    w = w.index_add(0, batch.frame[batch.i], grads[1][:, :, None] * shifts[:, None, :])
    if batch.coulomb_pairs is not None:
        w = w.index_add(0, batch.frame[ci], grads[2][:, :, None] * cs[:, None, :])
    return energy, -grads[0], q, w


def _embedding_charges(model: EnvironmentModel, member_index: int, batch: _Batch):
    """The embedding head's conserved charges of one member on a batch (differentiable in the parameters)."""
    _, _, raw = model.atomic_terms(batch.species, batch.positions, batch.i, batch.j, batch.shifts, 0,
                                   len(batch.positions), members=[member_index])
    return model.conserve(raw, batch.species, batch.groups, batch.group_charges, members=[member_index],
                          head="embedding")[0]


def _losses(model, m, batch, opts, create_graph=True):
    with_virial = bool(batch.has_stress.any()) and opts.stress_weight > 0
    energy, forces, q, *virial = _member_forward(model, m, batch, create_graph, virial=with_virial)
    e_err = ((energy - batch.energy) / batch.n_atoms) ** 2
    f_err = ((forces - batch.forces) ** 2).sum(1) / 3
    q_err = (q - batch.charges) ** 2
    loss = opts.energy_weight * e_err.mean() + opts.force_weight * f_err.mean() + opts.charge_weight * q_err.mean()
    metrics = {"energy_rmse_eV_per_atom": e_err.mean().sqrt().item(), "force_rmse_eV_A": f_err.mean().sqrt().item(),
               "charge_rmse_e": q_err.mean().sqrt().item()}
    if with_virial:
        has = batch.has_stress
        w_err = (((virial[0] - batch.virial)[has] / batch.n_atoms[has, None, None]) ** 2).sum((1, 2)) / 9
        loss = loss + opts.stress_weight * w_err.mean()
        metrics["virial_rmse_eV_per_atom"] = w_err.mean().sqrt().item()
    if model.embedding_charges and bool(batch.has_esp.any()):
        has = batch.has_esp
        esp_err = (_embedding_charges(model, m, batch)[has] - batch.esp_charges[has]) ** 2
        loss = loss + opts.esp_weight * esp_err.mean()
        metrics["esp_charge_rmse_e"] = esp_err.mean().sqrt().item()
    return loss, metrics


def _initialize(model: EnvironmentModel, member: Member, batches, dataset: Dataset, rng):
    """Per-element energy and charge offsets by least squares, feature normalization from data."""
    z_all = model.elements
    counts = np.array([[np.sum(f.elements == z) for z in z_all] for f in dataset.frames], float)
    energies = np.array([f.energy for f in dataset.frames])
    e0, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    resid = (energies - counts @ e0) / counts.sum(1)
    q0 = [np.mean(np.concatenate([f.charges[f.elements == z] for f in dataset.frames])) for z in z_all]
    with torch.no_grad():
        member.atomic_energy.copy_(torch.as_tensor(e0))
        member.atomic_charge.copy_(torch.as_tensor(q0))
        if member.embedding_head:
            esp = [np.concatenate([f.esp_charges[f.elements == z] for f in dataset.frames if f.esp_charges is not None]
                                  or [np.array([q])]) for z, q in zip(z_all, q0)]
            member.embedding_charge.copy_(torch.as_tensor([float(np.mean(v)) if len(v) else 0.0 for v in esp]))
        member.energy_scale.fill_(max(float(np.std(resid)) * 4, 0.05))
        feats = []
        for b in batches[: max(1, min(len(batches), 8))]:
            basis, unit = model.pair_geometry(b.positions, b.i, b.j, b.shifts)
            feats.append(member.features(neighbour_density(basis, unit, b.species[b.j], b.i, len(b.positions),
                                                           len(model.elements))))
        feats = torch.cat(feats)
        member.feature_mean.copy_(feats.mean(0))
        member.feature_std.copy_(feats.std(0).clamp(min=1e-6))


def _same_term(term, parameters: dict) -> bool:
    """Whether ``term`` (a `D3Dispersion`, `BondBaseline` or None) already has every field ``parameters`` asks for."""
    if term is None:
        return False
    fields = term.to_dict()
    return all(k in fields and fields[k] == v for k, v in parameters.items())


def _refit_energy_offsets(model: EnvironmentModel, m: int, batches, dataset: Dataset):
    """Shift member ``m``'s per-element energies by the least-squares fit of (label - member) energies
    against element counts: the constant per element a new teacher adds."""
    z_all = model.elements
    counts = np.array([[np.sum(f.elements == z) for z in z_all] for f in dataset.frames], float)
    resid = np.concatenate([(b.energy - _member_forward(model, m, b, create_graph=False)[0]).detach().numpy()
                            for b in batches])
    present = counts.sum(0) > 0
    shift = np.zeros(len(z_all))
    shift[present], *_ = np.linalg.lstsq(counts[:, present], resid, rcond=None)
    with torch.no_grad():
        member = model.members[m]
        member.atomic_energy.add_(torch.as_tensor(shift, dtype=member.atomic_energy.dtype))


def fit_dispersion(dataset: Dataset, parameters: dict, n_frames: int = 40):
    """A `D3Dispersion` with ``parameters`` and D3 coefficients at the coordination of up to ``n_frames``
    frames spread over ``dataset``, plus the first frame holding each element pair that meets in the dataset
    but not in those (rare pairs, e.g. N with Na+, must not be missed)."""
    from .dispersion import D3Dispersion

    def pairs(z):
        kinds, counts = np.unique(z, return_counts=True)
        return {(int(a), int(b)) for i, a in enumerate(kinds) for b in kinds[i:] if a != b or counts[i] > 1}

    picks = [int(k) for k in np.unique(np.linspace(0, len(dataset) - 1, min(n_frames, len(dataset))).round())]
    covered = set().union(*(pairs(dataset.frames[k].elements) for k in picks))
    for k, frame in enumerate(dataset.frames):
        new = pairs(frame.elements) - covered
        if new:
            picks.append(k)
            covered |= new
    return D3Dispersion.fitted([(dataset.frames[k].elements, dataset.frames[k].positions) for k in sorted(picks)],
                               **parameters)


def evaluate(model: EnvironmentModel, dataset: Dataset, *, batch_size: int = 32) -> dict:
    """Committee-mean errors on a dataset: MAE and RMSE of energy per atom, forces and charges, and for
    frames with a stress label, of the stress (GPa) and the pressure (kbar).

    Parameters
    ----------
    model : EnvironmentModel
    dataset : Dataset
        Labelled frames (eV, eV/Å, e; GPa for stresses).
    batch_size : int
        Frames evaluated together.
    """
    e_err, f_err, q_err, s_err, p_err, esp_err = [], [], [], [], [], []
    dtype = model.dtype
    for k in range(0, len(dataset), batch_size):
        frames = dataset.frames[k:k + batch_size]
        batch = _Batch(model, frames, dtype)
        virial = bool(batch.has_stress.any())
        outs = [_member_forward(model, m, batch, create_graph=False, virial=virial) for m in range(len(model.members))]
        energy, forces, q = (torch.stack([o[n] for o in outs]).mean(0).detach() for n in range(3))
        e_err.append(((energy - batch.energy) / batch.n_atoms).numpy())
        f_err.append((forces - batch.forces).numpy().ravel())
        q_err.append((q - batch.charges).numpy())
        if model.embedding_charges and bool(batch.has_esp.any()):
            with torch.no_grad():
                q_emb = torch.stack([_embedding_charges(model, m, batch) for m in range(len(model.members))]).mean(0)
            esp_err.append((q_emb - batch.esp_charges)[batch.has_esp].numpy())
        if virial:
            w = torch.stack([o[3] for o in outs]).mean(0).detach()
            has = batch.has_stress.numpy()
            stress = (w - batch.virial).numpy()[has] / batch.volume[has, None, None]  # eV/Å^3
            s_err.append(stress.reshape(-1, 9) * units.EV_PER_A3_GPA)
            p_err.append(-np.trace(stress, axis1=1, axis2=2) / 3 / units.BAR_EV_PER_A3 / 1000.0)  # kbar
    e, f, q = (np.concatenate(v).astype(np.float64) for v in (e_err, f_err, q_err))
    out = {"frames": len(dataset), "atoms": dataset.n_atoms,
           "energy_mae_eV_per_atom": float(np.abs(e).mean()), "energy_rmse_eV_per_atom": float(np.sqrt((e**2).mean())),
           "force_mae_eV_A": float(np.abs(f).mean()), "force_rmse_eV_A": float(np.sqrt((f**2).mean())),
           "charge_mae_e": float(np.abs(q).mean()), "charge_rmse_e": float(np.sqrt((q**2).mean()))}
    if esp_err:
        d = np.concatenate(esp_err).astype(np.float64)
        out.update({"esp_atoms": len(d), "esp_charge_mae_e": float(np.abs(d).mean()),
                    "esp_charge_rmse_e": float(np.sqrt((d ** 2).mean()))})
    if s_err:
        s, p = np.concatenate(s_err), np.concatenate(p_err)
        out.update({"stress_frames": len(p), "stress_mae_GPa": float(np.abs(s).mean()),
                    "stress_rmse_GPa": float(np.sqrt((s**2).mean())), "pressure_mae_kbar": float(np.abs(p).mean()),
                    "pressure_mean_error_kbar": float(p.mean())})
    return out


def train(train_set: Dataset, options: TrainingOptions | None = None, *, validation_set: Dataset | None = None,
          history_path=None, plot_path=None, initial: EnvironmentModel | None = None) -> EnvironmentModel:
    """Fit an `EnvironmentModel` to ``train_set``.

    Parameters
    ----------
    train_set : Dataset
    options : TrainingOptions
    validation_set : Dataset, optional
        Default: ``options.validation_fraction`` of ``train_set``, held out at random.
    history_path, plot_path : path, optional
        CSV of the per-epoch losses and a PNG learning curve.
    initial : EnvironmentModel, optional
        Continue training a copy of this model (its architecture and committee size; the options'
        architecture fields are ignored) instead of starting from random weights: retraining after
        new data arrives (active learning) then costs a fraction of a fresh fit.  ``initial`` itself
        is left unchanged.

    Returns
    -------
    EnvironmentModel
        In evaluation mode, with ``model.training_report`` holding the validation errors.
    """
    opts = options or TrainingOptions()
    dtype = getattr(torch, opts.dtype)
    if validation_set is None:
        train_set, validation_set = train_set.split((1 - opts.validation_fraction, opts.validation_fraction),
                                                    seed=opts.seed)
    torch.manual_seed(opts.seed)
    elements = sorted(set(train_set.elements) | set(validation_set.elements))
    dispersion = None
    if opts.dispersion is not None and (initial is None or not _same_term(initial.dispersion, opts.dispersion)):
        dispersion = fit_dispersion(train_set, opts.dispersion)
    baseline = None
    if opts.baseline is not None and (initial is None or not _same_term(initial.baseline, opts.baseline)):
        # the initial model's own baseline, with the options' changes (e.g. ion walls added to a trained model)
        base = {} if initial is None or initial.baseline is None else initial.baseline.to_dict()
        baseline = BondBaseline.from_dict({**base, **opts.baseline})
    if initial is None:
        model = EnvironmentModel(elements, cutoff=opts.cutoff, n_radial=opts.n_radial, n_channels=opts.n_channels,
                                 hidden=opts.hidden, n_members=opts.n_members, coulomb_cutoff=opts.coulomb_cutoff,
                                 charge_groups=opts.charge_groups, dispersion=dispersion, baseline=baseline,
                                 embedding_charges=opts.embedding_charges)
    else:
        initial.species(elements)  # clear error if the new data holds elements the model does not know
        model = initial.with_embedding_head() if opts.embedding_charges else copy.deepcopy(initial)
        # a model trained without a term learns to leave that part to the term
        if dispersion is not None:
            model.dispersion = dispersion
        if baseline is not None:
            model.baseline = baseline
    model = model.to(dtype)
    n_members = len(model.members)
    rng = np.random.default_rng(opts.seed)

    def batches_of(ds, order):
        return [_Batch(model, [ds.frames[i] for i in order[k:k + opts.batch_size]], dtype)
                for k in range(0, len(order), opts.batch_size)]

    val_batches = batches_of(validation_set, np.arange(len(validation_set)))
    refit = opts.refit_energy_offsets
    if refit is None and initial is not None:
        old, new = getattr(initial, "header", {}).get("reference"), train_set.metadata.get("reference")
        refit = old is not None and new is not None and old != new
        if refit:
            log.info("labels from %s, initial model from %s: refitting its per-element energy offsets", new, old)
    if initial is not None and refit:
        for m in range(len(model.members)):
            _refit_energy_offsets(model, m, batches_of(train_set, np.arange(len(train_set))), train_set)
    history = []
    start = time.time()
    for m in range(n_members):
        member = model.members[m]
        order = rng.permutation(len(train_set))
        train_batches = batches_of(train_set, order)  # fixed batch composition, shuffled order per epoch
        if initial is None:
            _initialize(model, member, train_batches, train_set, rng)
        params = list(member.parameters())
        optimizer = torch.optim.Adam(params, lr=opts.learning_rate)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=max(2, opts.patience // 3))
        best, best_state, stale = math.inf, None, 0
        epochs = range(opts.max_epochs)
        bar = None
        if opts.progress:
            from tqdm.auto import tqdm
            bar = tqdm(epochs, desc=f"member {m + 1}/{n_members}", unit="epoch")
            epochs = bar
        for epoch in epochs:
            member.train()
            train_loss = 0.0
            for b in rng.permutation(len(train_batches)):
                optimizer.zero_grad()
                loss, _ = _losses(model, m, train_batches[b], opts)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                optimizer.step()
                train_loss += loss.item() / len(train_batches)
            member.eval()
            val_loss, val_metrics = 0.0, {}
            for b in val_batches:
                loss, metrics = _losses(model, m, b, opts, create_graph=False)
                val_loss += loss.item() / len(val_batches)
                for k, v in metrics.items():
                    val_metrics[k] = val_metrics.get(k, 0.0) + v * v / len(val_batches)
            val_metrics = {k: math.sqrt(v) for k, v in val_metrics.items()}
            scheduler.step(val_loss)
            row = {"member": m, "epoch": epoch, "train_loss": train_loss, "validation_loss": val_loss,
                   "learning_rate": optimizer.param_groups[0]["lr"], **{f"validation_{k}": v for k, v in val_metrics.items()}}
            history.append(row)
            if bar is not None:
                bar.set_postfix(loss=f"{val_loss:.4g}", F=f"{val_metrics['force_rmse_eV_A']:.3f}",
                                q=f"{val_metrics['charge_rmse_e']:.4f}")
            if val_loss < best * (1 - 1e-4):
                best, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in member.state_dict().items()}
            else:
                stale += 1
            out_of_time = opts.max_minutes is not None and \
                (time.time() - start) / 60 > opts.max_minutes * (m + 1) / n_members
            if stale >= opts.patience or optimizer.param_groups[0]["lr"] < 1e-6 or out_of_time:
                break
        if bar is not None:
            bar.close()
        member.load_state_dict(best_state)
    opts.history = history
    if history_path is not None:
        _write_history(history, history_path)
    if plot_path is not None:
        plot_learning_curve(history, plot_path)
    model.eval()
    model.training_report = {"validation": evaluate(model, validation_set), "train_frames": len(train_set),
                             "validation_frames": len(validation_set), "minutes": (time.time() - start) / 60}
    return model


def _write_history(history, path):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def plot_learning_curve(history, path):
    """Training and validation loss per epoch (log scale), one line per committee member."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend (a notebook's inline one) stays

    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 2)
    for m in sorted({h["member"] for h in history}):
        rows = [h for h in history if h["member"] == m]
        ep = [h["epoch"] for h in rows]
        axes[0].semilogy(ep, [h["train_loss"] for h in rows], label=f"train {m}")
        axes[0].semilogy(ep, [h["validation_loss"] for h in rows], "--", label=f"validation {m}")
        axes[1].semilogy(ep, [h["validation_force_rmse_eV_A"] for h in rows], label=f"force RMSE (eV/Å) {m}")
        axes[1].semilogy(ep, [h["validation_charge_rmse_e"] for h in rows], ":", label=f"charge RMSE (e) {m}")
    axes[0].set_xlabel("epoch"), axes[0].set_ylabel("loss"), axes[0].legend(fontsize=7)
    axes[1].set_xlabel("epoch"), axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
