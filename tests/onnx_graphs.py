"""Small ONNX graphs for the numpy backend tests, built with the ``onnx`` package.

Everything here builds models in memory (or in a test's tmp_path) and runs them with
onnxruntime as the reference; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime

type Array = npt.NDArray[Any]

_ELEM: dict[np.dtype[Any], int] = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def elem_type(array: Array) -> int:
    """The ONNX element type of a numpy array."""
    return _ELEM[array.dtype]


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, Array],
    outputs: Sequence[str],
    initializers: Mapping[str, Array] | None = None,
    *,
    opset: int = 17,
    dynamic_axes: Mapping[str, Sequence[int]] | None = None,
) -> onnx.ModelProto:
    """A model with the given nodes; inputs typed from example arrays, outputs untyped.

    ``dynamic_axes`` marks input dimensions as symbolic, as exporters do for lengths.
    """
    dyn = dynamic_axes or {}
    graph_inputs = []
    for name, arr in inputs.items():
        shape: list[int | str] = list(arr.shape)
        for axis in dyn.get(name, ()):
            shape[axis] = f"{name}_{axis}"
        graph_inputs.append(helper.make_tensor_value_info(name, elem_type(arr), shape))
    graph = helper.make_graph(
        list(nodes),
        "test",
        graph_inputs,
        [onnx.ValueInfoProto(name=name) for name in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` and return it."""
    path.write_bytes(model.SerializeToString())
    return path


def ort_session(model: onnx.ModelProto | Path) -> onnxruntime.InferenceSession:
    """A single-threaded onnxruntime session (the reference)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto | Path, feeds: Mapping[str, Array]) -> list[Array]:
    """Run ``model`` with onnxruntime."""
    result: list[Array] = ort_session(model).run(None, dict(feeds))
    return result


def single_op(
    op: str,
    inputs: Sequence[Array | None],
    attrs: Mapping[str, Any] | None = None,
    *,
    n_outputs: int = 1,
    opset: int = 17,
    constant: bool | Sequence[int] = False,
) -> tuple[onnx.ModelProto, dict[str, Array]]:
    """One node of ``op``; ``None`` inputs are omitted optional inputs.

    ``constant`` makes all (True) or the listed inputs initializers instead of graph inputs.
    Returns the model and the feeds for its graph inputs.
    """
    names: list[str] = []
    feeds: dict[str, Array] = {}
    inits: dict[str, Array] = {}
    for i, arr in enumerate(inputs):
        if arr is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        is_const = constant is True or (not isinstance(constant, bool) and i in constant)
        (inits if is_const else feeds)[name] = arr
    outputs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op, names, outputs, **dict(attrs or {}))
    return make_model([node], feeds, outputs, inits, opset=opset), feeds


def leaky(x: Array, alpha: float) -> Array:
    """Reference LeakyRelu."""
    return np.where(x >= 0, x, alpha * x).astype(x.dtype)


def hifigan_decoder(
    *,
    in_channels: int,
    channels: Sequence[int],
    upsample_rates: Sequence[int],
    upsample_kernels: Sequence[int],
    resblock_kernels: Sequence[int],
    resblock_dilations: Sequence[Sequence[int]],
    resblock_type: str,
    speakers: int = 0,
    seed: int = 0,
) -> onnx.ModelProto:
    """A small HiFi-GAN generator exported the way Piper's VITS decoder is.

    ``channels[0]`` is conv_pre's output and ``channels[i + 1]`` the i-th upsampling stage's.
    Resblock type "1" has two convs per dilation (dilated, then dilation 1); type "2" has one.
    With ``speakers`` > 0 a ``sid`` input picks a row of an embedding table (Gather) that a
    1x1 conv projects and adds to conv_pre's output, as VITS conditions on the speaker.
    """
    rng = np.random.default_rng(seed)
    inits: dict[str, Array] = {}
    nodes: list[onnx.NodeProto] = []
    counter = iter(range(10_000))

    def tensor(shape: Sequence[int], scale: float) -> str:
        name = f"w{next(counter)}"
        inits[name] = (rng.standard_normal(tuple(shape)) * scale).astype(np.float32)
        return name

    def conv(x: str, c_in: int, c_out: int, k: int, d: int = 1, bias: bool = True) -> str:
        out = f"c{next(counter)}"
        w = tensor((c_out, c_in, k), 1.0 / np.sqrt(c_in * k))
        ins = [x, w] + ([tensor((c_out,), 0.1)] if bias else [])
        pad = (k * d - d) // 2
        nodes.append(
            helper.make_node(
                "Conv", ins, [out], kernel_shape=[k], dilations=[d], pads=[pad, pad], strides=[1]
            )
        )
        return out

    def lrelu(x: str, alpha: float = 0.1) -> str:
        out = f"l{next(counter)}"
        nodes.append(helper.make_node("LeakyRelu", [x], [out], alpha=alpha))
        return out

    def add(a: str, b: str) -> str:
        out = f"a{next(counter)}"
        nodes.append(helper.make_node("Add", [a, b], [out]))
        return out

    x = conv("z", in_channels, channels[0], 7)
    if speakers:
        inits["emb"] = (rng.standard_normal((speakers, 16)) * 0.5).astype(np.float32)
        nodes.append(helper.make_node("Gather", ["emb", "sid"], ["g0"], axis=0))
        nodes.append(helper.make_node("Unsqueeze", ["g0", "ax2"], ["g1"]))
        inits["ax2"] = np.array([2], dtype=np.int64)
        x = add(x, conv("g1", 16, channels[0], 1))
    for i, (rate, kernel) in enumerate(zip(upsample_rates, upsample_kernels, strict=True)):
        c_in, c_out = channels[i], channels[i + 1]
        up = f"u{next(counter)}"
        w = tensor((c_in, c_out, kernel), 1.0 / np.sqrt(c_in))
        b = tensor((c_out,), 0.1)
        pad = (kernel - rate) // 2
        nodes.append(
            helper.make_node(
                "ConvTranspose",
                [lrelu(x), w, b],
                [up],
                kernel_shape=[kernel],
                strides=[rate],
                pads=[pad, pad],
                dilations=[1],
                group=1,
            )
        )
        total: str | None = None
        for k, dils in zip(resblock_kernels, resblock_dilations, strict=True):
            h = up
            for d in dils:
                y = conv(lrelu(h), c_out, c_out, k, d)
                if resblock_type == "1":
                    y = conv(lrelu(y), c_out, c_out, k, 1)
                h = add(y, h)
            total = h if total is None else add(total, h)
        assert total is not None
        scale = f"s{next(counter)}"
        inits[scale] = np.array(float(len(resblock_kernels)), dtype=np.float32)
        x = f"m{next(counter)}"
        nodes.append(helper.make_node("Div", [total, scale], [x]))
    post = conv(lrelu(x, 0.01), channels[-1], 1, 7, bias=False)
    nodes.append(helper.make_node("Tanh", [post], ["audio"]))
    graph_inputs: dict[str, Array] = {"z": np.zeros((1, in_channels, 5), dtype=np.float32)}
    if speakers:
        graph_inputs["sid"] = np.zeros((1,), dtype=np.int64)
    return make_model(nodes, graph_inputs, ["audio"], inits, opset=15, dynamic_axes={"z": [2]})


def voice_debug_copy(
    model_path: Path, *, seeds: Sequence[float] = (11.0, 13.0), with_sid: bool = False
) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of a Piper voice whose RandomNormalLike draws are seeded and exposed as outputs.

    onnxruntime then draws the same noise on every run, and the test can feed exactly that
    noise to the numpy backend. With ``with_sid``, an extra ``sid`` input selects a row of a
    small embedding table (Gather) that is added to ``scales``: a speaker-id input wired into
    the real graph, the way multi-speaker voices take one.
    """
    model = onnx.load(str(model_path))
    noise_names: list[str] = []
    randoms = [n for n in model.graph.node if n.op_type == "RandomNormalLike"]
    for node, seed in zip(randoms, seeds, strict=False):
        node.attribute.append(helper.make_attribute("seed", float(seed)))
        noise_names.append(node.output[0])
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in noise_names)
    if with_sid:
        # Exporters name the phoneme embedding table "sid" in single-speaker voices (joe-medium
        # does): rename that initializer so the name is free for the speaker-id input.
        for init in model.graph.initializer:
            if init.name == "sid":
                init.name = "phoneme_embedding"
        for node in model.graph.node:
            node.input[:] = ["phoneme_embedding" if i == "sid" else i for i in node.input]
        table = np.array(
            [[0.0, 0.0, 0.0], [0.05, -0.1, 0.02], [-0.1, 0.15, -0.05], [0.02, 0.05, 0.1]],
            dtype=np.float32,
        )
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(table, "speaker_table"),
                numpy_helper.from_array(np.array([3], dtype=np.int64), "speaker_shape"),
            ]
        )
        model.graph.input.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
        for node in model.graph.node:
            for i, name in enumerate(node.input):
                if name == "scales":
                    node.input[i] = "speaker_scales"
        model.graph.node.insert(
            0, helper.make_node("Gather", ["speaker_table", "sid"], ["speaker_row"], axis=0)
        )
        model.graph.node.insert(
            1, helper.make_node("Reshape", ["speaker_row", "speaker_shape"], ["speaker_offset"])
        )
        model.graph.node.insert(
            2, helper.make_node("Add", ["scales", "speaker_offset"], ["speaker_scales"])
        )
    return model, noise_names
