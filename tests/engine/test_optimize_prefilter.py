"""The prefilter's k-NN vote picks the neighbours a stable sort of the distances puts first (ties
to the earliest told point), found without sorting the whole history."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from huntflow.engine.optimize import prefilter as pf


def _sorted_vote(train_x, train_y, query, k):
    """The vote as a full stable sort gives it (what p_feasible computed before)."""
    k = min(k, train_x.shape[0])
    d2 = ((query[:, None, :] - train_x[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return (train_y[nearest].sum(axis=1) + 0.5) / (k + 1)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), q=st.integers(1, 4), k=st.integers(1, 12), dim=st.integers(1, 3),
       grid=st.sampled_from([2, 3, 1000]), seed=st.integers(0, 2**31 - 1))
def test_the_vote_is_the_stable_sorts_first_k_ties_included(n, q, k, dim, grid, seed):
    rng = np.random.default_rng(seed)
    train_x = rng.integers(0, grid, size=(n, dim)) / grid  # a coarse grid: many equal distances
    train_y = rng.random(n) < 0.5
    query = rng.integers(0, grid, size=(q, dim)) / grid
    assert np.array_equal(pf.p_feasible(train_x, train_y, query, k), _sorted_vote(train_x, train_y, query, k))


def test_ties_go_to_the_earliest_told_point():
    train_x = np.array([[0.0], [1.0], [1.0], [1.0]])  # three at distance 1 from the query
    query = np.array([[0.0]])
    first_feasible = np.array([False, True, False, False])
    last_feasible = np.array([False, False, False, True])
    assert pf.p_feasible(train_x, first_feasible, query, k=2)[0] == (1 + 0.5) / 3  # point 1 is taken
    assert pf.p_feasible(train_x, last_feasible, query, k=2)[0] == (0 + 0.5) / 3  # point 3 is not
