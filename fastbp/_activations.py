"""The activations: one registry, each entry a forward and a backward scalar function.

``f(z)`` is the activation; ``back(d, a)`` turns ∂J/∂A into ∂J/∂Z from the layer's
stored output a = f(z), so Z is never kept (docs/backprop.md, eq. 3). The kernels apply
them to a block of columns of a C-ordered (N, H) array with ``activation_forward_cols``
and ``activation_backward_cols``, which pick the entry by its integer code.

Where a cannot give f'(z) (gelu, silu) or gives it inaccurately (softplus), the entry is
``keep``: its ``name_keep(z)`` returns (f(z), f'(z)) and the forward pass of training
keeps f'(Z) in the workspace's ``fprime`` (``activation_forward_keep``), which the
backward multiplies in (``multiply_cols``). Only networks of such an activation, or
with dropout, have that buffer; the kernels of the others compile no code for it.

Adding an activation (the recipe; ``_kernels``' docstring has those for losses and
optimizers):

1. write ``name(z)`` below, as straight-line float code that keeps the argument's dtype
   (constants through ``typed``; exp, tanh, logistic, expm1, log1p through ``_vmath``,
   which vectorises), and either ``name_back(d, a)`` (f' from the output) or, marking
   the entry ``keep``, ``name_keep(z)`` returning (f(z), f'(z));
2. give it the next code and a row in ``ACTIVATIONS`` (its Glorot factor, whether
   scikit-learn has it, where it may be used, ``keep``, its ONNX form ``onnx``: a
   function ``(g, z) -> name`` that adds the nodes computing f(z) to the graph ``g``,
   ``fastbp._onnx``);
3. add its branch to ``activation_forward_cols`` and to ``activation_backward_cols``
   (from a) or ``activation_forward_keep`` (keep): one line each, the loop nest called
   with the function (``_map_cols(Z, lo, hi, b, name)``, ``_back_cols``, ``_keep_cols``);
4. its NumPy reference in ``tests/reference.py`` (``activation``, ``derivative`` from Z
   and, if f' comes from a, ``derivative_from_output``); the parametrised kernel,
   gradient and ONNX tests take every registry entry (``tests/test_onnx.py`` checks that
   each has an ONNX form and compares it with ``predict`` in onnxruntime).

Softmax is the one activation that is not element-wise: its forward is a branch of its
own, and it has no backward here (it is only an output, whose residual the loss head
computes, ``_losses``).
"""

from typing import NamedTuple

import numpy as np
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
    keep : bool
        Its derivative is not a function of its output A (gelu, silu), or is one that
        loses accuracy (softplus: f' = 1 - exp(-a)): the forward pass computes f'(Z)
        with f(Z) and keeps it (``activation_forward_keep``), the backward multiplies
        by it. Other activations compute f' from A in the backward pass, Z never kept.
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
    keep: bool = False
    onnx: object = None


# The ONNX forms (opset >= 13). Softmax is over the classes (axis 1 of the (N, K)
# output); gelu's constants are in the graph's dtype (``g.dtype``).

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


# (leaky_relu, elu, softplus and float64 gelu from elementary operators: onnxruntime has
# no float64 kernels of LeakyRelu, Elu, Softplus and Erf)
def _onnx_leaky_relu(g, z):  # max(z, 0.01 z), as the slope is below 1
    return g.node("Max", [z, g.node("Mul", [z, g.const("slope", np.array(LEAKY_SLOPE,
                                                                          g.dtype))])])


def _onnx_elu(g, z):  # z > 0 ? z : e^min(z, 0) - 1
    zero, one = g.const("zero", np.array(0.0, g.dtype)), g.const("one", np.array(1.0, g.dtype))
    neg = g.node("Sub", [g.node("Exp", [g.node("Min", [z, zero])]), one])
    return g.node("Where", [g.node("Greater", [z, zero]), z, neg])


def _onnx_gelu(g, z):  # z Φ(z) (the Gelu operator is opset 20's)
    from ._onnx import normal_cdf

    return g.node("Mul", [z, normal_cdf(g, z)])


def _onnx_silu(g, z):
    return g.node("Mul", [z, g.node("Sigmoid", [z])])


def _onnx_softplus(g, z):  # max(z, 0) + log(1 + e^-|z|)
    one = g.const("one", np.array(1.0, g.dtype))
    tail = g.node("Exp", [g.node("Neg", [g.node("Abs", [z])])])
    return g.node("Add", [g.node("Relu", [z]), g.node("Log", [g.node("Add", [one, tail])])])


IDENTITY, LOGISTIC, TANH, RELU, SOFTMAX, EXP = 0, 1, 2, 3, 4, 5
LEAKY_RELU, ELU, GELU, SILU, SOFTPLUS = 6, 7, 8, 9, 10

# The activations beyond scikit-learn's are PyTorch's with its default parameters
# (torch.nn.functional: leaky_relu slope 0.01, elu alpha 1, gelu exact, silu, softplus
# beta 1 without its linear threshold). Their weights start as scikit-learn starts relu
# and tanh networks (Glorot uniform, factor 6): one rule for every activation but
# logistic, so changing the activation changes only the activation. (He's factor 2 /
# fan_in suits the relu family; PyTorch itself draws U(±1/sqrt(fan_in)) for every one.)
ACTIVATIONS = {
    "identity": Activation(IDENTITY, 6.0, True, True, True, onnx=_onnx_identity),
    "logistic": Activation(LOGISTIC, 2.0, True, True, True, onnx=_onnx_logistic),
    "tanh": Activation(TANH, 6.0, True, True, False, onnx=_onnx_tanh),
    "relu": Activation(RELU, 6.0, True, True, False, onnx=_onnx_relu),
    "leaky_relu": Activation(LEAKY_RELU, 6.0, False, True, False, onnx=_onnx_leaky_relu),
    "elu": Activation(ELU, 6.0, False, True, False, onnx=_onnx_elu),
    "gelu": Activation(GELU, 6.0, False, True, False, keep=True, onnx=_onnx_gelu),
    "silu": Activation(SILU, 6.0, False, True, False, keep=True, onnx=_onnx_silu),
    "softplus": Activation(SOFTPLUS, 6.0, False, True, False, keep=True,
                           onnx=_onnx_softplus),
    "softmax": Activation(SOFTMAX, 6.0, False, False, True, onnx=_onnx_softmax),
    "exp": Activation(EXP, 6.0, False, False, True, onnx=_onnx_exp),
}

HIDDEN = tuple(name for name, a in ACTIVATIONS.items() if a.hidden)


def code(name):
    """The kernels' code of the activation ``name``."""
    return ACTIVATIONS[name].code


def keeps(name):
    """Whether a layer of activation ``name`` keeps f'(Z) from its forward pass."""
    return ACTIVATIONS[name].keep


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


LEAKY_SLOPE = 0.01


@njit(**SCALAR)
def leaky_relu(z):
    return typed(z, LEAKY_SLOPE) * z if z < 0 else z


@njit(**SCALAR)
def leaky_relu_back(d, a):  # f' = 1[a > 0] + 0.01 1[a <= 0] (PyTorch's: 0.01 at 0)
    return d if a > 0 else d * typed(d, LEAKY_SLOPE)


@njit(**SCALAR)
def elu(z):
    return z if z > 0 else vm.expm1(z)


@njit(**SCALAR)
def elu_back(d, a):  # f' = 1 (z > 0), e^z = a + 1 (z <= 0)
    return d if a > 0 else d * (a + typed(a, 1.0))


_INV_SQRT2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


@njit(**SCALAR)
def gelu_keep(z):
    """(z Φ(z), Φ(z) + z φ(z)): Φ through erfc (accurate in both tails, ``_vmath``),
    φ(z) = exp(-z²/2) / sqrt(2π)."""
    cdf = vm.ndtr(z)
    pdf = typed(z, _INV_SQRT_2PI) * vm.exp(typed(z, -0.5) * z * z)
    return z * cdf, cdf + z * pdf


@njit(**SCALAR)
def gelu(z):
    return gelu_keep(z)[0]


@njit(**SCALAR)
def silu_keep(z):
    """(z σ(z), σ(z) (1 + z (1 - σ(z))))."""
    s = vm.logistic(z)
    return z * s, s * (typed(z, 1.0) + z * (typed(z, 1.0) - s))


@njit(**SCALAR)
def silu(z):
    return z * vm.logistic(z)


@njit(**SCALAR)
def softplus_keep(z):
    """(log(1 + e^z), σ(z)) as max(z, 0) + log1p(e^-|z|): no overflow, no cancellation."""
    e = vm.exp(-abs(z))
    inv = typed(z, 1.0) / (typed(z, 1.0) + e)
    a = max(z, typed(z, 0.0)) + vm.log1p(e)
    return a, (inv if z >= 0 else e * inv)


@njit(**SCALAR)
def softplus(z):
    return softplus_keep(z)[0]


# ---------------------------------------------------------------------------------------
# The kernels' entry points: a block of columns, dispatched on the code once a call, to
# one loop nest (``_map_cols``, ``_back_cols``, ``_keep_cols``) that Numba inlines with
# the entry's scalar function, so each entry gets loops of its own that LLVM vectorises
# (a loop that dispatched on the code per element did not, 8x slower; dispatching once
# a row cost 5-50 % on the cheap activations, relu and identity most, on short rows).
# Rows are walked through views that start at column 0: loops from 0 vectorise, while
# Numba's indexing ``Z[i, j]`` for j from a runtime ``lo`` keeps a negative-index check
# per element that stops it.
# ---------------------------------------------------------------------------------------


@njit(**SCALAR)
def _map_cols(Z, lo, hi, b, f):
    """``Z[:, lo:hi] <- f(Z[:, lo:hi] + b)``."""
    m = hi - lo
    for i in range(Z.shape[0]):
        z = Z[i, lo:hi]
        for j in range(m):
            z[j] = f(z[j] + b[j])


@njit(**SCALAR)
def _back_cols(D, A, lo, hi, back):
    """``D[:, lo:hi] <- back(D, A)`` element by element (on those columns)."""
    m = hi - lo
    for i in range(D.shape[0]):
        d, a = D[i, lo:hi], A[i, lo:hi]
        for j in range(m):
            d[j] = back(d[j], a[j])


@njit(**SCALAR)
def _keep_cols(Z, G, lo, hi, b, keep):
    """``Z[:, lo:hi], G[:, lo:hi] <- keep(Z[:, lo:hi] + b)``: f and f'."""
    m = hi - lo
    for i in range(Z.shape[0]):
        z, g = Z[i, lo:hi], G[i, lo:hi]
        for j in range(m):
            z[j], g[j] = keep(z[j] + b[j])


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
    if code == LOGISTIC:
        _map_cols(Z, lo, hi, b, logistic)
    elif code == TANH:
        _map_cols(Z, lo, hi, b, tanh)
    elif code == RELU:
        _map_cols(Z, lo, hi, b, relu)
    elif code == SOFTMAX:
        _softmax(Z, lo, hi, b)
    elif code == EXP:
        _map_cols(Z, lo, hi, b, exp)
    elif code == LEAKY_RELU:
        _map_cols(Z, lo, hi, b, leaky_relu)
    elif code == ELU:
        _map_cols(Z, lo, hi, b, elu)
    elif code == GELU:
        _map_cols(Z, lo, hi, b, gelu)
    elif code == SILU:
        _map_cols(Z, lo, hi, b, silu)
    elif code == SOFTPLUS:
        _map_cols(Z, lo, hi, b, softplus)
    else:
        _map_cols(Z, lo, hi, b, identity)


@njit(**JIT)
def activation_forward_keep(Z, G, lo, hi, b, code):
    """``activation_forward_cols`` for a layer that keeps its derivative: also
    ``G[:, lo:hi] <- f'(Z[:, lo:hi] + b)``, from Z (``keep`` entries) or, for the others
    (a layer under dropout keeps f' too), from the output as their backward computes it.
    """
    if code == GELU:
        _keep_cols(Z, G, lo, hi, b, gelu_keep)
    elif code == SILU:
        _keep_cols(Z, G, lo, hi, b, silu_keep)
    elif code == SOFTPLUS:
        _keep_cols(Z, G, lo, hi, b, softplus_keep)
    else:
        activation_forward_cols(Z, lo, hi, b, code)
        for i in range(Z.shape[0]):
            g = G[i, lo:hi]
            for j in range(hi - lo):
                g[j] = 1
        activation_backward_cols(G, Z, lo, hi, code)


@njit(**JIT)
def multiply_cols(D, G, lo, hi):
    """``D[:, lo:hi] *= G[:, lo:hi]``: the backward pass of a layer that kept f'."""
    m = hi - lo
    for i in range(D.shape[0]):
        d, g = D[i, lo:hi], G[i, lo:hi]
        for j in range(m):
            d[j] *= g[j]


@njit(**JIT)
def activation_backward_cols(D, A, lo, hi, code):
    """Eq. (3), second half, on columns ``[lo, hi)``: ``D <- D ⊙ f'(Z)``, f' from A.

    D : (N, H) ∂J/∂A on entry, ∂J/∂Z on exit (those columns).  A : (N, H) = f(Z).
    Identity's f' = 1: nothing to do.
    """
    if code == LOGISTIC:
        _back_cols(D, A, lo, hi, logistic_back)
    elif code == TANH:
        _back_cols(D, A, lo, hi, tanh_back)
    elif code == RELU:
        _back_cols(D, A, lo, hi, relu_back)
    elif code == LEAKY_RELU:
        _back_cols(D, A, lo, hi, leaky_relu_back)
    elif code == ELU:
        _back_cols(D, A, lo, hi, elu_back)
