"""Rigorous remainder bounds of the Hermite-multipole series (`qmml.qm.truncation`): no smaller than what the
series leave out, and orders that follow the requested accuracy."""

import math

import numpy as np
import pytest

import qmml
from qmml import units
from qmml.qm import hermite, truncation

from test_far_field import WATER, water_like_sites


@pytest.mark.parametrize("seed", range(4))
def test_tail_bound_covers_the_truncated_taylor_series_of_every_derivative_of_inverse_distance(seed):
    """T_t(X - y) = sum_m T_(t+m)(X) (-y)^m / m!; what is left out above degree L - |t| is within the bound."""
    rng = np.random.default_rng(seed)
    top = 16
    powers = hermite.monomials(top)
    index = {tuple(p): i for i, p in enumerate(powers)}
    worst = 0.0
    for _ in range(40):
        distance = rng.uniform(3.0, 12.0)
        x = rng.normal(size=3)
        x *= distance / np.linalg.norm(x)
        y = rng.normal(size=3)
        rho = rng.uniform(0.05, 0.7) * distance
        y *= rho / np.linalg.norm(y)
        t = powers[rng.integers(0, len(hermite.monomials(3)))]
        tau = int(t.sum())
        at_x = hermite.derivatives_of_inverse_distance(x[None], top)[0]
        exact = hermite.derivatives_of_inverse_distance((x - y)[None], tau)[0][index[tuple(t)]]
        for order in range(max(tau, 4), top - 2, 3):
            kept = [m for m in hermite.monomials(order - tau)]
            series = sum(at_x[index[tuple(t + m)]] * np.prod((-y) ** m) / np.prod([math.factorial(v) for v in m])
                         for m in kept)
            bound = truncation.tail_bound(tau, rho, distance, np.array([order]), tau)[0]
            assert abs(exact - series) <= bound + 1e-15 * abs(exact), (t, order, rho / distance)  # + rounding
            worst = max(worst, abs(exact - series) / bound)
    assert worst > 0.02  # and a tight one: measured 2-25 times what is left out


def test_a_tighter_tolerance_raises_the_orders_and_meets_its_bounds():
    sites, charges = water_like_sites(250, 3.0, 16.0)
    elements, xyz = WATER
    results = {}
    for tolerance in (1e-9, 1e-11, 1e-13):
        engine = qmml.PySCFEngine("hf", "6-31g*", conv_tol=1e-12, guess="default", series_min_sites=0,
                                  series_tolerance=tolerance)
        results[tolerance] = engine.compute(elements, xyz, site_positions=sites, site_charges=charges, forces=False)
        series = results[tolerance].series
        assert series["energy_bound_eV"] <= tolerance * units.HARTREE_EV
    orders = [results[t].series["energy_order"] for t in (1e-9, 1e-11, 1e-13)]
    assert orders[0] < orders[1] < orders[2], orders
    # the loosest series still agrees with the tightest within its own bound (+ SCF noise)
    gap = abs(results[1e-9].energy - results[1e-13].energy)
    assert gap <= results[1e-9].series["energy_bound_eV"] + 1e-12 * units.HARTREE_EV


def test_series_tolerance_is_checked():
    from qmml.errors import InputError

    with pytest.raises(InputError, match="series_tolerance"):
        qmml.PySCFEngine("hf", "6-31g*", series_tolerance=0.0)
