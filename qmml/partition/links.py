"""Link atoms: hydrogen caps on cut covalent bonds.

A link atom L on the cut bond Q1-M1 sits at

    R_L = R_Q1 + g (R_M1 - R_Q1) = (1 - g) R_Q1 + g R_M1,

with g = d_eq(Q1-H) / d_eq(Q1-M1) from the table in `qmml.elements` (C-C: 1.090/1.526 = 0.714).
Because R_L is linear in R_Q1 and R_M1, the force on L goes to the real atoms by the same
weights: (1 - g) F_L to Q1 and g F_L to M1.  Both use `LinkAtom.weights`, so placement and
force projection cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..elements import bond_length_A
from ..errors import PartitionError


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


def link_scale_factor(q1_element: str, m1_element: str, link, label: str) -> float:
    """g for a cut bond: the ratio of tabulated bond lengths when ``link="scaled"``, else ``link`` itself."""
    if link == "scaled":
        try:
            return bond_length_A(q1_element, "H") / bond_length_A(q1_element, m1_element)
        except KeyError as err:
            raise PartitionError(f"{label}: {err.args[0]}; pass link=<g> (a number, e.g. 0.72) to partition()") from None
    try:
        g = float(link)
    except (TypeError, ValueError):
        raise PartitionError(f"link={link!r} is neither 'scaled' nor a number g in (0, 1)") from None
    if not 0.0 < g < 1.0:
        raise PartitionError(f"link={g} must lie in (0, 1): the link atom sits between Q1 and M1")
    return g
