"""The ion-transport example (docs/examples/ion_transport.py) on the shipped NaCl(aq) box.

A few NVE steps of the real model (energy conserved, the kept pair lists give the same
forces, the recorded positions are unwrapped so that the collective charge displacement is the time
integral of the formal-charge current), then the analysis on Ornstein-Uhlenbeck ions, where the
answer is known: independent ions have Green-Kubo = Einstein = Nernst-Einstein conductivity
(Haven ratio 1), ions dragged along in neutral pairs carry no current (Haven ratio >> 1).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("ion_transport", ROOT / "docs" / "examples" / "ion_transport.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def ornstein_uhlenbeck_ions(n_pairs, n_frames, dt_fs, tau_fs, rng, paired=False):
    """Velocities (Å/fs) with <v(0)v(t)> = s^2 exp(-t/tau) per component, positions their integral."""
    n = 2 * n_pairs
    c = np.exp(-dt_fs / tau_fs)
    s = 0.01
    v = np.empty((n_frames, n, 3))
    v[0] = rng.normal(scale=s, size=(n, 3))
    noise = rng.normal(scale=s * np.sqrt(1 - c * c), size=(n_frames, n, 3))
    for k in range(1, n_frames):
        v[k] = c * v[k - 1] + noise[k]
    if paired:  # each Cl- moves exactly with its Na+ partner: neutral pairs, no net current
        v[:, n_pairs:] = v[:, :n_pairs]
    x = np.cumsum(v, axis=0) * dt_fs
    return x, v


def test_ion_transport_example(example):
    # -- a few steps of the real thing --------------------------------------------------------
    system = example.load_electrolyte()
    elements = list(system.elements)
    assert elements.count("Na") == elements.count("Cl") == 4 and elements.count("O") == 120
    assert system.cell is not None and abs(np.linalg.det(system.cell) ** (1 / 3) - 15.649) < 0.01

    x = system.positions + 0.02  # away from the file's positions, with atoms outside the box
    for form in example.coulomb_forms():  # the kept pair lists (descriptors, Coulomb, Ewald real space)
        fresh = example.make_potential(system, members=[0], coulomb=form, skin_A=0.0)
        kept = example.make_potential(system, members=[0], coulomb=form, skin_A=1.0)
        kept.compute(x)
        builds = kept.neighbours.builds
        moved = x.copy()
        moved[::7] += 0.2  # within half the skin: the lists are reused, not searched again
        reused, plain = kept.compute(moved), fresh.compute(moved)
        assert kept.neighbours.builds == builds, form
        np.testing.assert_array_equal(reused.forces, plain.forces)
        assert reused.energy == plain.energy

    # the full committee: one member alone leaves the physical region within ~10 fs (docs/ion_transport.md)
    settings = example.RunSettings(timestep_fs=0.5, equilibration_steps=2, production_steps=10, every=1, seed=3)
    frames = example.simulate(system, settings, log=lambda _: None)
    energy = frames["total_energy"]
    assert len(energy) == 11
    assert np.ptp(energy) < 0.05, f"NVE total energy moved by {np.ptp(energy):.3f} eV in 10 steps"
    # dM/dt from the recorded positions equals the current sum_i q_i v_i (trapezoid over each step):
    # fails if positions were wrapped into the box or the charges were not the formal ones
    q = np.array([example.FORMAL_CHARGES[e] for e in elements])
    dipole = np.einsum("tia,i->ta", frames["positions"], q)
    current = np.einsum("tia,i->ta", frames["velocities"], q)
    dt = np.diff(frames["time_fs"])[:, None]
    assert np.allclose(np.diff(dipole, axis=0) / dt, 0.5 * (current[1:] + current[:-1]), atol=2e-4)

    # -- analysis where the answer is known -----------------------------------------------------
    rng = np.random.default_rng(5)
    cell = np.eye(3) * 30.0
    base = {"elements": np.array(["Na"] * 40 + ["Cl"] * 40), "masses": np.array([22.99] * 40 + [35.45] * 40),
            "cell": cell, "meta": {"settings": {"temperature_K": 300.0}}}
    dt_fs, tau_fs = 2.0, 20.0
    x, v = ornstein_uhlenbeck_ions(40, 16000, dt_fs, tau_fs, rng)
    frames = {**base, "time_fs": np.arange(len(x)) * dt_fs, "positions": x, "velocities": v}
    # remove_drift uses the masses; the OU ions are independent, so drift removal must not matter much
    out = example.analyse(frames, blocks=4, fit_fs=(100.0, 400.0), gk_max_fs=200.0)
    exact_d = 0.01 ** 2 * tau_fs  # D = <v_x^2> tau, Å^2/fs
    for name in ("Na", "Cl"):
        d = out[f"D_{name}"]["pbc_cm2_per_s"] / example.units.A2_PER_FS_CM2_PER_S
        assert abs(d / exact_d - 1) < 0.1, (name, d, exact_d)
    ne = out["sigma_nernst_einstein"]["S_per_m"]
    for kind in ("green_kubo", "einstein"):
        assert abs(out[f"sigma_{kind}"]["S_per_m"] / ne - 1) < 0.25, (kind, out[f"sigma_{kind}"], ne)
        h = out[f"haven_ratio_{kind}"]
        assert abs(h["value"] - 1) < max(0.25, 3 * h["stderr"]), (kind, h)

    x, v = ornstein_uhlenbeck_ions(40, 4000, dt_fs, tau_fs, rng, paired=True)
    frames = {**base, "time_fs": np.arange(len(x)) * dt_fs, "positions": x, "velocities": v}
    out = example.analyse(frames, blocks=2, fit_fs=(100.0, 400.0), gk_max_fs=200.0)
    ne = out["sigma_nernst_einstein"]["S_per_m"]
    assert ne > 0
    for kind in ("green_kubo", "einstein"):
        assert abs(out[f"sigma_{kind}"]["S_per_m"]) < 1e-6 * ne  # cross terms cancel the self terms


def test_a_stopped_transport_run_continues_to_the_same_frames(example, tmp_path):
    """With a run folder the example is resumable: stopped after its first chunk (``max_minutes=0``) and run again,
    it records the same production frames as an uninterrupted run, and keeps only what the analysis needs
    (heavy atoms' positions, ions' velocities, the centre of mass, the kinetic energy)."""
    system = example.load_electrolyte()
    settings = example.RunSettings(timestep_fs=0.5, equilibration_steps=4, production_steps=20, every=2, seed=3)
    whole = example.simulate(system, settings, out=tmp_path / "whole", save_every=8, log=lambda _: None)
    assert example.simulate(system, settings, out=tmp_path / "parts", save_every=8, log=lambda _: None,
                            max_minutes=0) is None
    assert sorted(p.name for p in (tmp_path / "parts").glob("frames_*.npz")) == ["frames_00000000.npz"]
    parts = example.simulate(system, settings, out=tmp_path / "parts", save_every=8, log=lambda _: None)
    assert len(parts["time_fs"]) == 11 and np.array_equal(parts["step"], np.arange(0, 21, 2))
    for key in ("positions", "ion_velocities", "com", "kinetic_energy"):
        np.testing.assert_allclose(parts[key], whole[key], rtol=0, atol=1e-6, err_msg=key)
    assert set(parts["elements"]) == {"O", "Na", "Cl"} and parts["positions"].shape == (11, 128, 3)
    assert parts["ion_velocities"].shape == (11, 8, 3)
    assert abs(example.kinetic_temperature(parts) - 300) < 150
    other = example.RunSettings(timestep_fs=0.5, equilibration_steps=4, production_steps=20, every=2, seed=4)
    with pytest.raises(SystemExit, match="other settings"):
        example.simulate(system, other, out=tmp_path / "parts", save_every=8, log=lambda _: None)


def test_analysing_a_folder_without_a_run_exits_2_naming_it(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        example.main(["--analyse", str(tmp_path / "missing")])
    assert stop.value.code == 2 and "missing holds no run" in capsys.readouterr().err
