"""Front-end throughput against the tools users would otherwise use, measured in one run.

LogMel (batched, torch) vs librosa.feature.melspectrogram (clip by clip) on the same clips with the
same parameters; KaldiFbank (one batched pass) vs transformers' ASTFeatureExtractor and vs
torchaudio.compliance.kaldi.fbank called clip by clip (what KaldiFbank did before). Prints clips/s,
the ratio and the largest difference between the outputs.

    .venv/bin/python benchmarks/bench_frontends.py [--clips 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import time

import librosa
import numpy as np
import torch
import torchaudio
from transformers import ASTFeatureExtractor

from zskit.audio import KaldiFbank, KaldiFbankConfig, LogMel, LogMelConfig


def best_of(fn, repeats: int = 3) -> tuple[float, object]:
    """The fastest of `repeats` timed calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch threads: {torch.get_num_threads()}; {args.clips} clips of {args.seconds:g} s")

    # LogMel vs librosa: slaney mel, power 2, centred frames, natural log with offset.
    cfg = LogMelConfig(sample_rate=32000, n_fft=1024, win_length=1024, hop_length=320, n_mels=128,
                       f_min=0.0, f_max=16000.0, mel_scale="slaney", mel_norm="slaney", power=2.0,
                       center=True, log="log", log_offset=1e-5)
    wav = rng.standard_normal((args.clips, int(cfg.sample_rate * args.seconds))).astype(np.float32) * 0.1
    front = LogMel(cfg)
    x = torch.from_numpy(wav)
    with torch.inference_mode():
        t_zs, ours = best_of(lambda: front(x))

    def with_librosa():
        return np.stack([np.log(librosa.feature.melspectrogram(
            y=w, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
            fmin=cfg.f_min, fmax=cfg.f_max, power=cfg.power, htk=False, norm="slaney", center=True,
            pad_mode="reflect") + cfg.log_offset) for w in wav])

    t_lr, ref = best_of(with_librosa)
    diff = float(np.abs(ours.numpy() - ref).max())
    print(f"LogMel      {args.clips / t_zs:8.1f} clips/s | librosa              {args.clips / t_lr:8.1f} clips/s"
          f" | ratio {t_lr / t_zs:5.2f}x | max |diff| {diff:.2e} (log domain)")

    # KaldiFbank vs ASTFeatureExtractor, 16 kHz.
    kcfg = KaldiFbankConfig.ast()
    wav16 = rng.standard_normal((args.clips, int(16000 * args.seconds))).astype(np.float32) * 0.1
    fbank = KaldiFbank(kcfg)
    extractor = ASTFeatureExtractor()
    with torch.inference_mode():
        t_kf, ours = best_of(lambda: fbank(torch.from_numpy(wav16)))
    t_ast, ref = best_of(lambda: extractor(list(wav16), sampling_rate=16000, return_tensors="np")["input_values"])
    diff = float(np.abs(ours.numpy() - ref).max())
    print(f"KaldiFbank  {args.clips / t_kf:8.1f} clips/s | ASTFeatureExtractor  {args.clips / t_ast:8.1f} clips/s"
          f" | ratio {t_ast / t_kf:5.2f}x | max |diff| {diff:.2e}")

    def per_clip():  # kaldi.fbank on each clip, then AST's cut/pad and normalisation
        out = []
        for w in torch.from_numpy(wav16):
            f = torchaudio.compliance.kaldi.fbank(
                w[None], sample_frequency=16000.0, num_mel_bins=kcfg.num_mel_bins, window_type="hanning",
                dither=0.0, htk_compat=True, use_energy=False, frame_shift=10.0)[: kcfg.target_length]
            out.append(torch.nn.functional.pad(f, (0, 0, 0, kcfg.target_length - f.shape[0])))
        return (torch.stack(out) - kcfg.norm_mean) / (2 * kcfg.norm_std)

    with torch.inference_mode():
        t_pc, ref = best_of(per_clip)
    diff = float((ours - ref).abs().max())
    print(f"KaldiFbank  {args.clips / t_kf:8.1f} clips/s | kaldi.fbank per clip {args.clips / t_pc:8.1f} clips/s"
          f" | ratio {t_pc / t_kf:5.2f}x | max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
