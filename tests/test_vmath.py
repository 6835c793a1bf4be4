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
        elif which == 2:
            out[i] = vm.logistic(x[i])
        elif which == 3:
            out[i] = vm.ndtr(x[i])
        elif which == 4:
            out[i] = vm.expm1(x[i])
        else:
            out[i] = vm.log1p(x[i])


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
        np.linspace(18, 22, 10_001), -np.linspace(18, 22, 10_001),  # and its clip (20)
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
                        np.linspace(0.6, 0.65, 10_001), np.linspace(8, 12, 10_001),
                        -np.linspace(8, 12, 10_001), [0.0, 88.7, -87.3],
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


def test_erfc_chebyshev_coefficients_are_the_interpolation():
    """``vm.ERFC_CHEBYSHEV`` are log(erfcx(z) / t)'s coefficients in u = 2t - 1,
    t = 2 / (2 + z), interpolated at 25 Chebyshev points (their recipe, run again)."""
    from numpy.polynomial import chebyshev
    from scipy.special import erfcx

    def f(u):
        t = (np.clip(u, -1 + 1e-300, 1) + 1) / 2
        return np.log(erfcx(2 / t - 2) / t)

    for coef in (vm.ERFC_CHEBYSHEV, vm.ERFC_CHEBYSHEV_32):
        want = chebyshev.chebinterpolate(f, len(coef) - 1)
        np.testing.assert_allclose(coef, want, rtol=1e-9, atol=1e-17)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ndtr_expm1_log1p(dtype):
    """Φ, expm1 and log1p (gelu, elu, softplus) against SciPy / NumPy: relative error in
    float64 a few ulp. Φ's is checked to 3e-13 (float32: 1e-6), SciPy's own error: against
    40-digit mpmath, ndtr on [-37, 8] was within 4.1e-15 and SciPy's within 2.2e-13."""
    from scipy.special import ndtr

    x = np.concatenate([np.linspace(-38, 38, 200001), -np.logspace(-12, 1.5, 500),
                        np.logspace(-12, 1.5, 500)]).astype(dtype)
    u = np.concatenate([np.linspace(0, 1, 100001), np.logspace(-300, 0, 500)]).astype(dtype)
    out = np.empty_like(x)
    _apply(out, x, 3)
    want = ndtr(x.astype(np.float64))
    ok = want > np.finfo(dtype).tiny * 1e3  # (e^-z² is a normal number there)
    rtol = {np.float64: 3e-13, np.float32: 1e-6}[dtype]
    np.testing.assert_allclose(out[ok], want[ok].astype(dtype), rtol=rtol)
    small = x[x < 0.4]
    out = np.empty_like(small)
    _apply(out, small, 4)
    np.testing.assert_allclose(out, np.expm1(small.astype(np.float64)).astype(dtype),
                               rtol=4 * np.finfo(dtype).eps)
    out = np.empty_like(u)
    _apply(out, u, 5)
    np.testing.assert_allclose(out, np.log1p(u.astype(np.float64)).astype(dtype),
                               rtol=4 * np.finfo(dtype).eps)
