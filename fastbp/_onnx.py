"""ONNX export: a fitted model as an ONNX graph, and skl2onnx's converter for it.

The graph is predict's forward pass (docs/backprop.md, eq. 1), each activation in the
form its registry entry gives (``_activations.Activation.onnx``)::

    X (N, F) -> MatMul W_1 -> Add b_1 -> f -> ... -> MatMul W_L -> Add b_L -> f_out

then, for a classifier, ``probabilities`` (N, n_classes), the binary head's p as
[1 - p, p], and ``label`` as ``LabelBinarizer.inverse_transform`` gives it:
``classes_[argmax]``, ``classes_[p > 0.5]`` for one output, the 0/1 matrix (N, K) for
multilabel targets; a regressor's output ``variable`` is (N, n_outputs), the names
skl2onnx gives them.

One builder writes both a standalone model (``to_onnx``, graph ``_Graph``) and the nodes
skl2onnx asks of a converter (``register_skl2onnx``, graph ``_ContainerGraph``): each
offers ``node(op, inputs, out=None, **attributes)`` and ``const(name, array)``, both
returning the name of what they add. Labels are int64 (integer, boolean and integral
float classes) or strings, as skl2onnx's. onnx and skl2onnx are imported only in the
functions that need them: ``import fastbp`` does not need them (the ``onnx`` extra).
"""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from ._activations import ACTIVATIONS
from ._vmath import ERFC_CHEBYSHEV

# opset 13: Softmax over one axis (as here, the classes); 15 is read by every
# onnxruntime since 1.10, IR version 8 likewise
DEFAULT_OPSET = 15
IR_VERSION = 8
OUTPUTS = {"classifier": ("label", "probabilities"), "regressor": ("variable",)}


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Exporting to ONNX needs the onnx package: pip install 'fastbp[onnx]'."
        ) from e
    return onnx


class _Graph:
    """A standalone graph's nodes and initializers, with names unique in it; ``dtype``
    is its float type (set by ``emit``: the activations' constants are of it)."""

    dtype = None

    def __init__(self, reserved):
        self.nodes, self.initializers = [], []
        self._used = set(reserved)

    def _name(self, base):
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}{i}"
        self._used.add(name)
        return name

    def node(self, op, inputs, out=None, **attributes):
        from onnx import helper

        out = out or self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self._name(op),
                                           **attributes))
        return out

    def const(self, name, array):
        from onnx import numpy_helper

        name = self._name(name)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name


class _ContainerGraph:
    """The same two calls on skl2onnx's scope (names) and container (nodes)."""

    dtype = None

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def node(self, op, inputs, out=None, **attributes):
        out = out or self.scope.get_unique_variable_name(op.lower())
        self.container.add_node(op, inputs, [out],
                                name=self.scope.get_unique_operator_name(op), **attributes)
        return out

    def const(self, name, array):
        from onnx import TensorProto, numpy_helper

        name = self.scope.get_unique_variable_name(name)
        array = np.asarray(array)
        if array.dtype.kind in "USO":  # (a TensorProto's strings are not its raw_data)
            self.container.add_initializer(name, TensorProto.STRING, list(array.shape),
                                           [str(s).encode("utf-8") for s in array.ravel()])
        else:
            self.container.add_initializer(name, None, None, numpy_helper.from_array(array))
        return name


def _form(name):
    form = ACTIVATIONS[name].onnx
    if form is None:
        raise ValueError(f"The activation {name!r} has no ONNX form yet (fastbp._activations).")
    return form


def _label_array(classes):
    """``classes_`` as ONNX labels: int64 or strings (skl2onnx's label types)."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f" and np.all(np.isfinite(classes)) \
            and np.array_equal(classes, np.round(classes)):
        return classes.astype(np.int64)
    if classes.dtype.kind in "USO" and all(isinstance(c, str) for c in classes):
        return np.array([str(c) for c in classes], dtype=object)
    raise ValueError(
        "ONNX labels are integers or strings; this model's classes_ are "
        f"{classes.dtype} ({classes[:3]!r}...)."
    )


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64; got {dtype}.")
    return dtype.type


def normal_cdf(g, x):
    """Nodes computing Φ(x) = erfc(-x / sqrt 2) / 2: with the Erf operator in float32;
    in float64 (onnxruntime has no float64 Erf) from the kernels' series for erfc
    (``_vmath.ERFC_CHEBYSHEV``, here by Clenshaw's recurrence), for |x|, reflected for
    x > 0."""
    dt = g.dtype

    def c(name, v):
        return g.const(name, np.array(v, dt))

    if np.dtype(dt) == np.float32:
        erf = g.node("Erf", [g.node("Mul", [x, c("inv_sqrt2", 0.7071067811865476)])])
        return g.node("Mul", [c("half", 0.5), g.node("Add", [c("one", 1.0), erf])])
    z = g.node("Mul", [g.node("Abs", [x]), c("inv_sqrt2", 0.7071067811865476)])
    two = c("two", 2.0)
    t = g.node("Div", [two, g.node("Add", [two, z])])
    u = g.node("Sub", [g.node("Mul", [two, t]), c("one", 1.0)])
    u2 = g.node("Mul", [two, u])
    coef = np.array(ERFC_CHEBYSHEV)
    b1, b2 = c("cheb", coef[-1]), c("zero", 0.0)
    for k in range(coef.size - 2, 0, -1):  # b_k = c_k + 2u b_{k+1} - b_{k+2}
        b1, b2 = g.node("Sub", [g.node("Add", [g.node("Mul", [u2, b1]),
                                               c("cheb", coef[k])]), b2]), b1
    series = g.node("Sub", [g.node("Add", [g.node("Mul", [u, b1]), c("cheb", coef[0])]), b2])
    erfc = g.node("Mul", [t, g.node("Exp", [g.node("Sub", [series, g.node("Mul", [z, z])])])])
    half = g.node("Mul", [c("half", 0.5), erfc])  # Φ(-|x|)
    upper = g.node("Sub", [c("one", 1.0), half])
    return g.node("Where", [g.node("Less", [x, c("zero", 0.0)]), half, upper])


def emit(g, est, x, dtype, outputs):
    """Add ``est``'s prediction of the input named ``x`` to ``g``, in ``dtype``, its
    results named ``outputs`` (``OUTPUTS``' order)."""
    est._params()  # weights set or replaced by hand: checked and packed first
    g.dtype = dtype  # (the activations' constants are in it)
    h = x
    n_layers = len(est.coefs_)
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        h = g.node("MatMul", [h, g.const(f"coefficient{i}", W.astype(dtype))])
        h = g.node("Add", [h, g.const(f"intercept{i}", b.astype(dtype))])
        h = _form(est.activation if i < n_layers - 1 else est.out_activation_)(g, h)
    if is_classifier(est):
        _emit_labels(g, est, h, dtype, *outputs)
    else:
        g.node("Identity", [h], out=outputs[0])


def _emit_labels(g, est, p, dtype, label, probabilities):
    """The classifier's probabilities and labels from the output layer's p (N, K)."""
    from onnx import TensorProto

    lb = est._label_binarizer

    def above_threshold():  # LabelBinarizer's: p > (pos_label + neg_label) / 2
        half = g.const("threshold", np.array((lb.pos_label + lb.neg_label) / 2.0, dtype))
        return g.node("Greater", [p, half])

    if lb.y_type_.startswith("multilabel"):
        g.node("Identity", [p], out=probabilities)
        g.node("Cast", [above_threshold()], out=label, to=TensorProto.INT64)
        return
    classes = _label_array(est.classes_)
    if est.n_outputs_ == 1:  # p (N, 1): the positive class's probability
        g.node("Concat", [g.node("Sub", [g.const("one", np.array(1, dtype)), p]), p],
               out=probabilities, axis=1)
        index = g.node("Cast", [above_threshold()], to=TensorProto.INT64)
        index = g.node("Reshape", [index, g.const("rows", np.array([-1], np.int64))])
        if classes.size == 1:  # one class seen: it is every prediction
            classes = np.repeat(classes, 2)
    else:
        g.node("Identity", [p], out=probabilities)
        index = g.node("ArgMax", [p], axis=1, keepdims=0)
    g.node("Gather", [g.const("classes", classes), index], out=label, axis=0)


def to_onnx(est, dtype=np.float32, *, target_opset=None):
    """``est`` (fitted) as a standalone ``onnx.ModelProto``: input ``X`` (None, F) of
    ``dtype``, outputs ``OUTPUTS`` (see the module's docstring)."""
    check_is_fitted(est)
    dtype = _check_dtype(dtype)
    opset = DEFAULT_OPSET if target_opset is None else int(target_opset)
    if opset < 13:
        raise ValueError(f"target_opset must be 13 or later; got {target_opset}.")
    onnx = _onnx()
    from onnx import TensorProto, helper

    from . import __version__

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inputs = [helper.make_tensor_value_info("X", elem, [None, int(est.n_features_in_)])]
    if is_classifier(est):
        outputs = OUTPUTS["classifier"]
        multilabel = est._label_binarizer.y_type_.startswith("multilabel")
        string = _label_array(est.classes_).dtype == object and not multilabel
        n_classes = max(2, len(est.classes_)) if est.n_outputs_ == 1 else est.n_outputs_
        info = [
            helper.make_tensor_value_info(
                "label", TensorProto.STRING if string else TensorProto.INT64,
                [None, est.n_outputs_] if multilabel else [None]),
            helper.make_tensor_value_info("probabilities", elem, [None, n_classes]),
        ]
    else:
        outputs = OUTPUTS["regressor"]
        info = [helper.make_tensor_value_info("variable", elem, [None, est.n_outputs_])]
    g = _Graph(reserved=("X",) + outputs)
    emit(g, est, "X", dtype, outputs)
    graph = helper.make_graph(g.nodes, type(est).__name__, inputs, info, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=IR_VERSION, producer_name="fastbp",
                              producer_version=__version__)
    onnx.checker.check_model(model)
    return model


# ---- skl2onnx -------------------------------------------------------------------------


def _input_dtype(operator):
    from skl2onnx.common.data_types import DoubleTensorType

    return np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32


def _shapes(operator):
    """skl2onnx's output types: its linear models' (label, probabilities or values), with
    the widths of this model (multilabel labels (N, K), regression (N, n_outputs))."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    est = operator.raw_operator
    N = operator.inputs[0].get_first_dimension()
    tensor = DoubleTensorType if _input_dtype(operator) == np.float64 else FloatTensorType
    if is_classifier(est):
        calculate_linear_classifier_output_shapes(operator)
        if est._label_binarizer.y_type_.startswith("multilabel"):
            operator.outputs[0].type.shape = [N, est.n_outputs_]
    else:
        calculate_linear_regressor_output_shapes(operator)
        operator.outputs[0].set_type(tensor([N, est.n_outputs_]))


def _convert(scope, operator, container):
    """skl2onnx's converter: ``emit`` on its container, from its input variable (cast
    to float32 unless it is float32 or float64)."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    g = _ContainerGraph(scope, container)
    x = operator.inputs[0].full_name
    if not isinstance(operator.inputs[0].type, (FloatTensorType, DoubleTensorType)):
        x = g.node("Cast", [x], to=TensorProto.FLOAT)
    emit(g, operator.raw_operator, x, _input_dtype(operator),
         [v.full_name for v in operator.outputs])


def register_skl2onnx():
    """Register fastbp's estimators with skl2onnx, so that ``skl2onnx.to_onnx(est, X)``
    (and ``convert_sklearn``, pipelines that hold them) converts them with fastbp's
    graph. Call it once before converting; calling it again changes nothing. Classifiers
    take skl2onnx's ``zipmap`` option (default True: probabilities as a list of maps)
    and ``nocl`` (the maps' keys: class indices instead of labels)."""
    try:
        from skl2onnx import update_registered_converter
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "register_skl2onnx needs skl2onnx: pip install 'fastbp[onnx]'."
        ) from e
    from ._mlp import MLPClassifier, MLPRegressor

    update_registered_converter(MLPClassifier, "FastbpMLPClassifier", _shapes, _convert,
                                options={"zipmap": [True, False, "columns"],
                                         "nocl": [False, True]})
    update_registered_converter(MLPRegressor, "FastbpMLPRegressor", _shapes, _convert)
