"""fastbp._vmath's exp / tanh / logistic against NumPy: float64 across its range, and the
float32 versions (picked by the argument's type) against the exact (float64) result."""

import numpy as np
import pytest
from numba import njit

from fastbp import _vmath as vm
from fastbp._config import JIT


# not cached: Numba's cache key is this file's content, blind to edits of _vmath.py
@njit(**dict(JIT, cache=False))
def _apply(out, x, which):
    for i in range(x.size):
        if which == 0:
            out[i] = vm.exp(x[i])
        elif which == 1:
            out[i] = vm.tanh(x[i])
        else:
            out[i] = vm.logistic(x[i])


def ulps(got, want, dtype=np.float64):
    """Distance in units of the last place of ``dtype`` (finite values)."""
    spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    return np.abs(got - want) / np.where(spacing > 0, spacing, np.finfo(dtype).tiny)


def sample(rng):
    return np.concatenate([
        rng.uniform(-750, 750, 100_000),
        rng.uniform(-1, 1, 100_000),
        rng.uniform(-1e-6, 1e-6, 10_000),
        np.linspace(0.6, 0.65, 10_001), -np.linspace(0.6, 0.65, 10_001),  # tanh's seam
        [0.0, -0.0, 709.78, -708.39, 1e-300, -1e-300],
        np.linspace(-746, -708, 10_001),  # exp's subnormal results
        [-745.1332191019411, -745.1332191019412, -745.13321910194],
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
    # subnormal results (exp below -708.4) as NumPy's, within one of their units
    sub = ~normal & np.isfinite(want)
    assert sub.sum() > 1000 or which != 0
    assert np.all(np.abs(out[sub] - want[sub]) <= np.finfo(float).smallest_subnormal)


@pytest.mark.parametrize("which", [0, 1, 2])
def test_special_values(which):
    x = np.array([np.nan, np.inf, -np.inf, 710.0, -800.0, 0.0])
    out = np.empty_like(x)
    _apply(out, x, which)
    with np.errstate(over="ignore"):
        want = {0: np.exp, 1: np.tanh, 2: lambda v: 1.0 / (1.0 + np.exp(-v))}[which](x)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("which,ref,max_ulp", [(0, np.exp, 2), (1, np.tanh, 2), (2, None, 3)])
def test_float32_versions(which, ref, max_ulp):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-90, 90, 100_000), rng.uniform(-1, 1, 100_000),
                        np.linspace(0.6, 0.65, 10_001), [0.0, 88.7, -87.3],
                        np.linspace(-105, -87, 10_001)]).astype(np.float32)
    out = np.empty_like(x)
    _apply(out, x, which)
    assert out.dtype == np.float32
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore", under="ignore"):
        want = ref(x64) if ref is not None else 1.0 / (1.0 + np.exp(-x64))
    tiny, big = np.finfo(np.float32).tiny, np.finfo(np.float32).max
    normal = (np.abs(want) >= tiny) & (np.abs(want) <= big)
    assert ulps(out[normal].astype(np.float64), want[normal], np.float32).max() <= max_ulp
    # exp's subnormal results (below -87.34) as the exact one's, within one of their units
    # (logistic's, 1 / (1 + exp(-x)), are 0: exp(-x) overflows float32 first)
    sub = (np.abs(want) < tiny) & (which == 0)
    step = np.finfo(np.float32).smallest_subnormal
    assert np.all(np.abs(out[sub] - want[sub].astype(np.float32)) <= step)
