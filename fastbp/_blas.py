"""``gemm`` on views: the BLAS product ``C = op(A) op(B) + beta C`` for 2-D views whose
rows are contiguous but whose row stride may be wider than their width, such as a block
of columns ``W[:, lo:hi]`` of a C-ordered matrix.

Numba's ``np.dot`` copies such views first (and cannot accumulate, ``beta``); the
two-thread epoch (``_threads.py``) multiplies column blocks of the weights and activations
in place every minibatch. This calls the same BLAS routine ``np.dot`` does (SciPy's
``dgemm``/``sgemm``, through Numba's helper ``numba_xxgemm``), passing each view's row
stride as its leading dimension. BLAS is column-major, so the row-major product
C = op(A) op(B) is computed as Cᵀ = op(B)ᵀ op(A)ᵀ.

Where C or one operand is a vector (a single row or column) and beta is 0, ``gemm`` calls
what Numba's (and NumPy's) ``np.dot`` calls there: ``gemv``, or ``dot`` for a 1x1
result, not ``gemm``. BLAS's results differ between them in the last bits, and this
keeps the kernels' products the ones ``np.dot`` computes on whole arrays (scikit-learn's
``@``), whatever the view.

``gemm`` checks the shapes and strides it is given (a wrong leading dimension would make
BLAS read or write out of bounds) and raises ``ValueError`` on a mismatch.
"""

import numba.np.linalg  # noqa: F401  (registers the numba_xxgemm symbol)
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from ._config import JIT

_char = ir.IntType(8)
_void_p = ir.IntType(8).as_pointer()
_intp = ir.IntType(64)


@intrinsic
def _xxgemm(typingctx, C, A, B, trans_a, trans_b, m, n, k, lda, ldb, ldc, beta):
    """Row-major ``C[m, n] = op(A)[m, k] op(B)[k, n] + beta C`` with leading dimensions
    (row strides, in elements) lda, ldb, ldc. No checks: see ``gemm``."""
    if not (C.dtype == A.dtype == B.dtype and C.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        C_, A_, B_, ta, tb, m_, n_, k_, lda_, ldb_, ldc_, beta_ = args
        fnty = ir.FunctionType(ir.IntType(32), [
            _char, _char, _char, _intp, _intp, _intp, _void_p, _void_p, _intp,
            _void_p, _intp, _void_p, _void_p, _intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        dt = sig.args[0].dtype
        alpha = cgutils.alloca_once_value(builder, context.get_constant(dt, 1.0))
        beta_slot = cgutils.alloca_once_value(
            builder, context.cast(builder, beta_, sig.args[11], dt))
        kind = ir.Constant(_char, ord("d" if dt == types.float64 else "s"))

        def data(i):
            ary = context.make_array(sig.args[i])(context, builder, args[i])
            return builder.bitcast(ary.data, _void_p)

        def op(flag):
            yes = builder.icmp_signed("!=", flag, ir.Constant(flag.type, 0))
            return builder.select(yes, ir.Constant(_char, ord("t")), ir.Constant(_char, ord("n")))

        # column-major view of the same memory: Cᵀ[n, m] = op(B)ᵀ op(A)ᵀ
        builder.call(fn, [kind, op(tb), op(ta), n_, m_, k_, builder.bitcast(alpha, _void_p),
                          data(2), ldb_, data(1), lda_, builder.bitcast(beta_slot, _void_p),
                          data(0), ldc_])
        return context.get_dummy_value()

    sig = types.void(C, A, B, types.int64, types.int64, types.int64, types.int64,
                     types.int64, types.int64, types.int64, types.int64, types.float64)
    return sig, codegen


@intrinsic
def _xxgemv(typingctx, y, a, x, trans, m, n, lda):
    """Column-major ``y = op(M) x`` for the (m, n) matrix M at ``a`` (leading dimension
    lda; op: transposed when ``trans``), x and y contiguous: Numba's ``numba_xxgemv``."""
    if not (y.dtype == a.dtype == x.dtype and y.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        y_, a_, x_, tr, m_, n_, lda_ = args
        fnty = ir.FunctionType(ir.IntType(32), [
            _char, _char, _intp, _intp, _void_p, _void_p, _intp, _void_p, _void_p, _void_p])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemv")
        dt = sig.args[0].dtype
        alpha = cgutils.alloca_once_value(builder, context.get_constant(dt, 1.0))
        beta = cgutils.alloca_once_value(builder, context.get_constant(dt, 0.0))
        kind = ir.Constant(_char, ord("d" if dt == types.float64 else "s"))
        yes = builder.icmp_signed("!=", tr, ir.Constant(tr.type, 0))
        op = builder.select(yes, ir.Constant(_char, ord("t")), ir.Constant(_char, ord("n")))

        def data(i):
            ary = context.make_array(sig.args[i])(context, builder, args[i])
            return builder.bitcast(ary.data, _void_p)

        builder.call(fn, [kind, op, m_, n_, builder.bitcast(alpha, _void_p), data(1), lda_,
                          data(2), builder.bitcast(beta, _void_p), data(0)])
        return context.get_dummy_value()

    sig = types.void(y, a, x, types.int64, types.int64, types.int64, types.int64)
    return sig, codegen


@intrinsic
def _xxdot(typingctx, out, a, b, n):
    """``out[0, 0] = Σ a b`` over n contiguous elements: Numba's ``numba_xxdot``."""
    if not (out.dtype == a.dtype == b.dtype and out.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [_char, _char, _intp, _void_p, _void_p,
                                                _void_p])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxdot")
        dt = sig.args[0].dtype
        kind = ir.Constant(_char, ord("d" if dt == types.float64 else "s"))

        def data(i):
            ary = context.make_array(sig.args[i])(context, builder, args[i])
            return builder.bitcast(ary.data, _void_p)

        builder.call(fn, [kind, ir.Constant(_char, 0), args[3], data(1), data(2), data(0)])
        return context.get_dummy_value()

    return types.void(out, a, b, types.int64), codegen


@njit(**JIT)
def _leading_dim(X):
    """Row stride of a 2-D view in elements; its rows must be contiguous."""
    isz = X.itemsize
    if (X.shape[1] > 1 and X.strides[1] != isz) or X.strides[0] < 0:
        raise ValueError("gemm: rows must be contiguous, in increasing order")
    ld = X.strides[0] // isz
    return max(ld, X.shape[1], 1)


def retyped(arr, new):
    """The typing of an intrinsic that returns the array ``arr`` itself as type ``new``
    (an array type of the same dtype and ndim: Numba's data model of an array does not
    depend on its layout or read-only flag): its signature and codegen."""

    def codegen(context, builder, sig, args):
        return impl_ret_borrowed(context, builder, new, args[0])

    return new(arr), codegen


@intrinsic
def _as_view(typingctx, arr):
    """The 2-D array ``arr`` retyped as a writable view of any layout: the same array (its
    data model does not depend on the layout or the read-only flag), for ``_gemm``, which
    writes only C. One type for every operand: ``_gemm`` compiles once per dtype, where a
    version for each combination of layouts and read-only inputs (7 per fit) cost about
    1 s of cold compile each."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    return retyped(arr, types.Array(arr.dtype, 2, "A"))


@njit(inline="always", **JIT)
def gemm(C, A, B, trans_a, trans_b, beta):
    """``C = op(A) op(B) + beta C`` (op(X) = Xᵀ when its flag is set) on row-major views."""
    _gemm(_as_view(C), _as_view(A), _as_view(B), np.int64(1 if trans_a else 0),
          np.int64(1 if trans_b else 0), float(beta))


@njit(**JIT)
def _gemm(C, A, B, trans_a, trans_b, beta):
    """``gemm`` on views of one type (``_as_view``); the flags are 0 or 1."""
    m, n = C.shape
    am, ak = (A.shape[1], A.shape[0]) if trans_a else (A.shape[0], A.shape[1])
    bk, bn = (B.shape[1], B.shape[0]) if trans_b else (B.shape[0], B.shape[1])
    if am != m or bn != n or ak != bk:
        raise ValueError("gemm: shapes do not match")
    if m == 0 or n == 0:
        return
    if ak == 0:  # an empty sum: BLAS would leave C as is when beta = 1
        for i in range(m):
            for j in range(n):
                C[i, j] = C[i, j] * beta if beta != 0.0 else 0.0
        return
    lda, ldb, ldc = _leading_dim(A), _leading_dim(B), _leading_dim(C)
    if beta == 0.0 and (m == 1 or n == 1):
        # a vector (row-major views): as np.dot, whose choices these mirror
        a_vec = m == 1 and (not trans_a or lda == 1)  # A's k elements contiguous
        b_vec = n == 1 and (trans_b or ldb == 1)  # B's k elements contiguous
        if m == 1 and n == 1 and a_vec and b_vec:
            _xxdot(C, A, B, ak)
            return
        if n == 1 and m > 1 and b_vec and ldc == 1:  # C = op(A) b
            if trans_a:
                _xxgemv(C, A, B, 0, m, ak, lda)
            else:
                _xxgemv(C, A, B, 1, ak, m, lda)
            return
        if m == 1 and n > 1 and a_vec:  # Cᵀ = op(B)ᵀ a
            if trans_b:
                _xxgemv(C, B, A, 1, ak, n, ldb)
            else:
                _xxgemv(C, B, A, 0, n, ak, ldb)
            return
    _xxgemm(C, A, B, trans_a, trans_b, m, n, ak, lda, ldb, ldc, beta)
