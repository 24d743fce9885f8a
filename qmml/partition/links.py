"""Link atoms: hydrogen caps on cut covalent bonds.

A link atom L on the cut bond Q1-M1 sits at

    R_L = R_Q1 + g (R_M1 - R_Q1) = (1 - g) R_Q1 + g R_M1,

with g = d_eq(Q1-H) / d(Q1-M1): the tabulated Q1-H length (`qmml.elements`) over the cut bond's length in
the partitioned structure, so the cap sits at its equilibrium length whatever the order of the cut bond.  A
ratio of two tabulated single bonds cannot tell a peptide C-N (1.335 Å) from an amine C-N (1.47 Å): it put the
amide N-H caps of an ML shell at 0.92 Å and the carbonyl C-H caps at 0.99 Å, and the model pushed the
boundary atoms with up to 5.9 eV/Å.  Because R_L is linear in R_Q1 and R_M1, the force on L goes to the
real atoms by the same weights: (1 - g) F_L to Q1 and g F_L to M1.  Both use `LinkAtom.weights`, so placement and
force projection cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..elements import bond_length_A
from ..errors import PartitionError
from ..periodic.cell import minimum_image

#: A cut bond longer or shorter than its tabulated single-bond length by more than this factor is no bond of
#: the structure (a wrong bond list, atoms that overlap): "scaled" refuses to place a cap on it.
BOND_LENGTH_TOLERANCE = 1.5


@dataclass(frozen=True)
class LinkAtom:
    """A hydrogen cap on the cut bond ``q1``-``m1`` (0-based atom indices).

    Parameters
    ----------
    q1, m1 : int
        The QM and the environment atom of the cut bond (0-based, system-wide).
    g : float
        Scale factor of the link position along the bond: r_L = r_q1 + g (r_m1 - r_q1).
    element : str
        The cap's element.
    """

    q1: int
    m1: int
    g: float
    element: str = "H"

    @property
    def weights(self) -> tuple[tuple[int, float], tuple[int, float]]:
        """(atom, weight) pairs with R_L = sum(weight * R_atom)."""
        return (self.q1, 1.0 - self.g), (self.m1, self.g)


def link_scale_factor(system, q1: int, m1: int, link, label: str) -> float:
    """g for the cut bond ``q1``-``m1`` of ``system``.

    ``link="scaled"``: the tabulated Q1-H length over the bond's length in ``system`` (minimum image in a box);
    a number: ``link`` itself.
    """
    q1_element, m1_element = system.elements[q1], system.elements[m1]
    if link == "scaled":
        try:
            cap, single = bond_length_A(q1_element, "H"), bond_length_A(q1_element, m1_element)
        except KeyError as err:
            raise PartitionError(f"{label}: {err.args[0]}; pass link=<g> (a number, e.g. 0.72) to partition()") from None
        length = float(np.linalg.norm(minimum_image(system.positions[m1] - system.positions[q1], system.cell)))
        if not single / BOND_LENGTH_TOLERANCE < length < single * BOND_LENGTH_TOLERANCE:
            raise PartitionError(f"{label} is {length:.3f} Å long in the structure (a {q1_element}-{m1_element} "
                                 f"single bond is {single:.3f} Å): no cap can be placed on it; check the bonds and "
                                 "positions, or pass link=<g> (a number, e.g. 0.72) to partition()")
        return cap / length
    try:
        g = float(link)
    except (TypeError, ValueError):
        raise PartitionError(f"link={link!r} is neither 'scaled' nor a number g in (0, 1)") from None
    if not 0.0 < g < 1.0:
        raise PartitionError(f"link={g} must lie in (0, 1): the link atom sits between Q1 and M1")
    return g
