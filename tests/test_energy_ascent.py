"""The energy objective of adversarial sampling (`qmml.ml.energy_ascent`): the softest path to instability, on an
anisotropic harmonic network against its analytic Hessian."""

import numpy as np
import pytest

import qmml
from qmml.errors import InputError
from qmml.ml import adversarial_attack, energy_ascent

TETRAHEDRON = np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.4, 1.3, 0.0], [0.5, 0.4, 1.2]])
SPRINGS = {(0, 1): 30.0, (0, 2): 12.0, (0, 3): 4.0, (1, 2): 20.0, (1, 3): 7.0, (2, 3): 2.5}  # eV/Å^2


class SpringNetwork(qmml.Potential):
    """Harmonic springs at their rest lengths in the start structure: translation- and rotation-invariant, with six
    internal modes of distinct curvature."""

    def __init__(self):
        self.system = qmml.System.from_arrays(["C"] * 4, TETRAHEDRON)
        self.rest = {p: np.linalg.norm(TETRAHEDRON[p[1]] - TETRAHEDRON[p[0]]) for p in SPRINGS}

    def compute(self, positions, *, forces=True, cell=None):
        x = np.asarray(positions)
        energy, f = 0.0, np.zeros_like(x)
        for (i, j), k in SPRINGS.items():
            d = x[j] - x[i]
            r = np.linalg.norm(d)
            energy += 0.5 * k * (r - self.rest[(i, j)]) ** 2
            g = k * (r - self.rest[(i, j)]) * d / r
            f[i] += g
            f[j] -= g
        return qmml.PotentialResult(energy=energy, forces=f)

    def hessian(self):
        h = np.zeros((12, 12))
        for (i, j), k in SPRINGS.items():
            u = TETRAHEDRON[j] - TETRAHEDRON[i]
            block = k * np.outer(u, u) / (u @ u)
            for a, b, sign in ((i, i, 1), (j, j, 1), (i, j, -1), (j, i, -1)):
                h[3 * a:3 * a + 3, 3 * b:3 * b + 3] += sign * block
        return h


def test_energy_ascent_follows_the_softest_mode_of_a_harmonic_network():
    potential = SpringNetwork()
    values, vectors = np.linalg.eigh(potential.hessian())
    internal = values > 1e-9  # six zero modes: translations and rotations
    softest = vectors[:, internal][:, 0]
    result = energy_ascent(potential, norm_A=0.01, hessian_modes=3)
    overlap = abs(result.direction.ravel() @ softest)
    print(f"softest curvature {values[internal][0]:.4f} eV/Å^2, found {result.curvature_eV_A2:.4f} in "
          f"{result.iterations} products; overlap {overlap:.5f}")
    assert overlap > 0.99
    assert result.curvature_eV_A2 == pytest.approx(values[internal][0], rel=1e-4)
    assert result.hessian_eigenvalues_eV_A2 == pytest.approx(values[internal][:3], rel=1e-4)
    assert result.mode_overlaps[0] > 0.99
    # the energy along it is s^2 curvature / 2 (to the springs' geometric anharmonicity), the cheapest way up
    assert result.energies_eV == pytest.approx(0.5 * values[internal][0] * result.displacements_A ** 2, rel=5e-3,
                                               abs=1e-12)
    stiffest = vectors[:, internal][:, -1].reshape(-1, 3)
    x0 = potential.system.positions
    assert potential.compute(x0 + 0.01 * stiffest).energy > 5 * result.energies_eV[-1]


def test_energy_objective_of_adversarial_attack_and_its_errors():
    potential = SpringNetwork()
    via_attack = adversarial_attack(potential, positions=TETRAHEDRON, objective="energy", norm_A=0.05)
    assert via_attack.curvature_eV_A2 == pytest.approx(energy_ascent(potential, norm_A=0.05).curvature_eV_A2,
                                                       rel=1e-6)
    with pytest.raises(InputError, match="objective"):
        adversarial_attack(potential, positions=TETRAHEDRON, objective="charges")
    with pytest.raises(InputError, match="not a bare EnvironmentModel"):
        adversarial_attack(qmml.load_model("water"), positions=TETRAHEDRON, objective="energy")
    with pytest.raises(InputError, match="shape"):
        energy_ascent(potential, positions=TETRAHEDRON[:3])
