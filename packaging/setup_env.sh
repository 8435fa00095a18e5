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
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

STAMP="$VENV/.install-stamp"
WANT="$(cat "$REPO/pyproject.toml" | sha256sum | cut -d' ' -f1)-$EXTRAS"
if [ ! -f "$STAMP" ] || ! grep -qx -- "$WANT" "$STAMP"; then
    echo "[floodlabel] installing dependencies (first run takes a few minutes)" >&2
    SPEC="$REPO"
    [ -n "$EXTRAS" ] && SPEC="$REPO[$EXTRAS]"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$SPEC"
    echo "$WANT" > "$STAMP"
fi
