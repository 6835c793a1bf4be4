"""exp, tanh, logistic, expm1, log1p and the normal CDF that LLVM can vectorise inside fastbp's kernels.

Numba lowers ``np.exp``/``np.tanh`` to scalar libm calls (no SIMD math library in the
pip builds of llvmlite), about 4 ns and 10 ns an element here: on tanh and logistic
networks they cost more than the matrix products. The functions below are straight-line
float arithmetic plus two bit casts, which LLVM turns into SIMD code when they are
called from an element loop in a kernel compiled with ``error_model='numpy'``
(``_config.JIT``); their polynomials are evaluated with fused multiply-adds (``_fma``).
Measured here (AMD EPYC, AVX-512): about 1.3 ns (exp), 2.0 ns (tanh) and 1.5 ns
(logistic) an element in float64.

Accuracy (checked in tests/test_vmath.py): float64 within 1 ulp (exp), 2 ulp (tanh) and
3 ulp (logistic) of NumPy over the whole range (measured; the tests allow 2/4/4), so
float64 training still matches scikit-learn's to rounding; float32 within 2 ulp of the
exact result. The fused multiply-adds changed speed, not accuracy: without them the
maxima were 1/2/2 ulp in float64. Special values as NumPy: exp(nan) = nan,
exp(x > 709.78) = inf, exp(-inf) = 0; below 2.2e-308 the results are subnormal, as NumPy's
(within 1 of their units), and 0 below -745.13 (float32: -103.97).

Each function has a float64 and a float32 version, picked by Numba from the argument's
type: the float32 ones compute in float32 (twice the SIMD lanes), about 0.66 ns (exp)
and 0.93 ns (tanh) an element.

Method (after Cephes and the usual SIMD libraries):
- exp(x) = 2^k · e^r, k = round(x / ln 2), r = x − k ln 2 (Cody–Waite, two-part ln 2),
  |r| <= ln2/2; e^r by its Taylor polynomial to degree 13 (error < 2e-17); 2^k written
  into the exponent bits. k is rounded by adding 1.5·2^52 (its low bits are then k).
- tanh(x): for |x| < 0.625, Cephes' rational approximation x + x³ P(x²)/Q(x²); above,
  (1 − t)/(1 + t) with t = exp(−2|x|) <= 0.29 (no cancellation), sign copied from x;
  exp's argument clipped to [−40, 0] (|x| = 20: tanh is ±1 to rounding from 19.06), where
  it needs neither its special values nor its 2^k in two factors (``_exp_tail``): the
  same results bit for bit (a float32 NaN's sign aside), 13 % faster in float64 and
  18 % in float32 (AMD EPYC Zen 3, AVX2: 2.9 and 1.3 ns an element).
- logistic(x) = 1 / (1 + exp(−x)), scipy.special.expit's formula.

(Numba's cache of the kernels that inline these is dropped when any fastbp source
changes: ``_config.drop_stale_cache``.)
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import config
from numba.extending import intrinsic, overload

from ._config import JIT

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_ROUND = 6755399441055744.0  # 1.5 * 2^52
_EXP_MAX = 709.782712893384  # exp(x) overflows above
_EXP_MIN = -745.1332191019411  # exp(x) rounds to 0 below (subnormal below -708.40)

# 1/k!, k = 0..13
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7 = (
    1.0, 1.0, 0.5, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
)
_C8, _C9, _C10, _C11, _C12, _C13 = (
    1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600,
    1.0 / 6227020800,
)

# Cephes tanh.c, |x| < 0.625: tanh x = x + x z P(z) / Q(z), z = x²
_P0, _P1, _P2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_Q0, _Q1, _Q2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


def _bit_cast(src, dst, dst_ir):
    """An intrinsic reinterpreting a ``src`` scalar's bits as a ``dst`` (no conversion)."""

    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], dst_ir)

        return dst(src), codegen

    return cast


_bits = _bit_cast(types.float64, types.int64, ir.IntType(64))  # IEEE-754 bits of a float64
_from_bits = _bit_cast(types.int64, types.float64, ir.DoubleType())
_bits32 = _bit_cast(types.float32, types.int32, ir.IntType(32))
_from_bits32 = _bit_cast(types.int32, types.float32, ir.FloatType())


def _multiply_add(ty, ty_ir):
    """An intrinsic ``a * b + c`` as LLVM's ``fmuladd``: one fused multiply-add (a single
    rounding) where the CPU has FMA, a multiply and an add where it has not. The kernels
    are compiled without the ``contract`` fast-math flag, so only the polynomials here
    are fused (exp and tanh a quarter to a third faster)."""

    @intrinsic
    def fmuladd(typingctx, a, b, c):
        def codegen(context, builder, sig, args):
            f = builder.module.declare_intrinsic("llvm.fmuladd", [ty_ir],
                                                 ir.FunctionType(ty_ir, [ty_ir] * 3))
            return builder.call(f, args)

        return ty(ty, ty, ty), codegen

    return fmuladd


_fma = _multiply_add(types.float64, ir.DoubleType())
_fma32 = _multiply_add(types.float32, ir.FloatType())


# float32: the same method with float32 constants (ln 2 split for float32, 1.5 * 2^23,
# Taylor to degree 7, Cephes' tanhf polynomial below 0.625)
_f = np.float32
_LOG2E_F = _f(1.44269504088896341)
_LN2_HI_F = _f(0.693359375)
_LN2_LO_F = _f(-2.12194440e-4)
_ROUND_F = _f(12582912.0)
_EXP_MAX_F = _f(88.72283)
_EXP_MIN_F = _f(-103.97208)  # (subnormal below -87.33654)
_D0, _D1, _D2, _D3 = _f(1.0), _f(1.0), _f(0.5), _f(1.0 / 6)
_D4, _D5, _D6, _D7 = _f(1.0 / 24), _f(1.0 / 120), _f(1.0 / 720), _f(1.0 / 5040)
_T0, _T1, _T2 = _f(-5.70498872745e-3), _f(2.06390887954e-2), _f(-5.37397155531e-2)
_T3, _T4 = _f(1.33314422036e-1), _f(-3.33332819422e-1)
_ZERO_F, _ONE_F, _TWO_F, _INF_F, _SEAM_F = _f(0), _f(1), _f(2), _f(math.inf), _f(0.625)

# tanh's exp(-2|x|) is clipped to |x| <= 20 (float32: 10), where tanh already rounds to
# +-1 (from |x| > 19.06; float32 8.67): exp's argument then lies in [-40, 0] (the module
# docstring)
_TANH_CLIP = 40.0
_TANH_CLIP_F = _f(20.0)


@njit(inline="always", **JIT)
def _exp_parts(x):
    """(e^r, k) with e^x = e^r 2^k, for x in [_EXP_MIN, _EXP_MAX]: k = round(x / ln 2)
    (an int64), |r| <= ln2/2."""
    t = x * _LOG2E + _ROUND
    k = t - _ROUND  # round(x / ln 2), as a float
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _fma(_C13, r, _C12)
    p = _fma(p, r, _C11)
    p = _fma(p, r, _C10)
    p = _fma(p, r, _C9)
    p = _fma(p, r, _C8)
    p = _fma(p, r, _C7)
    p = _fma(p, r, _C6)
    p = _fma(p, r, _C5)
    p = _fma(p, r, _C4)
    p = _fma(p, r, _C3)
    p = _fma(p, r, _C2)
    p = _fma(p, r, _C1)
    p = _fma(p, r, _C0)
    return p, _bits(t) - _bits(_ROUND)  # k as an integer: the low bits of t


@njit(inline="always", **JIT)
def _exp(x):
    p, kb = _exp_parts(min(max(x, _EXP_MIN), _EXP_MAX))
    half = kb >> 1  # 2^k as two factors: k = 1024 would overflow one exponent field
    y = p * _from_bits((half + 1023) << 52) * _from_bits((kb - half + 1023) << 52)
    y = math.inf if x > _EXP_MAX else y
    y = 0.0 if x < _EXP_MIN else y
    return x if x != x else y  # nan stays nan


@njit(inline="always", **JIT)
def _exp_tail(x):
    """e^x for x in [-_TANH_CLIP, 0] (tanh's): 2^k in one factor, no special values,
    bit for bit ``_exp``'s there (a product by a power of two is exact)."""
    p, kb = _exp_parts(x)
    return p * _from_bits((kb + 1023) << 52)


@njit(inline="always", **JIT)
def _tanh(x):
    ax = abs(x)
    z = x * x
    q = _fma(_fma(_P0, z, _P1), z, _P2) / _fma(_fma(z + _Q0, z, _Q1), z, _Q2)
    small = _fma(x * z, q, x)
    t = _exp_tail(max(-2.0 * ax, -_TANH_CLIP))
    big = math.copysign((1.0 - t) / (1.0 + t), x)
    return big if ax >= 0.625 else small  # (nan: small, which is nan)


@njit(inline="always", **JIT)
def _logistic(x):
    return 1.0 / (1.0 + _exp(-x))


@njit(inline="always", **JIT)
def _exp32_parts(x):
    t = x * _LOG2E_F + _ROUND_F
    k = t - _ROUND_F
    r = (x - k * _LN2_HI_F) - k * _LN2_LO_F
    p = _fma32(_D7, r, _D6)
    p = _fma32(p, r, _D5)
    p = _fma32(p, r, _D4)
    p = _fma32(p, r, _D3)
    p = _fma32(p, r, _D2)
    p = _fma32(p, r, _D1)
    p = _fma32(p, r, _D0)
    return p, _bits32(t) - _bits32(_ROUND_F)


@njit(inline="always", **JIT)
def _exp32(x):
    p, kb = _exp32_parts(min(max(x, _EXP_MIN_F), _EXP_MAX_F))
    half = kb >> 1
    y = p * _from_bits32((half + 127) << 23) * _from_bits32((kb - half + 127) << 23)
    y = _INF_F if x > _EXP_MAX_F else y
    y = _ZERO_F if x < _EXP_MIN_F else y
    return x if x != x else y


@njit(inline="always", **JIT)
def _exp32_tail(x):
    p, kb = _exp32_parts(x)
    return p * _from_bits32((kb + 127) << 23)


@njit(inline="always", **JIT)
def _tanh32(x):
    ax = abs(x)
    z = x * x
    q = _fma32(_fma32(_fma32(_fma32(_T0, z, _T1), z, _T2), z, _T3), z, _T4)
    small = _fma32(q * z, x, x)
    t = _exp32_tail(max(-_TWO_F * ax, -_TANH_CLIP_F))
    big = (_ONE_F - t) / (_ONE_F + t)
    big = -big if x < _ZERO_F else big
    return big if ax >= _SEAM_F else small


@njit(inline="always", **JIT)
def _logistic32(x):
    return _ONE_F / (_ONE_F + _exp32(-x))



# expm1 and log1p, for elu and softplus: float64 only (float32 rounds the float64 result,
# within half an ulp of the exact one); each in two pieces, selected, not branched, so
# the loops vectorise. Taylor coefficients of e^x - 1 (1/k!, k = 1..13) below ln2/2;
# log1p(u) = [ln 2] + 2 atanh(s) with |s| <= 0.1716 (odd series to s^23).
_HALF_LN2 = 0.34657359027997264
_SQRT2M1 = 0.41421356237309503
_LN2 = 0.6931471805599453


@njit(inline="always", **JIT)
def _expm1(x):
    p = _fma(_C13, x, _C12)
    p = _fma(p, x, _C11)
    p = _fma(p, x, _C10)
    p = _fma(p, x, _C9)
    p = _fma(p, x, _C8)
    p = _fma(p, x, _C7)
    p = _fma(p, x, _C6)
    p = _fma(p, x, _C5)
    p = _fma(p, x, _C4)
    p = _fma(p, x, _C3)
    p = _fma(p, x, _C2)
    small = _fma(p * x, x, x)  # x + x² (1/2 + x/6 + ...)
    big = _exp(x) - 1.0
    return small if abs(x) < _HALF_LN2 else big


@njit(inline="always", **JIT)
def _log1p(x):
    """log(1 + x) for x in [0, 1] (what softplus needs: x = exp(-|z|))."""
    big = x > _SQRT2M1
    s = (x - 1.0) / (x + 3.0) if big else x / (2.0 + x)
    z = s * s
    p = _fma(z, 1.0 / 23, 1.0 / 21)
    p = _fma(p, z, 1.0 / 19)
    p = _fma(p, z, 1.0 / 17)
    p = _fma(p, z, 1.0 / 15)
    p = _fma(p, z, 1.0 / 13)
    p = _fma(p, z, 1.0 / 11)
    p = _fma(p, z, 1.0 / 9)
    p = _fma(p, z, 1.0 / 7)
    p = _fma(p, z, 1.0 / 5)
    p = _fma(p, z, 1.0 / 3)
    r = 2.0 * _fma(s * z, p, s)
    return r + _LN2 if big else r


@njit(inline="always", **JIT)
def _expm1_32(x):
    return np.float32(_expm1(np.float64(x)))


@njit(inline="always", **JIT)
def _log1p_32(x):
    return np.float32(_log1p(np.float64(x)))



# The normal distribution's Φ, for gelu: Φ(x) = erfc(-x / sqrt 2) / 2, erfc(z) for z >= 0
# as t e^(S(u) - z²) with t = 2 / (2 + z), u = 2t - 1 and S the Chebyshev series below
# (the form of Numerical Recipes' erfccheb), reflected for x > 0. (Measured here against
# 40-digit mpmath on [-37, 8]: within 4.1e-15; SciPy's ndtr within 2.2e-13.) Relative error of
# erfc below 5e-15 wherever it is a normal float64 (float32: 12 terms, in float32,
# within 5e-7). The coefficients are log(erfcx(z) / t)'s in u, interpolated at 25 (12)
# Chebyshev points (numpy's chebinterpolate of scipy's erfcx; tests/test_vmath.py
# computes them again); e^-z² is computed from x² split exactly (hi + lo, by a fused
# multiply-add), so that it keeps its accuracy in the tails. _onnx uses the series.
ERFC_CHEBYSHEV = (
    -0.6513268598908547,
    0.6419697923564904,
    0.019476473204185708,
    -0.00956151478680863,
    -0.0009465953444820733,
    0.00036683949785280785,
    4.2523324806755235e-05,
    -2.0278578112490945e-05,
    -1.6242900046945478e-06,
    1.303655835720129e-06,
    1.562644157273678e-08,
    -8.523809568933831e-08,
    6.529054286476926e-09,
    5.059343647496768e-09,
    -9.913644559187097e-10,
    -2.2736487943461407e-10,
    9.646743957736206e-11,
    2.394465990071051e-12,
    -6.886391464639792e-12,
    8.948019378875956e-13,
    3.1324154734868355e-13,
    -1.1333527023161162e-13,
    1.1412486553779912e-15,
    6.081349041036923e-15,
    -6.549459098258569e-16,
)
ERFC_CHEBYSHEV_32 = (  # the same at 12 points, for float32
    -0.6513268598908531,
    0.6419697923564833,
    0.01947647320418518,
    -0.00956151478669621,
    -0.0009465953447952147,
    0.000366839496958334,
    4.252333169322645e-05,
    -2.0278580506701466e-05,
    -1.624386471980414e-06,
    1.303883200206209e-06,
    1.6617806686269887e-08,
    -9.029743974764415e-08,
)
# (the kernels evaluate them in u's powers: cheb2poly's sum of |coefficients| is 1.46,
# so nothing cancels; the series' error stays within 4e-15 in float64)
_A = tuple(float(a) for a in np.polynomial.chebyshev.cheb2poly(ERFC_CHEBYSHEV))
_A32 = tuple(_f(a) for a in np.polynomial.chebyshev.cheb2poly(ERFC_CHEBYSHEV_32))
_INV_SQRT2_F = _f(0.7071067811865476)
_HALF_F = _f(0.5)
_INV_SQRT2 = 0.7071067811865476


@njit(inline="always", **JIT)
def _ndtr(x):
    z = abs(x) * _INV_SQRT2
    t = 2.0 / (2.0 + z)
    u = 2.0 * t - 1.0
    # the series in u's powers by Estrin's scheme (pairs, pairs of pairs, ...): a tree of
    # depth 5 instead of a chain of 24 multiply-adds, which kept the CPU waiting
    e0, e1 = _fma(_A[1], u, _A[0]), _fma(_A[3], u, _A[2])
    e2, e3 = _fma(_A[5], u, _A[4]), _fma(_A[7], u, _A[6])
    e4, e5 = _fma(_A[9], u, _A[8]), _fma(_A[11], u, _A[10])
    e6, e7 = _fma(_A[13], u, _A[12]), _fma(_A[15], u, _A[14])
    e8, e9 = _fma(_A[17], u, _A[16]), _fma(_A[19], u, _A[18])
    e10, e11 = _fma(_A[21], u, _A[20]), _fma(_A[23], u, _A[22])
    u2 = u * u
    f0, f1, f2 = _fma(e1, u2, e0), _fma(e3, u2, e2), _fma(e5, u2, e4)
    f3, f4, f5 = _fma(e7, u2, e6), _fma(e9, u2, e8), _fma(e11, u2, e10)
    u4 = u2 * u2
    g0, g1, g2 = _fma(f1, u4, f0), _fma(f3, u4, f2), _fma(f5, u4, f4)
    u8 = u4 * u4
    h0, h1 = _fma(g1, u8, g0), _fma(_A[24], u8, g2)
    series = _fma(h1, u8 * u8, h0)
    # e^-z² from x, not from the rounded z (relative error x² times z's): x² = hi + lo
    # exactly (a fused multiply-add gives lo), halved exactly
    hi = x * x
    lo = _fma(x, x, -hi)
    half = 0.5 * t * _exp(-0.5 * hi) * _exp(series - 0.5 * lo)  # Φ(-|x|)
    return half if x < 0 else 1.0 - half


@njit(inline="always", **JIT)
def _ndtr32(x):
    z = abs(x) * _INV_SQRT2_F
    t = _TWO_F / (_TWO_F + z)
    u = _TWO_F * t - _ONE_F
    e0, e1 = _fma32(_A32[1], u, _A32[0]), _fma32(_A32[3], u, _A32[2])
    e2, e3 = _fma32(_A32[5], u, _A32[4]), _fma32(_A32[7], u, _A32[6])
    e4, e5 = _fma32(_A32[9], u, _A32[8]), _fma32(_A32[11], u, _A32[10])
    u2 = u * u
    f0, f1, f2 = _fma32(e1, u2, e0), _fma32(e3, u2, e2), _fma32(e5, u2, e4)
    u4 = u2 * u2
    series = _fma32(f2, u4 * u4, _fma32(f1, u4, f0))
    hi = x * x
    lo = _fma32(x, x, -hi)
    half = _HALF_F * t * _exp32(-_HALF_F * hi) * _exp32(series - _HALF_F * lo)
    return half if x < _ZERO_F else _ONE_F - half


# The public names: plain Python (what runs under NUMBA_DISABLE_JIT, where the bit-cast
# intrinsics cannot), replaced in compiled code by the version for the argument's type.
def exp(x):
    return math.inf if x > _EXP_MAX else math.exp(x)


def tanh(x):
    return math.tanh(x)


def logistic(x):
    return 1.0 / (1.0 + exp(-x))


def expm1(x):
    return math.expm1(x)


def log1p(x):
    return math.log1p(x)


def ndtr(x):
    return 0.5 * math.erfc(-x * _INV_SQRT2)


def _by_precision(f64, f32):
    def typer(x):
        return (f32 if x == types.float32 else f64).py_func

    return typer


if not config.DISABLE_JIT:
    overload(exp, jit_options=JIT)(_by_precision(_exp, _exp32))
    overload(tanh, jit_options=JIT)(_by_precision(_tanh, _tanh32))
    overload(logistic, jit_options=JIT)(_by_precision(_logistic, _logistic32))
    overload(expm1, jit_options=JIT)(_by_precision(_expm1, _expm1_32))
    overload(log1p, jit_options=JIT)(_by_precision(_log1p, _log1p_32))
    # (inlined by Numba: too long for LLVM to inline, and a call stops vectorisation)
    overload(ndtr, jit_options=JIT, inline="always")(_by_precision(_ndtr, _ndtr32))
