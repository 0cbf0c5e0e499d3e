"""The integer fast path of a merge's field (`union` of inputs at the output's resolution, #30)
against the general path (the fast path switched off): both must give the same field."""
from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncalc.layers import field
from cnncalc.layers.field import RF, union

fields = st.builds(lambda size, start, grain, uniform, irregular, exact: (size, start, grain, uniform, irregular, exact),
                   st.integers(1, 60), st.integers(-40, 40), st.sampled_from([1, 2, 4]), st.booleans(), st.booleans(),
                   st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(fields, min_size=2, max_size=4), st.sampled_from([1, 2, 3, 8]))
def test_fast_union_equals_the_general_one(parts, jump) -> None:
    rfs = [RF(s, jump, st_, g, u, i, e) for s, st_, g, u, i, e in parts]
    got = union(rfs, [])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(field, "_union_whole", lambda full: None)
        want = union(rfs, [])
    assert got == want
    assert (got._size, got._start, got.exact, got.uniform, got.irregular, got.even) == \
        (want._size, want._start, want.exact, want.uniform, want.irregular, want.even)


def test_two_residual_branches_by_hand() -> None:
    # a 3-wide window centred at 4 and a 7-wide one centred at 5: ends 3..5 and 2..8 → 2..8,
    # size 7, centre 5; the wider input's jump and grain
    r = union([RF(3, 2, 4), RF(7, 2, 5, 2)], [])
    assert (r.size, r.start, r.jump, r.grain, r.exact) == (7, 5, 2, 2, True)
    # ends 0..2 and 5..5: hull 0..5, size 6, centre 2.5 (a union of unequal windows stays exact)
    r = union([RF(3, 1, 1), RF(1, 1, 5)], [])
    assert (r.size, r.start, r.exact) == (6, Fraction(5, 2), True)
