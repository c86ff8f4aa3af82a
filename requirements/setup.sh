#!/usr/bin/env bash
# The README's set-up command: everything zskit and its tests need, on a fresh Linux machine.
#
# 1. Debian packages, when apt-get is usable (as root, or with password-less sudo). Each is
#    optional; without it zskit still runs and says what is missing:
#      chromium            the real-browser test (tests/test_browser.py) and PNG export of figures
#      fluid-soundfont-gm  FluidR3_GM.sf2, a more realistic SoundFont for the default corpus
#                          (otherwise TimGM6mb from pretty_midi is used)
#      wordnet-base        WordNet 3.0 for paper 5's synonym and hypernym caption noise
#                          (otherwise a built-in table)
# 2. A virtual environment .venv/ with the locked, tested package set and zskit in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(chromium fluid-soundfont-gm wordnet-base)

install_debian_packages() {
    command -v apt-get >/dev/null || { echo "setup: no apt-get; skipping ${DEBIAN_PACKAGES[*]}"; return; }
    local missing=() pkg
    for pkg in "${DEBIAN_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if sudo -n true 2>/dev/null; then sudo=(sudo -n); else
            echo "setup: not root and no password-less sudo; install by hand: apt-get install ${missing[*]}"
            return
        fi
    fi
    echo "setup: installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
        || echo "setup: apt-get failed; zskit works without ${missing[*]} (see the README)"
}

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: requirements/lock.txt needs Python 3.11 or newer, but python3 is" \
         "$(python3 -V 2>&1); put a Python 3.11 first on PATH and run this again." >&2
    exit 1
}
install_debian_packages
python3 -m venv .venv
.venv/bin/python -m pip install -q "uv==0.13.9"
.venv/bin/python -m uv pip install --python .venv/bin/python --compile-bytecode --no-deps \
    -r requirements/lock.txt -e .
