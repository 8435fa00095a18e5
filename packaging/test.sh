#!/usr/bin/env bash
# Sets up .venv with the test extras (first run only) and runs the whole test suite offscreen.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/packaging/setup_env.sh" "test"
cd "$REPO"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
exec "$REPO/.venv/bin/python" -m pytest "$@"
