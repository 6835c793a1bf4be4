"""fastbp._vmath's exp / tanh / logistic against NumPy, across the float64 range."""

import numpy as np
import pytest
from numba import njit

from fastbp import _vmath as vm
from fastbp._config import JIT


@njit(**JIT)
def _apply(out, x, which):
    for i in range(x.size):
        if which == 0:
            out[i] = vm.exp(x[i])
        elif which == 1:
            out[i] = vm.tanh(x[i])
        else:
            out[i] = vm.logistic(x[i])


def ulps(got, want):
    """Distance in units of the last place (finite values)."""
    spacing = np.spacing(np.abs(want).astype(np.float64))
    return np.abs(got - want) / np.where(spacing > 0, spacing, np.finfo(float).tiny)


def sample(rng):
    return np.concatenate([
        rng.uniform(-750, 750, 100_000),
        rng.uniform(-1, 1, 100_000),
        rng.uniform(-1e-6, 1e-6, 10_000),
        np.linspace(0.6, 0.65, 10_001), -np.linspace(0.6, 0.65, 10_001),  # tanh's seam
        [0.0, -0.0, 709.78, -708.39, 1e-300, -1e-300],
    ])


@pytest.mark.parametrize("which,ref,max_ulp", [(0, np.exp, 2), (1, np.tanh, 4), (2, None, 4)])
def test_accuracy_against_numpy(which, ref, max_ulp):
    x = sample(np.random.default_rng(0))
    out = np.empty_like(x)
    _apply(out, x, which)
    with np.errstate(over="ignore", under="ignore"):
        want = ref(x) if ref is not None else 1.0 / (1.0 + np.exp(-x))
    normal = np.isfinite(want) & (np.abs(want) >= np.finfo(float).tiny)
    assert ulps(out[normal], want[normal]).max() <= max_ulp
    # flushed subnormals: exp below 2.2e-308 is 0 here
    assert np.all(out[~normal & np.isfinite(want)] <= np.finfo(float).tiny)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_special_values(which):
    x = np.array([np.nan, np.inf, -np.inf, 710.0, -800.0, 0.0])
    out = np.empty_like(x)
    _apply(out, x, which)
    with np.errstate(over="ignore"):
        want = {0: np.exp, 1: np.tanh, 2: lambda v: 1.0 / (1.0 + np.exp(-v))}[which](x)
    np.testing.assert_array_equal(out, want)
