# Sourced by the README's commands: makes .venv and installs the package when it is missing or
# when pyproject.toml changed since the last install. Nothing else is needed on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.nas-convnext-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "Setting up $VENV (first run only; installs torch, timm, ray, optuna, ...)" >&2
    # A set-up that never finished (no stamp: stopped while pip was replacing itself, say) may
    # have left a broken pip behind: start that one again from nothing.
    [ -f "$STAMP" ] || rm -rf "$VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" >&2
    echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
