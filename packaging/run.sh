#!/usr/bin/env bash
# Sets up .venv (first run only) and launches the FloodLabel app. Extra arguments go to `floodlabel`.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/packaging/setup_env.sh" ""
exec "$REPO/.venv/bin/floodlabel" "${@:-gui}"
