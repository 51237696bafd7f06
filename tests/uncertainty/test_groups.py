"""cfgp.uncertainty.groups: the one rule for whether a group is over-represented among the outliers."""

import pytest

from cfgp.uncertainty.groups import OVER_REPRESENTED, UNDER_REPRESENTED, representation


@pytest.mark.parametrize("share_out, share_all, expected", [
    (0.30, 0.18, "over"),      # 1.67× its share
    (0.18, 0.18, "about"),
    (0.3125, 0.25, "about"),   # exactly 1.25×: not over
    (0.3126, 0.25, "over"),
    (0.2, 0.25, "about"),      # exactly 0.8×: not under
    (0.1999, 0.25, "under"),
    (0.02, 0.18, "under"),     # entropy's picks: phosphates 1.9 % against 17.9 % of the pool
    (0.0, 0.0, "about"),
])
def test_representation(share_out, share_all, expected):
    assert representation(share_out, share_all) == expected


def test_the_factors_bracket_one():
    assert UNDER_REPRESENTED < 1 < OVER_REPRESENTED
