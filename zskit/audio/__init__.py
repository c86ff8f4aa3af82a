"""Audio I/O, segment helpers, spectrogram front ends and batch augmentations."""

from zskit.audio.augment import RandomGain, RandomShift, SpecAugment, mix, mixup, mixup_pairs, shift
from zskit.audio.frontends import (
    LOGMEL_PRESETS,
    KaldiFbank,
    KaldiFbankConfig,
    LinearSpectrogram,
    LinearSpectrogramConfig,
    LogMel,
    LogMelConfig,
    build_frontend,
    mel_filterbank,
)
from zskit.audio.io import SAVE_FORMATS, AudioInfo, audio_info, load_audio, save_audio
from zskit.audio.segments import center_pad, pad_batch, random_crop, segment, segment_count

__all__ = [
    "LOGMEL_PRESETS",
    "SAVE_FORMATS",
    "AudioInfo",
    "KaldiFbank",
    "KaldiFbankConfig",
    "LinearSpectrogram",
    "LinearSpectrogramConfig",
    "LogMel",
    "LogMelConfig",
    "RandomGain",
    "RandomShift",
    "SpecAugment",
    "audio_info",
    "build_frontend",
    "center_pad",
    "load_audio",
    "mel_filterbank",
    "mix",
    "mixup",
    "mixup_pairs",
    "pad_batch",
    "random_crop",
    "save_audio",
    "segment",
    "segment_count",
    "shift",
]
