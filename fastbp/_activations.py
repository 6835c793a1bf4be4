"""The activations: one registry, each entry a forward and a backward scalar function.

``f(z)`` is the activation; ``back(d, a)`` turns ∂J/∂A into ∂J/∂Z from the layer's
stored output a = f(z), so Z is never kept (docs/backprop.md, eq. 3). The kernels apply
them to a block of columns of a C-ordered (N, H) array with ``activation_forward_cols``
and ``activation_backward_cols``, which pick the entry by its integer code.

Adding an activation (the recipe; ``_kernels``' docstring has those for losses and
optimizers):

1. write ``name(z)`` and ``name_back(d, a)`` below, as straight-line float code that
   keeps the argument's dtype (constants through ``typed``; exp, tanh, logistic through
   ``_vmath``, which vectorises); if f' cannot be written from a, it needs Z kept,
   which the kernels do not do yet;
2. give it the next code and a row in ``ACTIVATIONS`` (its Glorot factor, whether
   scikit-learn has it, where it may be used);
3. add its loop to ``activation_forward_cols`` and ``activation_backward_cols`` (a
   branch each, calling the two functions);
4. its NumPy reference in ``tests/reference.py`` (``activation``,
   ``derivative_from_output``) and its name in the parametrised kernel tests;
5. its ONNX form (``onnx`` in the entry: a function ``(g, z) -> name`` that adds the
   nodes computing f(z) to the graph ``g``, ``fastbp._onnx``; ``tests/test_onnx.py``
   checks that every entry has one and compares it with ``predict`` in onnxruntime).

Softmax is the one activation that is not element-wise: its forward is a branch of its
own, and it has no backward here (it is only an output, whose residual the loss head
computes, ``_losses``).
"""

from typing import NamedTuple

from numba import njit
from numba.extending import overload

from . import _vmath as vm
from ._config import JIT


def typed(x, v):
    """The constant ``v`` in ``x``'s float type: in a kernel a float32 stays float32 (a
    bare ``1 - a`` would promote it to float64, as NumPy's scalar rules do)."""
    return type(x)(v)


@overload(typed, jit_options=JIT)
def _ov_typed(x, v):
    ty = x
    return lambda x, v: ty(v)


class Activation(NamedTuple):
    """A registry entry.

    code : int
        What the kernels dispatch on.
    glorot : float
        The Glorot-uniform factor of the weights' initial bound, sqrt(glorot / (fan_in +
        fan_out)): scikit-learn's 6, and 2 for logistic networks (every layer).
    sklearn : bool
        scikit-learn's MLPs have it as a hidden activation.
    hidden, output : bool
        May be a hidden layer's; is some output head's.
    onnx : callable
        Its ONNX form: ``onnx(g, z)`` adds the nodes computing f(z) for the tensor named
        ``z`` to the graph ``g`` (``g.node(op, inputs, **attributes)`` returns the output's
        name; ``g.const(name, array)`` an initializer's) and returns the result's name.
        Plain Python: it needs no ``onnx`` import (``fastbp._onnx`` builds the model).
    """

    code: int
    glorot: float
    sklearn: bool
    hidden: bool
    output: bool
    onnx: object = None


# The ONNX forms (opset >= 13): one operator each, for today's entries. Softmax is over
# the classes (axis 1 of the (N, K) output).

def _onnx_identity(g, z):
    return z


def _onnx_logistic(g, z):
    return g.node("Sigmoid", [z])


def _onnx_tanh(g, z):
    return g.node("Tanh", [z])


def _onnx_relu(g, z):
    return g.node("Relu", [z])


def _onnx_softmax(g, z):
    return g.node("Softmax", [z], axis=1)


def _onnx_exp(g, z):
    return g.node("Exp", [z])


IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5

ACTIVATIONS = {
    "identity": Activation(IDENTITY, 6.0, True, True, True, _onnx_identity),
    "logistic": Activation(LOGISTIC, 2.0, True, True, True, _onnx_logistic),
    "tanh": Activation(TANH, 6.0, True, True, False, _onnx_tanh),
    "relu": Activation(RELU, 6.0, True, True, False, _onnx_relu),
    "softmax": Activation(SOFTMAX, 6.0, False, False, True, _onnx_softmax),
    "exp": Activation(EXP, 6.0, False, False, True, _onnx_exp),
}

HIDDEN = tuple(name for name, a in ACTIVATIONS.items() if a.hidden)


def code(name):
    """The kernels' code of the activation ``name``."""
    return ACTIVATIONS[name].code


# ---------------------------------------------------------------------------------------
# The entries' scalar functions: forward f(z), backward (d, a) -> d f'(z) from a = f(z).
# Each backward keeps scikit-learn's operation order (its inplace_*_derivative). Inlined
# into the loops below by Numba (inline="always"): a function of its own per entry cost
# compile time in every kernel that calls it, at no gain in speed.
# ---------------------------------------------------------------------------------------

SCALAR = dict(inline="always", **JIT)


@njit(**SCALAR)
def identity(z):
    return z


@njit(**SCALAR)
def logistic(z):
    return vm.logistic(z)


@njit(**SCALAR)
def logistic_back(d, a):  # f' = a (1 - a): delta *= a; delta *= 1 - a
    return (d * a) * (typed(a, 1.0) - a)


@njit(**SCALAR)
def tanh(z):
    return vm.tanh(z)


@njit(**SCALAR)
def tanh_back(d, a):  # f' = 1 - a²
    return d * (typed(a, 1.0) - a * a)


@njit(**SCALAR)
def relu(z):
    # `z < 0` keeps NaN as NaN (a diverging fit must not turn silent)
    return typed(z, 0.0) if z < 0 else z


@njit(**SCALAR)
def relu_back(d, a):  # f' = 1[a > 0]
    return typed(d, 0.0) if a == 0 else d


@njit(**SCALAR)
def exp(z):
    return vm.exp(z)


# ---------------------------------------------------------------------------------------
# The kernels' entry points: a block of columns, dispatched on the code once a row. One
# inner loop per entry, each calling its scalar function: LLVM vectorises each (a loop
# that dispatched on the code per element did not, 8x slower). Rows are walked through views that start
# at column 0: loops from 0 vectorise, while Numba's indexing ``Z[i, j]`` for j from a
# runtime ``lo`` keeps a negative-index check per element that stops it.
# ---------------------------------------------------------------------------------------


@njit(**JIT)
def _softmax(Z, lo, hi, b):
    """``exp(z - max z) / Σ exp(z - max z)`` row by row, after the bias."""
    n = Z.shape[0]
    m = hi - lo
    for i in range(n):
        z = Z[i, lo:hi]
        for j in range(m):
            z[j] += b[j]
        zmax = z[0]
        for j in range(1, m):
            if z[j] > zmax:
                zmax = z[j]
        for j in range(m):
            z[j] -= zmax
    if lo == 0 and hi == Z.shape[1]:
        flat = Z.reshape(-1)  # rows are short (K classes): exp as one long SIMD loop
        for k in range(flat.size):
            flat[k] = vm.exp(flat[k])
    else:
        for i in range(n):
            z = Z[i, lo:hi]
            for j in range(m):
                z[j] = vm.exp(z[j])
    for i in range(n):
        z = Z[i, lo:hi]
        s = typed(z[0], 0.0)
        for j in range(m):
            s += z[j]
        for j in range(m):
            z[j] /= s


@njit(**JIT)
def activation_forward_cols(Z, lo, hi, b, code):
    """Eq. (1), second half, on columns ``[lo, hi)`` of a C-ordered Z:
    ``Z[:, lo:hi] <- f(Z[:, lo:hi] + b)`` in place.

    Z : (N, H) the product A_prev W on entry (those columns), the activation on exit.
    b : (hi - lo,) the bias.  code : the activation's code.
    """
    if code == SOFTMAX:
        _softmax(Z, lo, hi, b)
        return
    m = hi - lo
    for i in range(Z.shape[0]):
        z = Z[i, lo:hi]
        if code == LOGISTIC:
            for j in range(m):
                z[j] = logistic(z[j] + b[j])
        elif code == TANH:
            for j in range(m):
                z[j] = tanh(z[j] + b[j])
        elif code == RELU:
            for j in range(m):
                z[j] = relu(z[j] + b[j])
        elif code == EXP:
            for j in range(m):
                z[j] = exp(z[j] + b[j])
        else:
            for j in range(m):
                z[j] = identity(z[j] + b[j])


@njit(**JIT)
def activation_backward_cols(D, A, lo, hi, code):
    """Eq. (3), second half, on columns ``[lo, hi)``: ``D <- D ⊙ f'(Z)``, f' from A.

    D : (N, H) ∂J/∂A on entry, ∂J/∂Z on exit (those columns).  A : (N, H) = f(Z).
    """
    if code == IDENTITY:  # f' = 1, nothing to do
        return
    m = hi - lo
    for i in range(D.shape[0]):
        d, a = D[i, lo:hi], A[i, lo:hi]
        if code == LOGISTIC:
            for j in range(m):
                d[j] = logistic_back(d[j], a[j])
        elif code == TANH:
            for j in range(m):
                d[j] = tanh_back(d[j], a[j])
        elif code == RELU:
            for j in range(m):
                d[j] = relu_back(d[j], a[j])
