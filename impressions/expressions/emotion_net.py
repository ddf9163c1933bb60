"""Keras hdf5 models rebuilt in torch, for the `fer` package's mini-Xception emotion CNN (no TensorFlow).

`load_keras_hdf5` reads a Keras 2.x (TensorFlow backend) functional or Sequential model: the
architecture from the file's `model_config` attribute and the weights from `model_weights`. The
layer types the 2D image CNNs of that era use are supported (Conv2D, SeparableConv2D,
DepthwiseConv2D, BatchNormalization, Activation/ReLU, Max/AveragePooling2D, Global pooling, Add,
Concatenate, Dropout, Flatten, Dense); anything else raises `NotImplementedError` naming the layer.

Keras -> torch conventions handled here:

- tensors run as NCHW; Keras is channels-last, so channel axes (BN, softmax, Concatenate) map to
  dim 1 and `Flatten` permutes back to NHWC first so a following Dense sees Keras' element order;
- conv kernels HWIO -> OIHW; depthwise kernels (H, W, C, M) -> (C*M, 1, H, W) with `groups=C`
  (TF orders depthwise outputs channel-major, c*M + m); Dense kernels (in, out) -> (out, in);
- 'same' padding follows TF: total = max((ceil(n/s) - 1)*s + (k-1)*d + 1 - n, 0), the odd pixel
  goes after (bottom/right), and max pooling pads with -inf, average pooling excludes padding;
- BatchNormalization uses the file's epsilon (Keras default 1e-3, torch's is 1e-5).

Checked against hand computations of single layers from the raw hdf5 arrays (tests/test_expressions)
and on real faces: surprise and happiness stills, crying vs laughing frames of the Wolfgang clip.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FER_CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
"""fer's output order (angry, disgust, fear, happy, sad, surprise, neutral) in our emotion names."""

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "elu": F.elu,
    "selu": F.selu,
    "sigmoid": torch.sigmoid,
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),  # Keras 2 definition, not torch's
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "softmax": lambda x: torch.softmax(x, dim=1),  # channel axis, last in Keras
}


def _activation(name: str):
    if name not in _ACTIVATIONS:
        raise NotImplementedError(f"Keras activation {name!r} is not supported")
    return _ACTIVATIONS[name]


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF's 'same' padding (before, after) for one spatial axis; the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel, stride, dilation=(1, 1), value: float = 0.0) -> torch.Tensor:
    top, bottom = tf_same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = tf_same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def _check_channels_last(config: dict) -> None:
    if config.get("data_format", "channels_last") != "channels_last":
        raise NotImplementedError(
            f"layer {config.get('name')!r}: only channels_last Keras models are supported"
        )


class _Layer(nn.Module):
    """A Keras layer: `forward` takes the list of inbound tensors, `set_weights` the Keras arrays by name."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        if weights:
            raise ValueError(f"layer {self.config.get('name')!r} has unexpected weights {sorted(weights)}")


class _Identity(_Layer):
    def forward(self, xs):
        return xs[0]


class _Activation(_Layer):
    def __init__(self, config):
        super().__init__(config)
        self.fn = _activation(config["activation"])

    def forward(self, xs):
        return self.fn(xs[0])


class _ReLU(_Layer):
    def forward(self, xs):
        x = xs[0]
        slope = float(self.config.get("negative_slope", 0.0))
        x = F.leaky_relu(x, slope) if slope else F.relu(x)
        if self.config.get("max_value") is not None:
            x = torch.clamp(x, max=float(self.config["max_value"]))
        return x


class _Conv(_Layer):
    """Conv2D, DepthwiseConv2D and SeparableConv2D (depthwise then pointwise, one bias at the end)."""

    def __init__(self, config, kind: str):
        super().__init__(config)
        _check_channels_last(config)
        self.kind = kind
        self.kernel = _pair(config["kernel_size"])
        self.stride = _pair(config.get("strides", 1))
        self.dilation = _pair(config.get("dilation_rate", 1))
        self.padding = config.get("padding", "valid")
        if self.padding not in ("valid", "same"):
            raise NotImplementedError(f"layer {config['name']!r}: padding {self.padding!r}")
        self.fn = _activation(config.get("activation", "linear"))
        self.depthwise: torch.Tensor | None
        self.register_buffer("depthwise", None)
        self.register_buffer("weight", None)
        self.register_buffer("bias", None)

    def set_weights(self, weights):
        weights = dict(weights)
        if self.kind in ("depthwise", "separable"):
            dw = weights.pop("depthwise_kernel")  # (H, W, C, M)
            h, w, c, m = dw.shape
            self.depthwise = torch.from_numpy(
                np.ascontiguousarray(dw.reshape(h, w, c * m).transpose(2, 0, 1))
            )
            self.depthwise = self.depthwise.unsqueeze(1)
        if self.kind == "conv":
            self.weight = torch.from_numpy(np.ascontiguousarray(weights.pop("kernel").transpose(3, 2, 0, 1)))
        elif self.kind == "separable":
            self.weight = torch.from_numpy(
                np.ascontiguousarray(weights.pop("pointwise_kernel").transpose(3, 2, 0, 1))
            )
        if "bias" in weights:
            self.bias = torch.from_numpy(weights.pop("bias"))
        super().set_weights(weights)

    def forward(self, xs):
        x = xs[0]
        if self.padding == "same":
            x = _pad_same(x, self.kernel, self.stride, self.dilation)
        if self.kind == "conv":
            x = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)
        else:
            x = F.conv2d(x, self.depthwise, None, self.stride, 0, self.dilation, groups=x.shape[1])
            if self.kind == "separable":
                x = F.conv2d(x, self.weight)
            if self.bias is not None:
                x = x + self.bias.view(1, -1, 1, 1)
        return self.fn(x)


class _BatchNorm(_Layer):
    def __init__(self, config):
        super().__init__(config)
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) else axis
        if axis not in (-1, 3):
            raise NotImplementedError(f"layer {config['name']!r}: BatchNormalization axis {axis}")
        self.eps = float(config.get("epsilon", 1e-3))
        for name in ("gamma", "beta", "mean", "var"):
            self.register_buffer(name, None)

    def set_weights(self, weights):
        weights = {k: torch.from_numpy(v) for k, v in weights.items()}
        self.mean = weights.pop("moving_mean")
        self.var = weights.pop("moving_variance")
        self.gamma = weights.pop("gamma", torch.ones_like(self.mean))  # absent when scale=False
        self.beta = weights.pop("beta", torch.zeros_like(self.mean))  # absent when center=False
        super().set_weights(weights)

    def forward(self, xs):
        return F.batch_norm(xs[0], self.mean, self.var, self.gamma, self.beta, False, 0.0, self.eps)


class _Pool(_Layer):
    def __init__(self, config, mode: str):
        super().__init__(config)
        _check_channels_last(config)
        self.mode = mode
        self.kernel = _pair(config.get("pool_size", 2))
        self.stride = _pair(config.get("strides") or self.kernel)
        self.padding = config.get("padding", "valid")

    def forward(self, xs):
        x = xs[0]
        if self.mode == "max":
            if self.padding == "same":
                x = _pad_same(x, self.kernel, self.stride, value=float("-inf"))
            return F.max_pool2d(x, self.kernel, self.stride)
        if self.padding != "same":
            return F.avg_pool2d(x, self.kernel, self.stride)
        # TF averages over the valid pixels only: divide by the pooled count of ones.
        ones = torch.ones_like(x[:, :1])
        total = F.avg_pool2d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)
        count = F.avg_pool2d(_pad_same(ones, self.kernel, self.stride), self.kernel, self.stride)
        return total / count


class _GlobalPool(_Layer):
    def __init__(self, config, mode: str):
        super().__init__(config)
        _check_channels_last(config)
        self.mode = mode

    def forward(self, xs):
        x = xs[0]
        return x.mean(dim=(2, 3)) if self.mode == "avg" else x.amax(dim=(2, 3))


class _Add(_Layer):
    def forward(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class _Concatenate(_Layer):
    def forward(self, xs):
        axis = self.config.get("axis", -1)
        if xs[0].dim() == 4:
            axis = {-1: 1, 3: 1, 1: 2, 2: 3}[axis]  # Keras NHWC axis -> NCHW
        return torch.cat(xs, dim=axis)


class _Flatten(_Layer):
    def forward(self, xs):
        x = xs[0]
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)  # Keras flattens H, W, C in that order
        return x.flatten(1)


class _Dense(_Layer):
    def __init__(self, config):
        super().__init__(config)
        self.fn = _activation(config.get("activation", "linear"))
        self.register_buffer("weight", None)
        self.register_buffer("bias", None)

    def set_weights(self, weights):
        weights = dict(weights)
        self.weight = torch.from_numpy(np.ascontiguousarray(weights.pop("kernel").T))
        if "bias" in weights:
            self.bias = torch.from_numpy(weights.pop("bias"))
        super().set_weights(weights)

    def forward(self, xs):
        return self.fn(F.linear(xs[0], self.weight, self.bias))


_BUILDERS = {
    "InputLayer": _Identity,
    "Dropout": _Identity,
    "SpatialDropout2D": _Identity,
    "Activation": _Activation,
    "ReLU": _ReLU,
    "Conv2D": lambda c: _Conv(c, "conv"),
    "DepthwiseConv2D": lambda c: _Conv(c, "depthwise"),
    "SeparableConv2D": lambda c: _Conv(c, "separable"),
    "BatchNormalization": _BatchNorm,
    "MaxPooling2D": lambda c: _Pool(c, "max"),
    "AveragePooling2D": lambda c: _Pool(c, "avg"),
    "GlobalAveragePooling2D": lambda c: _GlobalPool(c, "avg"),
    "GlobalMaxPooling2D": lambda c: _GlobalPool(c, "max"),
    "Add": _Add,
    "Concatenate": _Concatenate,
    "Flatten": _Flatten,
    "Dense": _Dense,
}


class KerasModel(nn.Module):
    """A Keras 2 functional/Sequential graph run in torch on NCHW tensors (inference only)."""

    def __init__(self, model_config: dict):
        super().__init__()
        layers, inbound, self.input_names, self.output_names = _graph(model_config)
        self.inbound = inbound
        self.layers = nn.ModuleDict()
        for layer in layers:
            kind = layer["class_name"]
            if kind not in _BUILDERS:
                raise NotImplementedError(f"Keras layer type {kind!r} ({layer['config'].get('name')!r})")
            self.layers[layer["config"]["name"]] = _BUILDERS[kind](layer["config"])
        if len(self.input_names) != 1:
            raise NotImplementedError("only single-input Keras models are supported")
        self.eval()

    def forward(self, x: torch.Tensor, outputs: Sequence[str] = ()):
        """Run the graph on an NCHW tensor; with `outputs`, return those layers' outputs by name."""
        values: dict[str, torch.Tensor] = {}
        for name, layer in self.layers.items():
            sources = self.inbound[name]
            values[name] = layer([values[s] for s in sources] if sources else [x])
        if outputs:
            return {name: values[name] for name in outputs}
        result = [values[name] for name in self.output_names]
        return result[0] if len(result) == 1 else result


def _graph(model_config: dict):
    """Layers in order, their inbound layer names, the input and output layer names."""
    kind, config = model_config["class_name"], model_config["config"]
    if kind == "Sequential":
        layers = config if isinstance(config, list) else config["layers"]
        names = [layer["config"]["name"] for layer in layers]
        inbound = {name: ([names[i - 1]] if i else []) for i, name in enumerate(names)}
        return layers, inbound, names[:1], names[-1:]
    if kind not in ("Model", "Functional"):
        raise NotImplementedError(f"Keras model class {kind!r}")
    inbound = {}
    for layer in config["layers"]:
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) > 1:
            raise NotImplementedError(f"shared Keras layer {layer['name']!r} (called more than once)")
        if nodes and not isinstance(nodes[0], list):
            raise NotImplementedError("Keras 3 node format; re-save the model with Keras 2")
        inbound[layer["config"]["name"]] = [node[0] for node in nodes[0]] if nodes else []
    inputs = [entry[0] for entry in config["input_layers"]]
    outputs = [entry[0] for entry in config["output_layers"]]
    return config["layers"], inbound, inputs, outputs


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_keras_hdf5(path) -> KerasModel:
    """Build a `KerasModel` from a Keras 2 `.hdf5` file holding the architecture and weights."""
    import h5py  # only needed at load time

    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path} holds weights only (no 'model_config' attribute)")
        model = KerasModel(json.loads(_text(f.attrs["model_config"])))
        group = f["model_weights"] if "model_weights" in f else f
        for name, layer in model.layers.items():
            weights = {}
            if name in group:
                for weight_name in group[name].attrs.get("weight_names", []):
                    weight_name = _text(weight_name)
                    # "conv2d_1_1/kernel:0" -> "kernel"
                    key = weight_name.rsplit("/", 1)[-1].split(":")[0]
                    weights[key] = np.asarray(group[name][weight_name], dtype=np.float32)
            layer.set_weights(weights)
    return model


@cache
def fer_emotion_net() -> KerasModel:
    """fer's mini-Xception (64x64 grey in [-1, 1], softmax over `FER_CLASSES`), loaded once."""
    from impressions import media

    return load_keras_hdf5(media.fer_emotion_model())
