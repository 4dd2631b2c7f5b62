# Sourced by the README's commands: makes .venv and installs the package when it is missing or
# when pyproject.toml changed since the last install. Nothing else is needed on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.nas-convnext-installed"
BUSY=.nas-convnext-setting-up   # in .venv while this script installs into a .venv it owns
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "Setting up $VENV (first run only; installs torch, timm, ray, optuna, ...)" >&2
    # A set-up of ours that never finished (stopped while pip was replacing itself, say) may
    # have left a broken pip behind: start that one again from nothing. Only ours: a .venv that
    # this script did not make (no stamp, no marker) is the user's, and is installed into,
    # never deleted.
    [ -f "$VENV/$BUSY" ] && rm -rf "$VENV"
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        touch "$VENV/$BUSY"
    elif [ -f "$STAMP" ]; then
        touch "$VENV/$BUSY"
    fi
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]" >&2
    echo "$want" > "$STAMP"
    rm -f "$VENV/$BUSY"
fi
export PATH="$VENV/bin:$PATH"
