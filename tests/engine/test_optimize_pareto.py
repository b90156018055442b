"""Pareto dominance, exact hypervolume (hand-computed cases) and the front-improvement loss."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from huntflow.engine.optimize.pareto import (
    chebyshev,
    dominates,
    front_loss,
    hypervolume,
    nondominated_mask,
    pareto_ranks,
)


def test_dominance_needs_one_strict_improvement():
    assert dominates([1, 2], [1, 3])
    assert not dominates([1, 2], [1, 2])
    assert not dominates([0, 3], [1, 2])


def test_nondominated_mask_and_ranks():
    pts = np.array([[1, 4], [2, 2], [4, 1], [3, 3], [4, 4]])
    assert nondominated_mask(pts).tolist() == [True, True, True, False, False]
    assert pareto_ranks(pts).tolist() == [0, 0, 0, 1, 2]


@pytest.mark.parametrize(
    "points, ref, expected",
    [
        ([[1.0, 1.0]], [2.0, 2.0], 1.0),
        ([[0.0, 1.0], [1.0, 0.0]], [2.0, 2.0], 3.0),  # 2*1 + 1*1
        ([[1.0, 4.0], [2.0, 2.0], [4.0, 1.0]], [5.0, 5.0], 4.0 + 6.0 + 1.0),
        ([[1.0, 1.0], [1.5, 1.5]], [2.0, 2.0], 1.0),  # dominated point adds nothing
        ([[1.0, 1.0], [3.0, 0.5]], [2.0, 2.0], 1.0),  # a point beyond the reference adds nothing
        ([], [2.0, 2.0], 0.0),
        ([[2.0, 1.0]], [2.0, 2.0], 0.0),  # on the reference boundary: zero volume
    ],
)
def test_hypervolume_2d_hand_computed(points, ref, expected):
    assert hypervolume(np.array(points), np.array(ref)) == pytest.approx(expected)


def test_hypervolume_3d_hand_computed():
    # two boxes of volume 1*2*2=4 ([1,0,0]) and 2*1*2... union by inclusion-exclusion
    pts = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ref = np.array([2.0, 2.0, 2.0])
    a = 1 * 2 * 2
    b = 2 * 1 * 2
    both = 1 * 1 * 2
    assert hypervolume(pts, ref) == pytest.approx(a + b - both)


def test_hypervolume_3d_matches_a_fine_grid_count():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(6, 3))
    ref = np.ones(3)
    n = 60
    grid = (np.arange(n) + 0.5) / n
    cells = np.array(list(itertools.product(grid, grid, grid)))
    covered = np.zeros(len(cells), dtype=bool)
    for p in pts:
        covered |= np.all(cells >= p, axis=1)
    assert hypervolume(pts, ref) == pytest.approx(covered.mean(), abs=0.02)


def test_hypervolume_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        hypervolume(np.ones((2, 3)), np.ones(2))


def test_front_loss_rewards_hypervolume_improvement_and_penalizes_dominated_points():
    front = np.array([[0.2, 0.6], [0.6, 0.2]])
    ref, ideal = np.ones(2), np.zeros(2)
    improving = front_loss(np.array([0.3, 0.3]), front, ref, ideal)
    # new point adds the rectangle [0.3,0.6]x[0.3,0.6] = 0.09
    assert improving == pytest.approx(-0.09)
    dominated = front_loss(np.array([0.7, 0.7]), front, ref, ideal)
    assert dominated == pytest.approx(0.1)  # must move 0.1 in each objective
    assert front_loss(np.array([0.5, 0.5]), np.zeros((0, 2)), ref, ideal) == pytest.approx(-0.25)


def test_chebyshev_is_weighted_max_plus_augmentation():
    v = chebyshev(np.array([2.0, 3.0]), np.array([0.5, 0.5]), np.array([0.0, 1.0]), np.array([4.0, 4.0]))
    assert v == pytest.approx(max(0.25, 0.25) + 0.05 * 0.5)


def _mask_row_by_row(pts: np.ndarray) -> np.ndarray:
    """The definition, one row at a time (what nondominated_mask computed before its fast paths)."""
    out = np.ones(pts.shape[0], dtype=bool)
    for i in range(pts.shape[0]):
        out[i] = not np.any(np.all(pts <= pts[i], axis=1) & np.any(pts < pts[i], axis=1))
    return out


@pytest.mark.parametrize("d", [1, 2, 3])
def test_nondominated_mask_matches_the_definition_with_ties_nans_and_infinities(d):
    rng = np.random.default_rng(d)
    for n in (0, 1, 2, 7, 300, 600):
        pts = rng.integers(0, 5, size=(n, d)).astype(float)  # many ties and duplicates
        if n > 2:
            pts[rng.integers(0, n, size=max(1, n // 10)), rng.integers(0, d)] = np.nan
            pts[0, 0], pts[1, -1] = np.inf, -np.inf
        assert nondominated_mask(pts).tolist() == _mask_row_by_row(pts).tolist(), (d, n)
    assert nondominated_mask(np.full((4, d), np.nan)).all()
