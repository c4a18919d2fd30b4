"""Numbers as people read them: a score never looks certain (1.000 or 0.000) when it is not."""
from __future__ import annotations

import pytest

from skin_lesion.formatting import interval_text, score_text


@pytest.mark.parametrize("value, shown", [(0.99988, "> 0.999"), (1.0, "> 0.999"), (0.9994, "0.999"),
                                          (0.00012, "< 0.001"), (0.0, "< 0.001"), (0.0006, "0.001"),
                                          (0.5, "0.500")])
def test_scores_that_round_to_one_or_zero_are_bounded_not_rounded(value, shown):
    assert score_text(value) == shown


def test_other_precisions_and_intervals():
    assert score_text(0.996, digits=2) == "> 0.99" and score_text(0.004, digits=2) == "< 0.01"
    assert interval_text((0.8318, 1.0)) == "95 % CI 0.83–1.00"
    assert interval_text((-0.0591, 0.0132), 3) == "95 % CI -0.059 to 0.013"  # not "-0.059–0.013"
    assert interval_text((-0.0001, 0.0132), 3) == "95 % CI -0.000 to 0.013"
