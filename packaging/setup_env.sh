#!/usr/bin/env bash
# Creates .venv in the repo (Python >= 3.11) and installs FloodLabel with its dependencies.
# Sourced by packaging/run.sh and packaging/test.sh. Re-installs only when pyproject.toml changed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
EXTRAS="${1:-}"

find_python() {
    for cand in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 &&
           "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$cand"; return 0
        fi
    done
    echo "FloodLabel needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

if [ ! -x "$VENV/bin/python" ]; then
    PY="$(find_python)"
    echo "[floodlabel] creating virtual environment in $VENV" >&2
    if ! "$PY" -m venv "$VENV"; then
        rm -rf "$VENV"
        echo "[floodlabel] could not create a virtual environment with $PY;" \
             "on Debian/Ubuntu install the venv module: sudo apt install python3.11-venv" >&2
        exit 1
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
fi

# Meta's SAM 2.1 (`sam2`, a source distribution) builds against the torch already in .venv (hence
# --no-build-isolation, after the main install) and without its optional CUDA extension (SAM2_BUILD_CUDA=0: it only
# speeds up the video predictor's mask post-processing, which FloodLabel does not use). hydra-core and iopath, its
# runtime dependencies, come from pyproject.toml. --no-build-isolation builds with the venv's own setuptools
# (>= 70.1 makes wheels by itself).
SAM2_SPEC="sam2==1.1.0"
install_sam2() {
    echo "[floodlabel] installing $SAM2_SPEC (SAM 2.1) into .venv" >&2
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check "setuptools>=70.1" &&
           SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install --disable-pip-version-check --no-build-isolation \
               "$SAM2_SPEC"; } >> "$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "[floodlabel] installing $SAM2_SPEC failed; the full log is $VENV/install.log" >&2
        exit 1
    fi
}

# Meta's SAM 3 (`sam3`, a pure-Python wheel) goes in with --no-deps: its runtime dependencies are in pyproject.toml
# (timm, ftfy, regex, einops, huggingface-hub, psutil, and open_clip_torch for the tokenizer's vocabulary, which
# sam3's wheel leaves out), but its own pins (numpy<2.4, tqdm<4.68, typing_extensions<4.16) would take numpy and
# others back under the rest of the app; FloodLabel's tests run SAM 3 on the venv's versions.
SAM3_SPEC="sam3==0.1.4"
install_sam3() {
    echo "[floodlabel] installing $SAM3_SPEC (SAM 3, --no-deps) into .venv" >&2
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps "$SAM3_SPEC" \
            >> "$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "[floodlabel] installing $SAM3_SPEC failed; the full log is $VENV/install.log" >&2
        exit 1
    fi
}

missing() {  # whether the venv lacks the module named $1
    ! "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" \
        >/dev/null 2>&1
}

STAMP="$VENV/.install-stamp${EXTRAS:+-$EXTRAS}"
# the stamp covers pyproject.toml and the two packages installed outside it, so a change to any re-installs
WANT="$({ cat "$REPO/pyproject.toml"; echo "$SAM2_SPEC $SAM3_SPEC"; } | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || ! grep -qx -- "$WANT" "$STAMP"; then
    echo "[floodlabel] installing dependencies into .venv (first run: a few minutes; log in .venv/install.log)" >&2
    SPEC="$REPO"
    [ -n "$EXTRAS" ] && SPEC="$REPO[$EXTRAS]"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$SPEC" > "$VENV/install.log" 2>&1; then
        tail -n 30 "$VENV/install.log" >&2
        echo "[floodlabel] installing the dependencies failed; the full log is $VENV/install.log" >&2
        exit 1
    fi
    install_sam2
    install_sam3
    echo "$WANT" > "$STAMP"
else
    if missing sam2; then install_sam2; fi
    if missing sam3; then install_sam3; fi
fi
