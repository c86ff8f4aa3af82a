"""Spectrogram front ends as ``nn.Module``s configured by frozen dataclasses.

Three front ends, each batched and device-agnostic (filter banks and windows are non-persistent
buffers that move with ``.to(device)``; no numpy in ``forward``):

- ``LogMel(LogMelConfig)``: waveforms ``(..., T)`` -> log-mel ``(..., n_mels, frames)``.
  Presets for PaSST, PANNs CNN14 (32 kHz and 16 kHz), paper 4's retrieval system, YAMNet and VGGish.
- ``KaldiFbank(KaldiFbankConfig)``: AST's Kaldi-compatible filter bank, ``(B, T)`` ->
  ``(B, frames, n_mels)`` (time first, as AST expects), padded or cut to ``target_length`` frames and
  normalised with the data set's statistics.
- ``LinearSpectrogram(LinearSpectrogramConfig)``: linear-frequency (log-)magnitude spectrogram
  ``(..., n_fft // 2 + 1, frames)`` for paper 5.

``build_frontend(cfg)`` returns the module that matches a config.

Front ends compute in float32 (float64 input stays float64) with autocast switched off inside
them: under ``torch.autocast`` (bf16/fp16) the STFT, mel matrix and log would otherwise lose most
of their precision. Their output is float32 whatever the surrounding autocast.

Framing convention of ``LogMel`` and ``LinearSpectrogram``: with ``center=True`` frame ``t`` is
centred on sample ``t * hop_length`` after padding ``n_fft // 2`` samples on each side, exactly as
``torch.stft`` and ``librosa`` do (``1 + T // hop_length`` frames). With ``center=False`` a frame is
``win_length`` samples starting at ``t * hop_length``, zero-padded to ``n_fft`` for the FFT, as in
TensorFlow's ``tf.signal.stft``, Kaldi and VGGish/YAMNet (``1 + (T - win_length) // hop_length``
frames); ``librosa``/``torch`` with ``center=False`` differ from this only when
``win_length < n_fft``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from zskit.errors import ConfigError

__all__ = [
    "LOGMEL_PRESETS",
    "KaldiFbank",
    "KaldiFbankConfig",
    "LinearSpectrogram",
    "LinearSpectrogramConfig",
    "LogMel",
    "LogMelConfig",
    "build_frontend",
    "mel_filterbank",
]

_WINDOWS = ("hann", "hamming")
_PAD_MODES = ("reflect", "constant")
_MEL_SCALES = ("htk", "slaney", "kaldi")
# torchaudio.compliance.kaldi.fbank's fixed settings that KaldiFbankConfig does not expose
_KALDI_PREEMPHASIS = 0.97
_KALDI_LOW_FREQ = 20.0
_KALDI_BLACKMAN = 0.42


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; choose one of {choices}.")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name}={value!r} must be positive; pass a value > 0.")


def _check_stft(sample_rate: int, n_fft: int, win_length: int | None, hop_length: int,
                window: str, pad_mode: str) -> None:
    for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft), ("hop_length", hop_length)):
        _check_positive(name, value)
    if win_length is not None and not 0 < win_length <= n_fft:
        raise ConfigError(
            f"win_length={win_length} must lie in 1..n_fft={n_fft}; raise n_fft or shorten the window."
        )
    _check_choice("window", window, _WINDOWS)
    _check_choice("pad_mode", pad_mode, _PAD_MODES)


@dataclass(frozen=True)
class LogMelConfig:
    """Settings of a log-mel front end; change fields with ``dataclasses.replace``.

    ``mel_scale``: ``'slaney'`` or ``'htk'`` give librosa/torchaudio filters (triangles linear in
    Hz between mel-spaced edges); ``'kaldi'`` gives triangles linear in the HTK mel domain, as in
    Kaldi, TensorFlow's ``linear_to_mel_weight_matrix`` (VGGish, YAMNet) and PaSST.
    ``log``: ``'log'`` is ``ln(mel + log_offset)``; ``'db'`` is ``(20 / power) * log10(max(mel,
    amin))`` minus the same of ``ref``, floored at ``max - top_db`` per example when ``top_db`` is
    set (librosa's ``power_to_db`` for ``power=2``); ``'none'`` keeps the linear mel energies.
    The result is finally standardised as ``(x - norm_mean) / norm_std``.
    ``preemphasis > 0`` applies ``y[n] = x[n + 1] - c * x[n]`` first (PaSST), dropping one sample.
    """

    sample_rate: int = 32000
    n_fft: int = 1024
    win_length: int | None = None  # None: n_fft
    hop_length: int = 320
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None: sample_rate / 2
    window: str = "hann"  # 'hann' | 'hamming'
    periodic: bool = True  # periodic (FFT) window; False: symmetric
    center: bool = True
    pad_mode: str = "reflect"  # 'reflect' | 'constant' (used when center=True)
    power: float = 2.0  # 1: magnitude, 2: power
    preemphasis: float = 0.0
    mel_scale: str = "slaney"  # 'htk' | 'slaney' | 'kaldi'
    mel_norm: str | None = "slaney"  # None | 'slaney' (area normalisation; not with 'kaldi')
    log: str = "log"  # 'log' | 'db' | 'none'
    log_offset: float = 1e-5
    amin: float = 1e-10
    ref: float = 1.0
    top_db: float | None = None
    norm_mean: float = 0.0
    norm_std: float = 1.0

    def __post_init__(self) -> None:
        _check_stft(self.sample_rate, self.n_fft, self.win_length, self.hop_length, self.window,
                    self.pad_mode)
        _check_positive("n_mels", self.n_mels)
        _check_positive("power", self.power)
        _check_positive("norm_std", self.norm_std)
        _check_choice("mel_scale", self.mel_scale, _MEL_SCALES)
        _check_choice("mel_norm", self.mel_norm, (None, "slaney"))
        _check_choice("log", self.log, ("log", "db", "none"))
        if self.mel_scale == "kaldi" and self.mel_norm is not None:
            raise ConfigError("mel_scale='kaldi' has no area normalisation; set mel_norm=None.")
        if not 0 <= self.f_min < self.fmax <= self.sample_rate / 2:
            raise ConfigError(
                f"need 0 <= f_min ({self.f_min}) < f_max ({self.fmax}) <= sample_rate / 2 "
                f"({self.sample_rate / 2}); adjust f_min/f_max."
            )
        if self.log == "log":
            _check_positive("log_offset", self.log_offset)
        if self.log == "db":
            _check_positive("amin", self.amin)
            if self.top_db is not None:
                _check_positive("top_db", self.top_db)
        if not 0 <= self.preemphasis < 1:
            raise ConfigError(f"preemphasis={self.preemphasis} must lie in [0, 1).")

    @property
    def win(self) -> int:
        """The window length in samples."""
        return self.win_length or self.n_fft

    @property
    def fmax(self) -> float:
        """The upper edge of the mel filters in Hz."""
        return self.sample_rate / 2 if self.f_max is None else self.f_max

    def num_frames(self, num_samples: int) -> int:
        """How many frames ``LogMel`` returns for a waveform of ``num_samples`` samples."""
        n = num_samples - (1 if self.preemphasis > 0 else 0)
        return _num_frames(n, self.n_fft, self.win, self.hop_length, self.center)

    @classmethod
    def passt(cls) -> LogMelConfig:
        """PaSST (hear21passt ``AugmentMelSTFT`` in eval mode): 32 kHz, n_fft 1024, window 800
        (symmetric Hann), hop 320, pre-emphasis 0.97, power, 128 Kaldi mel bins 0-15000 Hz
        (``fmax = sr / 2 - fmax_aug_range / 2`` with range 2000), ``ln(mel + 1e-5)``, then
        ``(x + 4.5) / 5``."""
        return cls(sample_rate=32000, n_fft=1024, win_length=800, hop_length=320, n_mels=128,
                   f_min=0.0, f_max=15000.0, periodic=False, center=True, pad_mode="reflect",
                   power=2.0, preemphasis=0.97, mel_scale="kaldi", mel_norm=None, log="log",
                   log_offset=1e-5, norm_mean=-4.5, norm_std=5.0)

    @classmethod
    def cnn14(cls) -> LogMelConfig:
        """PANNs CNN14 at 32 kHz: n_fft = window 1024, hop 320, periodic Hann, reflect-centred,
        power, 64 slaney mels (librosa defaults) 50-14000 Hz, ``power_to_db`` (ref 1, amin 1e-10,
        no top_db)."""
        return cls(sample_rate=32000, n_fft=1024, win_length=1024, hop_length=320, n_mels=64,
                   f_min=50.0, f_max=14000.0, mel_scale="slaney", mel_norm="slaney", log="db",
                   amin=1e-10, ref=1.0, top_db=None)

    @classmethod
    def cnn14_16k(cls) -> LogMelConfig:
        """PANNs CNN14 at 16 kHz (paper 3): window 512 (32 ms), hop 160 (10 ms), 64 mels 50-8000 Hz,
        otherwise as ``cnn14``."""
        return dataclasses.replace(cls.cnn14(), sample_rate=16000, n_fft=512, win_length=512,
                                   hop_length=160, f_max=8000.0)

    @classmethod
    def paper4(cls) -> LogMelConfig:
        """Paper 4 (PaSST retrieval): 32 kHz, 128 mels, n_fft 1024, hop 320, standardised with
        global statistics. The paper gives no more; we assume its PaSST front end, i.e. ``passt``."""
        return cls.passt()

    @classmethod
    def yamnet(cls) -> LogMelConfig:
        """YAMNet: 16 kHz, 25 ms periodic Hann window (400), 10 ms hop (160), n_fft 512, no centre
        padding, magnitude, 64 HTK mel bands 125-7500 Hz triangular in mel, ``ln(mel + 0.001)``."""
        return cls(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64,
                   f_min=125.0, f_max=7500.0, periodic=True, center=False, power=1.0,
                   mel_scale="kaldi", mel_norm=None, log="log", log_offset=0.001)

    @classmethod
    def vggish(cls) -> LogMelConfig:
        """VGGish: as ``yamnet`` but ``ln(mel + 0.01)``."""
        return dataclasses.replace(cls.yamnet(), log_offset=0.01)

    @classmethod
    def preset(cls, name: str) -> LogMelConfig:
        """A preset by name: one of ``LOGMEL_PRESETS``."""
        if name not in LOGMEL_PRESETS:
            raise ConfigError(f"unknown log-mel preset {name!r}; choose one of {LOGMEL_PRESETS}.")
        return getattr(cls, name)()


LOGMEL_PRESETS: tuple[str, ...] = ("passt", "cnn14", "cnn14_16k", "paper4", "yamnet", "vggish")


@dataclass(frozen=True)
class LinearSpectrogramConfig:
    """A linear-frequency spectrogram (paper 5 feeds image and audio CNNs with these).

    Defaults (our choice; the paper does not state them): 32 kHz, n_fft = window 1024 (32 ms), hop
    320 (10 ms), periodic Hann, centred, magnitude, ``log1p`` compression. ``log``: ``'log1p'`` is
    ``ln(1 + S)``, ``'db'`` as in ``LogMelConfig``, ``'none'`` keeps ``S``. Output is standardised
    as ``(x - norm_mean) / norm_std``.
    """

    sample_rate: int = 32000
    n_fft: int = 1024
    win_length: int | None = None
    hop_length: int = 320
    window: str = "hann"
    periodic: bool = True
    center: bool = True
    pad_mode: str = "reflect"
    power: float = 1.0
    log: str = "log1p"  # 'log1p' | 'db' | 'none'
    amin: float = 1e-10
    ref: float = 1.0
    top_db: float | None = 80.0
    norm_mean: float = 0.0
    norm_std: float = 1.0

    def __post_init__(self) -> None:
        _check_stft(self.sample_rate, self.n_fft, self.win_length, self.hop_length, self.window,
                    self.pad_mode)
        _check_positive("power", self.power)
        _check_positive("norm_std", self.norm_std)
        _check_choice("log", self.log, ("log1p", "db", "none"))
        if self.log == "db":
            _check_positive("amin", self.amin)
            if self.top_db is not None:
                _check_positive("top_db", self.top_db)

    @property
    def win(self) -> int:
        """The window length in samples."""
        return self.win_length or self.n_fft

    @property
    def n_freqs(self) -> int:
        """Frequency bins of the output (``n_fft // 2 + 1``)."""
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """How many frames ``LinearSpectrogram`` returns for ``num_samples`` samples."""
        return _num_frames(num_samples, self.n_fft, self.win, self.hop_length, self.center)


@dataclass(frozen=True)
class KaldiFbankConfig:
    """AST's input features: Kaldi's filter bank (``torchaudio.compliance.kaldi.fbank``), then
    pad/cut and normalise.

    Defaults are AST's AudioSet recipe (16 kHz, 128 bins, 25 ms Hanning window, 10 ms shift, no
    dither, no energy, ``htk_compat``; 1024 frames for 10 s; mean -4.2677393, std 4.5689974). The
    window is the one of AST's released code and checkpoints; paper 2's text says Hamming.
    Normalisation is AST's ``(fbank - norm_mean) / (2 * norm_std)`` (mean 0, std 0.5); set
    ``norm_mean=None`` to skip it. ``target_length=None`` keeps the natural number of frames.
    Kaldi's per-frame DC removal makes AST's whole-clip mean subtraction redundant, so it is not done.
    ``dither`` (Gaussian noise of that standard deviation on the float samples, as
    ``kaldi.fbank`` adds it) applies in training mode only, so evaluation features stay deterministic.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    window_type: str = "hanning"
    dither: float = 0.0
    htk_compat: bool = True
    use_energy: bool = False
    target_length: int | None = 1024
    norm_mean: float | None = -4.2677393
    norm_std: float = 4.5689974

    def __post_init__(self) -> None:
        for name in ("sample_rate", "num_mel_bins", "frame_length_ms", "frame_shift_ms", "norm_std"):
            _check_positive(name, getattr(self, name))
        _check_choice("window_type", self.window_type,
                      ("hanning", "hamming", "povey", "rectangular", "blackman"))
        if self.target_length is not None:
            _check_positive("target_length", self.target_length)
        if self.frame_length < 2 or self.frame_shift < 1:
            raise ConfigError(
                f"frame_length_ms={self.frame_length_ms} and frame_shift_ms={self.frame_shift_ms} at "
                f"{self.sample_rate} Hz give frames of {self.frame_length} samples every "
                f"{self.frame_shift}; need at least 2 and 1 (AST: 25 ms every 10 ms at 16 kHz).")

    @property
    def frame_length(self) -> int:
        """Window length in samples."""
        return int(self.sample_rate * self.frame_length_ms / 1000)

    @property
    def frame_shift(self) -> int:
        """Frame shift in samples (rounded down, as Kaldi does)."""
        return int(self.sample_rate * self.frame_shift_ms / 1000)

    @classmethod
    def ast(cls, target_length: int = 1024) -> KaldiFbankConfig:
        """AST on AudioSet (1024 frames = 10.24 s)."""
        return cls(target_length=target_length)

    @classmethod
    def ast_esc50(cls) -> KaldiFbankConfig:
        """AST's ESC-50 recipe: 512 frames, ESC-50 statistics."""
        return cls(target_length=512, norm_mean=-6.6268077, norm_std=5.358466)

    @classmethod
    def ast_speechcommands(cls) -> KaldiFbankConfig:
        """AST's Speech Commands V2 recipe: 128 frames, its statistics."""
        return cls(target_length=128, norm_mean=-6.845978, norm_std=5.5654526)


def _num_frames(num_samples: int, n_fft: int, win: int, hop: int, center: bool) -> int:
    if center:
        return 1 + (num_samples + 2 * (n_fft // 2) - n_fft) // hop
    return max(0, 1 + (num_samples - win) // hop)


def _window(kind: str, length: int, periodic: bool) -> torch.Tensor:
    fn = torch.hann_window if kind == "hann" else torch.hamming_window
    return fn(length, periodic=periodic, dtype=torch.float32)


def _no_autocast(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """A context that switches autocast off on ``x``'s device (front ends compute in float32);
    nothing to switch off on devices without autocast (e.g. ``meta``)."""
    available = getattr(torch.amp, "is_autocast_available", None)  # torch >= 2.4
    if x.device.type == "meta" or (available is not None and not available(x.device.type)):
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(x):
        raise ConfigError(f"expected a torch.Tensor of waveforms, got {type(x).__name__}; "
                          "convert it with torch.as_tensor(x, dtype=torch.float32).")
    if x.dtype in (torch.float32, torch.float64):
        return x
    if not x.is_floating_point():  # a cast alone would keep integer PCM's scale (x 32768 for int16)
        raise ConfigError(f"waveforms of dtype {x.dtype}: front ends take float samples in [-1, 1]; "
                          "scale integer PCM first (int16: x.float() / 32768) or read files with "
                          "zskit.audio.load_audio.")
    return x.float()


def _frames_spectrum(x: torch.Tensor, window: torch.Tensor, n_fft: int, hop: int, center: bool,
                     pad_mode: str, power: float) -> torch.Tensor:
    """``|STFT|^power`` of ``x`` (B, T) as (B, n_fft // 2 + 1, frames); see the module docstring."""
    win = window.shape[0]
    num_samples = x.shape[-1]
    window = window.to(x.dtype)
    if center and pad_mode == "reflect" and num_samples <= n_fft // 2:
        raise ConfigError(
            f"a waveform of {num_samples} samples is too short for reflect padding of {n_fft // 2}; "
            "zero-pad it first (zskit.audio.center_pad) or use pad_mode='constant'."
        )
    if not center and num_samples < win:
        raise ConfigError(
            f"a waveform of {num_samples} samples is shorter than one window ({win} samples); "
            "zero-pad it first (zskit.audio.center_pad) or use center=True."
        )
    if center or win == n_fft:  # torch.stft frames exactly as documented here
        spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=center,
                          pad_mode=pad_mode, return_complex=True)
    else:  # frames of win samples, zero-padded to n_fft (TensorFlow/Kaldi)
        frames = x.unfold(-1, win, hop) * window
        spec = torch.fft.rfft(frames, n=n_fft).transpose(-1, -2)
    if power == 2.0:  # |X|^2 without the square root abs takes (a third of the time here)
        return spec.real.square() + spec.imag.square()
    spec = spec.abs()
    return spec.pow(power) if power != 1.0 else spec


def _to_db(x: torch.Tensor, power: float, amin: float, ref: float, top_db: float | None,
           n_leading: int) -> torch.Tensor:
    mult = 20.0 / power
    db = mult * torch.log10(x.clamp(min=amin)) - mult * math.log10(max(amin, ref))
    if top_db is not None:
        peak = db.amax(dim=tuple(range(n_leading, db.ndim)), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def _flatten_batch(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    if x.ndim == 0:
        raise ConfigError("expected waveforms shaped (..., T), got a scalar tensor.")
    return x.reshape(-1, x.shape[-1]), tuple(x.shape[:-1])


_CPU_CHUNK_ELEMENTS = 1 << 20  # frame-tensor elements (frames x FFT size) computed at once on a CPU


def _cpu_chunks(x: torch.Tensor, clip_elements: int) -> list[slice]:
    """Slices of the clips of ``x`` (B, T) to compute together: on a CPU, chunks of about
    ``_CPU_CHUNK_ELEMENTS`` frame elements, because a whole batch's frame tensors overflow the
    caches (measured on 10 s clips with one thread: 100 clips at once ran at 0.4x the speed of
    one or two at a time, for LogMel and KaldiFbank alike); on a GPU, the whole batch."""
    chunk = max(1, _CPU_CHUNK_ELEMENTS // max(1, clip_elements))
    if x.device.type != "cpu":
        chunk = x.shape[0]
    return [slice(i, i + chunk) for i in range(0, x.shape[0], chunk)]


class _STFTFrontend(nn.Module):
    """What LogMel and LinearSpectrogram share: float input, no autocast, any leading batch
    dimensions, CPU batches in cache-sized chunks; subclasses give ``_compute`` on ``(B, T)``."""

    cfg: LogMelConfig | LinearSpectrogramConfig

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_float(x)
        with _no_autocast(x):
            x, lead = _flatten_batch(x)
            if x.shape[0] == 0:  # FFTs reject empty batches: the shape of one clip's result
                out = self._compute(x.new_zeros((1, x.shape[-1])))[:0]
            else:
                chunks = _cpu_chunks(x, self.cfg.num_frames(x.shape[-1]) * self.cfg.n_fft)
                out = torch.cat([self._compute(x[c]) for c in chunks])
        return out.reshape(*lead, *out.shape[-2:])

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LogMel(_STFTFrontend):
    """Log-mel spectrogram: waveforms ``(..., T)`` -> ``(..., n_mels, frames)``.

    Accepts float32/float64 (other float dtypes are cast to float32; integer PCM is a
    ``ConfigError``) on any device. The filter bank
    ``mel_fb`` is ``(n_fft // 2 + 1, n_mels)``.
    """

    def __init__(self, cfg: LogMelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LogMelConfig()
        self.register_buffer("window", _window(self.cfg.window, self.cfg.win, self.cfg.periodic),
                             persistent=False)
        self.register_buffer("mel_fb", mel_filterbank(self.cfg), persistent=False)

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if cfg.preemphasis > 0:
            x = x[..., 1:] - cfg.preemphasis * x[..., :-1]
        spec = _frames_spectrum(x, self.window, cfg.n_fft, cfg.hop_length, cfg.center,
                                cfg.pad_mode, cfg.power)
        mel = torch.matmul(self.mel_fb.to(spec.dtype).T, spec)
        if cfg.log == "log":
            mel = torch.log(mel + cfg.log_offset)
        elif cfg.log == "db":
            mel = _to_db(mel, cfg.power, cfg.amin, cfg.ref, cfg.top_db, n_leading=1)
        if cfg.norm_mean != 0.0 or cfg.norm_std != 1.0:
            mel = (mel - cfg.norm_mean) / cfg.norm_std
        return mel

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"sr={c.sample_rate}, n_fft={c.n_fft}, win={c.win}, hop={c.hop_length}, "
                f"n_mels={c.n_mels}, mel_scale={c.mel_scale}, log={c.log}")


def mel_filterbank(cfg: LogMelConfig) -> torch.Tensor:
    """The ``(n_fft // 2 + 1, n_mels)`` float32 mel filter bank of ``cfg``."""
    n_freqs = cfg.n_fft // 2 + 1
    if cfg.mel_scale == "kaldi":
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(
            cfg.n_mels, cfg.n_fft, float(cfg.sample_rate), float(cfg.f_min), float(cfg.fmax),
            100.0, -500.0, 1.0,  # VTLN settings with warp factor 1.0: no warping
        )
        fb = nn.functional.pad(banks, (0, 1)).T  # Kaldi leaves out the Nyquist bin
    else:
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs, float(cfg.f_min), float(cfg.fmax), cfg.n_mels, cfg.sample_rate,
            norm=cfg.mel_norm, mel_scale=cfg.mel_scale,
        )
    return fb.to(torch.float32).contiguous()


class LinearSpectrogram(_STFTFrontend):
    """Linear-frequency spectrogram: waveforms ``(..., T)`` -> ``(..., n_fft // 2 + 1, frames)``."""

    def __init__(self, cfg: LinearSpectrogramConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LinearSpectrogramConfig()
        self.register_buffer("window", _window(self.cfg.window, self.cfg.win, self.cfg.periodic),
                             persistent=False)

    def _compute(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        spec = _frames_spectrum(x, self.window, cfg.n_fft, cfg.hop_length, cfg.center,
                                cfg.pad_mode, cfg.power)
        if cfg.log == "log1p":
            spec = torch.log1p(spec)
        elif cfg.log == "db":
            spec = _to_db(spec, cfg.power, cfg.amin, cfg.ref, cfg.top_db, n_leading=1)
        if cfg.norm_mean != 0.0 or cfg.norm_std != 1.0:
            spec = (spec - cfg.norm_mean) / cfg.norm_std
        return spec


def _kaldi_window(kind: str, length: int, dtype: torch.dtype) -> torch.Tensor:
    """Kaldi's analysis windows (symmetric), as ``torchaudio.compliance.kaldi`` builds them."""
    if kind in ("hanning", "povey"):
        window = torch.hann_window(length, periodic=False, dtype=dtype)
        return window.pow(0.85) if kind == "povey" else window
    if kind == "hamming":
        return torch.hamming_window(length, periodic=False, alpha=0.54, beta=0.46, dtype=dtype)
    if kind == "rectangular":
        return torch.ones(length, dtype=dtype)
    n = torch.arange(length, dtype=dtype) * (2 * math.pi / (length - 1))  # blackman
    return _KALDI_BLACKMAN - 0.5 * torch.cos(n) + (0.5 - _KALDI_BLACKMAN) * torch.cos(2 * n)


class KaldiFbank(nn.Module):
    """AST's filter bank: waveforms ``(B, T)`` or ``(T,)`` -> ``(B, frames, num_mel_bins)``.

    Time comes before frequency (AST's layout). Computes what ``torchaudio.compliance.kaldi.fbank``
    computes clip by clip (snip-edges framing, per-frame DC removal, pre-emphasis 0.97, the window,
    a power-of-two FFT, Kaldi's mel banks from 20 Hz to Nyquist, ``log(max(x, eps))``), but for the
    whole batch in one pass, with the window and mel banks built once as buffers: calling
    ``fbank`` per clip rebuilds both every time and runs many tiny ops, which made it the slowest
    step of notebook 02. Only the frames ``target_length`` keeps are computed. Features are
    zero-padded or cut at the end to ``target_length`` frames in the log domain, then normalised
    (padding becomes ``-norm_mean / (2 * norm_std)``, as in AST). A 1-D input gives
    ``(1, frames, mel)``.
    """

    def __init__(self, cfg: KaldiFbankConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or KaldiFbankConfig()
        self.shift = self.cfg.frame_shift
        self.n_fft = 1 << (self.cfg.frame_length - 1).bit_length()  # Kaldi: next power of two
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(  # fbank's defaults: 20 Hz to
            self.cfg.num_mel_bins, self.n_fft, float(self.cfg.sample_rate),  # Nyquist, no VTLN
            _KALDI_LOW_FREQ, 0.0, 100.0, -500.0, 1.0)
        self.register_buffer("window", _kaldi_window(self.cfg.window_type, self.cfg.frame_length,
                                                     torch.float32), persistent=False)
        self.register_buffer("mel_fb", nn.functional.pad(banks, (0, 1)).T.contiguous(),
                             persistent=False)  # (n_fft // 2 + 1, mels); Kaldi skips Nyquist

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Features of ``x``; with ``lengths`` (real samples per clip of a padded batch), each
        clip's features are those it gets alone, zero-padded to one frame if shorter."""
        cfg = self.cfg
        x = _as_float(x)
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.ndim != 2:
            raise ConfigError(f"KaldiFbank expects waveforms shaped (B, T) or (T,), got {tuple(x.shape)}.")
        if x.shape[-1] < cfg.frame_length:
            raise ConfigError(
                f"waveforms of {x.shape[-1]} samples are shorter than one {cfg.frame_length_ms} ms "
                f"frame ({cfg.frame_length} samples); zero-pad them first (zskit.audio.center_pad)."
            )
        if lengths is not None and tuple(lengths.shape) != (x.shape[0],):
            raise ConfigError(f"lengths has shape {tuple(lengths.shape)}; give one sample count "
                              f"per clip, shape ({x.shape[0]},).")
        if x.shape[0] == 0:  # FFTs reject empty batches: the shape of one clip's features
            return self(x.new_zeros((1, x.shape[-1])))[:0]
        if lengths is not None and int(lengths.min()) < cfg.frame_length:  # a clip shorter
            # than one frame is zero-padded to it; longer clips' frames never see the padding
            x = x * (torch.arange(x.shape[-1], device=x.device)[None, :]
                     < lengths.to(x.device)[:, None])
        with _no_autocast(x):
            if cfg.target_length is not None:  # samples of the frames that are kept
                x = x[:, : (cfg.target_length - 1) * self.shift + cfg.frame_length]
            chunks = _cpu_chunks(x, self.num_frames(x.shape[-1]) * self.n_fft)
            return torch.cat([self._features(x[c], None if lengths is None else lengths[c])
                              for c in chunks])

    def _features(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Padded, normalised features of the clips of ``x``, ``x`` cut to its longest clip."""
        cfg = self.cfg
        frames = self.num_frames(x.shape[-1])
        if lengths is not None:
            x = x[:, :max(int(lengths.max()), cfg.frame_length)]
        out = self._fbank(x)
        if lengths is not None:  # frames are computed frame by frame, so those inside a clip do
            # not see the padding; zero (log domain) those past each clip's end
            ends = self.clip_frames(lengths).to(out.device)
            past = torch.arange(out.shape[1], device=out.device)[None, :] >= ends[:, None]
            out = out.masked_fill_(past[..., None], 0.0)
        target = frames if cfg.target_length is None else cfg.target_length
        if out.shape[1] < target:
            out = nn.functional.pad(out, (0, 0, 0, target - out.shape[1]))
        if cfg.norm_mean is not None:
            out = (out - cfg.norm_mean) / (2.0 * cfg.norm_std)
        return out

    def _fbank(self, x: torch.Tensor) -> torch.Tensor:
        """Kaldi's log filter bank (and energy) of every clip of ``x`` (B, T): (B, frames, bins)."""
        cfg = self.cfg
        frames = x.unfold(-1, cfg.frame_length, self.shift)  # (B, frames, frame_length)
        if cfg.dither != 0.0 and self.training:
            frames = frames + cfg.dither * torch.randn_like(frames)
        frames = frames - frames.mean(-1, keepdim=True)
        eps = torch.finfo(torch.float32).eps  # Kaldi's floor, whatever the dtype
        if cfg.use_energy:  # raw energy, before pre-emphasis, floored at log(1.0) as fbank does
            energy = frames.pow(2).sum(-1).clamp(min=eps).log().clamp(min=0.0)
        window = self.window
        if x.dtype == torch.float64:  # fbank builds the window in the input's dtype (cheap; no
            # float64 buffer, which some devices cannot hold)
            window = _kaldi_window(cfg.window_type, cfg.frame_length, x.dtype).to(x.device)
        # pre-emphasis (the first sample is its own predecessor), then the window, in one buffer
        # (x - 0.97 * previous, rounded as fbank rounds it: the lowest bins come from differences
        # of nearly equal numbers, where a fused multiply-subtract moved them by up to 1.2e-4)
        emphasised = torch.empty_like(frames)
        torch.mul(frames[..., :-1], _KALDI_PREEMPHASIS, out=emphasised[..., 1:])
        torch.mul(frames[..., :1], _KALDI_PREEMPHASIS, out=emphasised[..., :1])
        torch.sub(frames, emphasised, out=emphasised)
        spectrum = torch.fft.rfft(emphasised.mul_(window), n=self.n_fft)
        power = spectrum.real.square() + spectrum.imag.square()  # |X|^2 without the sqrt of abs
        out = torch.matmul(power, self.mel_fb.to(x.dtype)).clamp(min=eps).log()
        if cfg.use_energy:  # htk_compat puts the energy last, Kaldi first
            parts = (out, energy[..., None]) if cfg.htk_compat else (energy[..., None], out)
            out = torch.cat(parts, dim=-1)
        return out

    def num_frames(self, num_samples: int) -> int:
        """Frames before padding/cutting (Kaldi ``snip_edges``)."""
        return max(0, 1 + (num_samples - self.cfg.frame_length) // self.shift)

    def clip_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """The real frames of each clip of ``lengths`` samples (an int64 CPU tensor): a clip
        shorter than one frame is zero-padded to one, so it has one real frame, not none."""
        frame = self.cfg.frame_length
        return torch.tensor([self.num_frames(max(int(n), frame)) for n in lengths.tolist()])

    def extra_repr(self) -> str:
        c = self.cfg
        return (f"sr={c.sample_rate}, bins={c.num_mel_bins}, window={c.window_type}, "
                f"frames={c.target_length}")


FrontendConfig = LogMelConfig | KaldiFbankConfig | LinearSpectrogramConfig


def build_frontend(cfg: FrontendConfig) -> nn.Module:
    """The front end module for a ``LogMelConfig``, ``KaldiFbankConfig`` or ``LinearSpectrogramConfig``."""
    if isinstance(cfg, LogMelConfig):
        return LogMel(cfg)
    if isinstance(cfg, KaldiFbankConfig):
        return KaldiFbank(cfg)
    if isinstance(cfg, LinearSpectrogramConfig):
        return LinearSpectrogram(cfg)
    raise ConfigError(
        f"build_frontend got a {type(cfg).__name__}; pass a LogMelConfig, KaldiFbankConfig or "
        "LinearSpectrogramConfig."
    )
