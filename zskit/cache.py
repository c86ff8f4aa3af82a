"""Embedding cache: run a frozen audio encoder once over a file list and keep its clip embeddings
in a memory-mapped float32 array on disk.

>>> emb = embed_manifest(encoder, corpus)  # np.memmap (N, D), read-only; row i = corpus.paths[i]

Layout of one cache, ``cache_dir / <encoder name> / <key>/``::

    key.json                        the key's parts (human-readable) and the row order (paths)
    emb_000000000-000000256.npy     a completed shard: rows 0..255 (kept if a run is interrupted)
    logits_000000000-000000256.npy  its logits (only with ``store_logits=True``)
    embeddings.npy                  all rows (N, D), merged once every shard exists
    logits.npy                      (N, C) with ``store_logits=True``
    complete.json                   the completion marker, written last
    .merge.lock                     held while a process merges (concurrent runs take turns)

Every file is written under a temporary name (``.<name>.<pid>.<random>.tmp``) and moved into
place with ``os.replace`` (``zskit.fileio.atomic_write``), so a visible file is always complete.
The key hashes:

- the cache format version, the encoder's name, class and pretrained tag (and that weight file's
  sha256, when its ``PretrainedCfg`` has one);
- a digest of the encoder's ``state_dict`` tensors (names, dtypes, shapes and bytes), computed once
  per cache object, so fine-tuned or re-initialised weights never reuse a stale cache;
- ``repr(encoder.cfg)`` (its front end, sample rate, sizes, ...);
- the segment settings, whether logits are stored and the autocast precision;
- the file list: each absolute path with its size and modification time in nanoseconds (cheap), or
  with a digest of its bytes when ``hash_contents=True`` (reads every file once more, but survives
  ``touch`` and copies that reset times).

Batch size, shard size, device and worker count are not part of the key: they must not change the
results (encoders honour ``lengths``, so padding does not leak into embeddings).

Under ``torchrun`` (one process per GPU or node) :meth:`EmbeddingCache.compute` splits the work:
rank r embeds shards r, r + W, r + 2W, ... of the W ranks into the shared cache folder, all ranks
wait for each other, rank 0 merges the shards into the one cache, and every rank returns the same
memory map. The cache folder must be on a file system that every rank sees (a shared disk or one
node); the result is identical to a single-process run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from zskit.audio.io import load_audio
from zskit.audio.segments import pad_batch, segment
from zskit.data.manifest import Corpus
from zskit.devices import module_device, resolve_amp, resolve_device
from zskit.errors import AudioLoadError, ConfigError, DataError
from zskit.fileio import atomic_write, process_lock, write_json
from zskit.paths import data_root
from zskit.train.distributed import DistInfo, barrier, setup_distributed

__all__ = [
    "CACHE_FORMAT_VERSION",
    "EmbeddingCache",
    "embed_manifest",
    "files_digest",
    "rank_shards",
    "state_dict_digest",
]

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1  # bump when the layout or the meaning of a key part changes
SHARD_SIZE = 256  # clips per shard
KEY_FILE, COMPLETE_FILE = "key.json", "complete.json"
EMBEDDINGS_FILE, LOGITS_FILE = "embeddings.npy", "logits.npy"
MERGE_LOCK = ".merge.lock"  # held while one process merges, so two never merge the same cache


def state_dict_digest(module: nn.Module) -> str:
    """A hex digest of ``module.state_dict()``: every entry's name, dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    for name, value in module.state_dict().items():
        if not torch.is_tensor(value):  # extra state of a custom module
            h.update(f"{name}|{value!r}\n".encode())
            continue
        t = value.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def files_digest(paths: Sequence[Path], contents: bool = False) -> str:
    """A hex digest of a file list: paths in order with size and mtime (ns), or with their bytes."""
    h = hashlib.blake2b(digest_size=16)
    for path in paths:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise AudioLoadError(
                f"audio file not found: {path}. Fix the path or drop the row before embedding."
            ) from None
        if contents:
            file_hash = hashlib.blake2b(digest_size=16)
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    file_hash.update(chunk)
            stamp = file_hash.hexdigest()
        else:
            stamp = str(st.st_mtime_ns)
        h.update(f"{path}\0{st.st_size}\0{stamp}\n".encode())
    return h.hexdigest()


def _resolve_paths(source: Corpus | pd.DataFrame | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(source, Corpus):
        paths = source.paths
    elif isinstance(source, pd.DataFrame):
        if "path" not in source.columns:
            raise DataError(
                f"the manifest has no 'path' column (columns: {list(source.columns)}); pass a "
                "Corpus (zskit.data.load_corpus) or a list of audio paths."
            )
        paths = [Path(p) for p in source["path"]]
    elif isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"got one path {source!r}; pass a list of audio paths, a manifest DataFrame or a "
            "Corpus (zskit.data.load_corpus(folder))."
        )
    else:
        paths = [Path(p) for p in source]
    if not paths:
        raise DataError("the file list is empty; pass at least one audio file to embed.")
    return [p.absolute() for p in paths]


def _amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """Autocast dtype for inference: bf16 (fp16 on older GPUs) on CUDA when ``amp``, else none."""
    return resolve_amp("auto", device)[0] if amp else None


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive int.")


def _seconds_to_samples(name: str, seconds: float, sample_rate: int) -> int:
    samples = round(float(seconds) * sample_rate)
    if not samples >= 1:
        raise ConfigError(
            f"{name}={seconds!r} s is less than one sample at {sample_rate} Hz; pass a positive "
            "duration in seconds (e.g. 10.0)."
        )
    return samples


class _AudioFiles(torch.utils.data.Dataset):
    """Waveforms ``(T,)`` of a file list at one sample rate (for DataLoader workers)."""

    def __init__(self, paths: Sequence[Path], sample_rate: int) -> None:
        self.paths, self.sample_rate = paths, sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_audio(self.paths[index], self.sample_rate)


def _save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically."""
    with atomic_write(path) as f:
        np.save(f, array)


def _load_npy(path: Path, remedy: str) -> np.memmap:
    """``np.load(path, mmap_mode="r")``; a truncated or foreign file is a DataError saying
    ``remedy`` (a copy cut short, a disk that filled up outside zskit's atomic writes)."""
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path} is damaged ({err}); {remedy}.") from err


class EmbeddingCache:
    """Clip embeddings of one encoder over one file list, computed once and memory-mapped.

    ``encoder`` follows the zskit audio-encoder contract (``cfg``, ``sample_rate``,
    ``forward_features(waveforms, lengths) -> EncoderOutput``). Creating the cache computes its key
    (weights digest, file stats) but runs nothing; :meth:`compute` embeds the missing shards and
    merges them; :attr:`embeddings` / :attr:`logits` open the result read-only.

    With ``segment_seconds`` each clip is cut into segments of that length (hop ``segment_hop``,
    default no overlap; the tail zero-padded and its real length passed as ``lengths``) and its
    embedding is the mean over its segments.
    """

    def __init__(self, encoder: nn.Module,
                 paths_or_corpus: Corpus | pd.DataFrame | Sequence[str | os.PathLike], *,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = 16,
                 segment_seconds: float | None = None, segment_hop: float | None = None,
                 device: str | torch.device = "auto", amp: bool = True, progress: bool = True,
                 num_workers: int = 0, store_logits: bool = False, shard_size: int = SHARD_SIZE,
                 hash_contents: bool = False, name: str | None = None) -> None:
        for arg, value in (("batch_size", batch_size), ("shard_size", shard_size)):
            _positive(arg, value)
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"num_workers={num_workers!r} must be an int >= 0.")
        if not isinstance(encoder, nn.Module):
            raise ConfigError(
                f"EmbeddingCache needs a torch nn.Module encoder (its weights are hashed into the "
                f"cache key and it is moved to the device), got {type(encoder).__name__}; use "
                "zskit.create_audio_encoder(name, pretrained=...) (for YAMNet: 'yamnet.audioset' "
                "instead of YamnetOnnx)."
            )
        cfg = getattr(encoder, "cfg", None)
        if cfg is None or not hasattr(cfg, "sample_rate"):
            raise ConfigError(
                f"{type(encoder).__name__} has no .cfg with a sample_rate; pass a zskit audio "
                "encoder (zskit.create_audio_encoder(name))."
            )
        self.encoder = encoder
        self.paths = _resolve_paths(paths_or_corpus)
        self.sample_rate = int(cfg.sample_rate)
        self.batch_size, self.shard_size, self.num_workers = batch_size, shard_size, num_workers
        self.progress, self.store_logits = progress, store_logits
        self.device = resolve_device(str(device))
        self.amp_dtype = _amp_dtype(self.device, amp)
        self.segment_length = self.segment_hop = None
        if segment_seconds is not None:
            self.segment_length = _seconds_to_samples("segment_seconds", segment_seconds,
                                                      self.sample_rate)
            self.segment_hop = self.segment_length if segment_hop is None else \
                _seconds_to_samples("segment_hop", segment_hop, self.sample_rate)
            if self.segment_hop > self.segment_length:
                raise ConfigError(f"segment_hop={segment_hop} s is longer than segment_seconds="
                                  f"{segment_seconds} s, which would skip audio; shorten the hop.")
        elif segment_hop is not None:
            raise ConfigError(f"segment_hop={segment_hop} needs segment_seconds; set both or neither.")
        pretrained = getattr(encoder, "pretrained_cfg", None)
        self.name = name or getattr(encoder, "encoder_name", None) or type(encoder).__name__.lower()
        self.parts: dict[str, Any] = {
            "format_version": CACHE_FORMAT_VERSION,
            "encoder": self.name,
            "encoder_class": f"{type(encoder).__module__}.{type(encoder).__qualname__}",
            "pretrained": getattr(pretrained, "tag", None),
            "pretrained_sha256": getattr(pretrained, "sha256", None),
            "weights_digest": state_dict_digest(encoder),
            "config": repr(cfg),
            "segment": None if self.segment_length is None else {
                "seconds": segment_seconds, "hop_seconds": segment_hop,
                "samples": self.segment_length, "hop_samples": self.segment_hop},
            "store_logits": bool(store_logits),
            "precision": str(self.amp_dtype or torch.float32).replace("torch.", ""),
            "files": {"count": len(self.paths), "fingerprint": "content" if hash_contents else
                      "size+mtime_ns", "digest": files_digest(self.paths, hash_contents)},
        }
        root = (Path(cache_dir).expanduser() if cache_dir is not None
                else data_root() / "cache" / "embeddings")
        self.key, self.directory = self._locate(root)
        if not store_logits:  # a complete cache of the same rows that also kept logits serves too
            self.parts["store_logits"] = True
            key, directory = self._locate(root)
            if (directory / COMPLETE_FILE).is_file():
                self.key, self.directory = key, directory
            else:
                self.parts["store_logits"] = False

    def _locate(self, root: Path) -> tuple[str, Path]:
        """The key of ``self.parts`` and the folder it names under ``root``."""
        key = hashlib.sha256(json.dumps(self.parts, sort_keys=True).encode()).hexdigest()[:16]
        return key, root / re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name) / key

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def complete(self) -> bool:
        """True once every row is embedded and merged (``complete.json`` exists)."""
        return (self.directory / COMPLETE_FILE).is_file()

    @property
    def embeddings(self) -> np.memmap:
        """The read-only ``(N, D)`` float32 embeddings; row ``i`` belongs to ``self.paths[i]``."""
        return self._open(EMBEDDINGS_FILE)

    @property
    def logits(self) -> np.memmap:
        """The read-only ``(N, C)`` float32 logits (needs ``store_logits=True``)."""
        if not self.store_logits:
            raise ConfigError("this cache stores no logits; create it with store_logits=True.")
        return self._open(LOGITS_FILE)

    def compute(self) -> EmbeddingCache:
        """Embed the rows whose shards are missing, then merge; a complete cache costs nothing.

        Under ``torchrun`` every rank calls this: each embeds its share of the shards, then rank 0
        merges them (see the module docstring); without torchrun one process does everything.
        """
        if self.complete:
            log.info("embedding cache hit: %s", self.directory)
            return self
        dist = setup_distributed(self.device.type)
        if dist.enabled and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", dist.local_rank)
        self.directory.mkdir(parents=True, exist_ok=True)
        if dist.is_main:
            write_json(self.directory / KEY_FILE, {
                "key": self.key, "parts": self.parts, "paths": [str(p) for p in self.paths]})
        shards = [(a, min(a + self.shard_size, len(self))) for a in range(0, len(self),
                                                                          self.shard_size)]
        owned = rank_shards(shards, dist)
        mine = [s for s in owned if not self._shard_done(s)]
        if mine:
            log.info("rank %d: embedding %d of %d shards into %s", dist.rank, len(mine),
                     len(shards), self.directory)
            self._embed_shards(mine, owned_rows=sum(b - a for a, b in owned),
                               progress=self.progress and dist.is_main)
        barrier(dist)  # every shard is on disk
        if dist.is_main:
            self._merge(shards, dist)
        barrier(dist)  # the merged cache is in place for every rank
        return self

    # -- internals -------------------------------------------------------------------------------

    def _shard_path(self, kind: str, shard: tuple[int, int]) -> Path:
        return self.directory / f"{kind}_{shard[0]:09d}-{shard[1]:09d}.npy"

    def _shard_done(self, shard: tuple[int, int]) -> bool:
        kinds = ("emb", "logits") if self.store_logits else ("emb",)
        return all(self._shard_path(k, shard).is_file() for k in kinds)

    def _open(self, filename: str) -> np.memmap:
        if not self.complete:
            raise DataError(f"the embedding cache {self.directory} is not complete; call "
                            ".compute() (or embed_manifest) first.")
        path = self.directory / filename
        if not path.is_file():
            raise DataError(f"{path} is missing although {COMPLETE_FILE} exists; delete "
                            f"{self.directory} and embed again.")
        array = _load_npy(path, f"delete {self.directory} and embed again")
        if array.ndim != 2 or array.shape[0] != len(self):
            shape = array.shape
            del array  # a traceback kept by the notebook must not keep the file mapped (Windows)
            raise DataError(f"{path} holds {shape}, not {len(self)} "
                            "rows; delete that folder and embed again.")
        return array

    def _load_batches(self, batches: list[list[int]]) -> Iterator[list[torch.Tensor]]:
        """Waveforms of each batch, loaded ahead of use: DataLoader workers or one thread."""
        if self.num_workers > 0:
            loader = torch.utils.data.DataLoader(
                _AudioFiles(self.paths, self.sample_rate), batch_sampler=batches,
                num_workers=self.num_workers, collate_fn=list)
            yield from loader
            return

        def load(rows: list[int]) -> list[torch.Tensor]:
            return [load_audio(self.paths[i], self.sample_rate) for i in rows]

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(load, batches[0])
            for nxt in [*batches[1:], None]:
                waves = pending.result()
                if nxt is not None:
                    pending = pool.submit(load, nxt)
                yield waves

    def _forward(self, x: torch.Tensor, lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, lengths = x.to(self.device), lengths.to(self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype,
                            enabled=self.amp_dtype is not None):
            fn = getattr(self.encoder, "forward_features", None)
            out = fn(x, lengths) if fn is not None else self.encoder(x, lengths)
        emb = out if torch.is_tensor(out) else out.embedding
        logits = None if torch.is_tensor(out) else out.logits
        if emb.ndim != 2 or emb.shape[0] != x.shape[0]:
            raise ConfigError(f"encoder {self.name!r} returned embeddings {tuple(emb.shape)} for a "
                              f"batch of {x.shape[0]}; it must return (batch, embed_dim).")
        if self.store_logits and logits is None:
            raise ConfigError(f"encoder {self.name!r} returns no logits; pass store_logits=False.")
        return emb.float().cpu(), None if logits is None else logits.float().cpu()

    def _embed_batch(self, waves: list[torch.Tensor]
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.segment_length is None:
            x, mask = pad_batch(waves)
            return self._forward(x, mask.sum(1))
        cut = [segment(w, self.segment_length, self.segment_hop) for w in waves]
        x = torch.cat([s for s, _ in cut])
        lengths = torch.cat([v for _, v in cut])
        owner = torch.repeat_interleave(torch.tensor([len(v) for _, v in cut]))
        outs = [self._forward(x[a:a + self.batch_size], lengths[a:a + self.batch_size])
                for a in range(0, len(x), self.batch_size)]
        counts = torch.bincount(owner, minlength=len(waves)).unsqueeze(1).float()

        def mean(parts: list[torch.Tensor]) -> torch.Tensor:
            out = torch.cat(parts)
            return out.new_zeros(len(waves), out.shape[1]).index_add_(0, owner, out) / counts

        emb = mean([e for e, _ in outs])
        return emb, None if outs[0][1] is None else mean([g for _, g in outs])

    def _embed_shards(self, missing: list[tuple[int, int]], owned_rows: int, progress: bool
                      ) -> None:
        """Embed the ``missing`` shards; the progress bar counts this rank's ``owned_rows``."""
        encoder = self.encoder
        was_training, origin = encoder.training, module_device(encoder)
        batches = [list(range(a, min(a + self.batch_size, stop)))
                   for start, stop in missing for a in range(start, stop, self.batch_size)]
        todo = sum(stop - start for start, stop in missing)
        bar = tqdm(total=owned_rows, initial=owned_rows - todo, unit="clip",
                   desc=f"embed {self.name}", disable=not progress)
        loaded = self._load_batches(batches)
        shard_iter = iter(missing)
        shard, emb_buf, logit_buf = None, None, None
        try:
            encoder.eval().to(self.device)
            with torch.inference_mode():
                for rows, waves in zip(batches, loaded):
                    if shard is None:
                        shard, emb_buf, logit_buf = next(shard_iter), None, None
                    emb, logits = self._embed_batch(waves)
                    n = shard[1] - shard[0]
                    if emb_buf is None:  # sizes are known after the shard's first batch
                        emb_buf = np.empty((n, emb.shape[1]), dtype=np.float32)
                        if self.store_logits:
                            logit_buf = np.empty((n, logits.shape[1]), dtype=np.float32)
                    a, b = rows[0] - shard[0], rows[-1] + 1 - shard[0]
                    emb_buf[a:b] = emb.numpy()
                    if self.store_logits:
                        logit_buf[a:b] = logits.numpy()
                    bar.update(len(rows))
                    if b == n:  # logits first: a shard counts as done once its "emb" file exists
                        if self.store_logits:
                            _save_npy(self._shard_path("logits", shard), logit_buf)
                        _save_npy(self._shard_path("emb", shard), emb_buf)
                        shard = None
        finally:
            loaded.close()
            bar.close()
            encoder.train(was_training)
            if origin is not None:
                encoder.to(origin)

    def _merge(self, shards: list[tuple[int, int]], dist: DistInfo) -> None:
        """Stream the shards into one ``.npy`` per output, move it into place, mark complete.

        Plain appends after a ``.npy`` header rather than writes into a memmap: a memmap keeps every
        written page resident in this process, so its RSS would grow with N.
        """
        if not self.complete:  # else another process (a second notebook, say) merged meanwhile
            with process_lock(self.directory / MERGE_LOCK, self.directory):
                if not self.complete:  # checked again: it may have merged while this one waited
                    self._merge_shards(shards, dist)
                    return
        self._drop_shards()  # rows this process embedded after the other one had merged

    def _merge_shards(self, shards: list[tuple[int, int]], dist: DistInfo) -> None:
        """:meth:`_merge` once its lock is held."""
        absent = [s for s in shards if not self._shard_done(s)]
        if absent:
            where = (f"the other {dist.world_size - 1} ranks wrote them where this one cannot "
                     "see them: put cache_dir on a file system shared by all ranks"
                     if dist.enabled else "delete the folder and embed again")
            raise DataError(f"{len(absent)} of {len(shards)} shards are missing from "
                            f"{self.directory} (first: rows {absent[0][0]}-{absent[0][1]}); "
                            f"{where}.")
        outputs = [("emb", EMBEDDINGS_FILE)] + ([("logits", LOGITS_FILE)] if self.store_logits
                                                else [])
        try:
            for kind, filename in outputs:
                self._merge_output(shards, kind, filename)
        except FileNotFoundError as err:  # a process that took no lock merged and cleaned up
            if self.complete:
                return
            raise DataError(f"{err.filename} vanished while the shards were merged; is another "
                            f"program deleting files in {self.directory}? Run again.") from None
        write_json(self.directory / COMPLETE_FILE, {"rows": len(self), "key": self.key,
                                                    "files": [f for _, f in outputs]})
        self._drop_shards()

    def _merge_output(self, shards: list[tuple[int, int]], kind: str, filename: str) -> None:
        """Stream the ``kind`` shards into ``filename`` (a ``.npy`` of all rows)."""
        redo = "delete it and run again (only the missing shards are embedded)"
        width = _load_npy(self._shard_path(kind, shards[0]), redo).shape[1]
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                  "fortran_order": False, "shape": (len(self), width)}
        with atomic_write(self.directory / filename) as f:
            np.lib.format.write_array_header_1_0(f, header)
            for shard in shards:
                path = self._shard_path(kind, shard)
                part = _load_npy(path, redo)
                if part.shape != (shard[1] - shard[0], width):
                    shape = part.shape
                    del part  # else the traceback keeps it mapped: undeletable on Windows
                    raise DataError(f"shard {path} holds {shape}, expected "
                                    f"{(shard[1] - shard[0], width)}; delete it and run again.")
                f.write(np.ascontiguousarray(part, dtype="<f4").data)
                del part

    def _drop_shards(self) -> None:
        """Delete the shard files, merged now (including shards of other shard sizes)."""
        for pattern in ("emb_*.npy", "logits_*.npy"):
            for path in self.directory.glob(pattern):
                path.unlink(missing_ok=True)


def rank_shards(shards: Sequence[tuple[int, int]], dist: DistInfo) -> list[tuple[int, int]]:
    """This rank's shards: every ``world_size``-th from ``rank``, chosen from the full list (not
    from the missing ones, which ranks could see at different moments) so that each shard has
    exactly one owner."""
    return list(shards[dist.rank::dist.world_size])


def embed_manifest(encoder: nn.Module,
                   paths_or_corpus: Corpus | pd.DataFrame | Sequence[str | os.PathLike], *,
                   cache_dir: str | os.PathLike | None = None, batch_size: int = 16,
                   segment_seconds: float | None = None, segment_hop: float | None = None,
                   device: str | torch.device = "auto", progress: bool = True,
                   num_workers: int = 0, **kwargs: Any) -> np.memmap:
    """Clip embeddings ``(N, D)`` of ``encoder`` over audio files, cached on disk (read-only memmap).

    ``paths_or_corpus``: a list of paths, a manifest DataFrame with a ``path`` column (relative to
    the working directory) or a :class:`~zskit.data.manifest.Corpus`. ``cache_dir`` defaults to
    ``data_root()/cache/embeddings``. Further keywords (``store_logits``, ``shard_size``, ``amp``,
    ``hash_contents``, ``name``) go to :class:`EmbeddingCache`.
    """
    cache = EmbeddingCache(encoder, paths_or_corpus, cache_dir=cache_dir, batch_size=batch_size,
                           segment_seconds=segment_seconds, segment_hop=segment_hop, device=device,
                           progress=progress, num_workers=num_workers, **kwargs)
    return cache.compute().embeddings
