#!/usr/bin/env bash
# Create or update the virtual environment: torch, pinned deps, fairseq 0.12.2 (patched), this plugin.
#
# Idempotent: each step is skipped when its work is already done, so a re-run takes seconds.
# Environment variables:
#   SEQVAE_VENV        venv location (default: <repo>/.venv)
#   SEQVAE_PYTHON      interpreter that creates a missing venv, 3.10-3.12 (default: python3)
#   SEQVAE_TORCH_SPEC  pip arguments used to install torch when the venv has none
#                      (default: torch==2.13.0; e.g. on a CPU-only machine without a local
#                      wheel: "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu")
#   SEQVAE_FORCE=1     redo every pip step even when its stamp says it is done
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SEQVAE_VENV:-$ROOT/.venv}"
BASE_PYTHON="${SEQVAE_PYTHON:-python3}"
TORCH_SPEC="${SEQVAE_TORCH_SPEC:-torch==2.13.0}"
FORCE="${SEQVAE_FORCE:-0}"
# the only fairseq version scripts/patch_fairseq.py knows how to fix
FAIRSEQ_VERSION=0.12.2
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { echo "==> $*"; }
die() { echo "setup.sh: error: $*" >&2; exit 1; }

check_python_version() {  # <python>
    "$1" - <<'EOF' || die "$1 is Python $("$1" -c 'import platform; print(platform.python_version())'); need 3.10, 3.11 or 3.12"
import sys
sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)
EOF
}

# Stamps record finished pip steps, keyed by a hash of their inputs.
fingerprint() {  # <extra text> <files...>: sha256 of the text and the files' contents
    "$PY" - "$@" <<'EOF'
import hashlib, sys
h = hashlib.sha256(sys.argv[1].encode())
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        h.update(f.read())
print(h.hexdigest())
EOF
}
stamp_ok() { [[ "$FORCE" != 1 && -f "$VENV/.seqvae-$1.stamp" && "$(cat "$VENV/.seqvae-$1.stamp")" == "$2" ]]; }
write_stamp() { echo "$2" >"$VENV/.seqvae-$1.stamp"; }

step "virtual environment: $VENV"
if [[ -x "$VENV/bin/python" ]]; then
    echo "    exists"
else
    command -v "$BASE_PYTHON" >/dev/null || die "interpreter '$BASE_PYTHON' not found (set SEQVAE_PYTHON)"
    check_python_version "$BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$VENV"
    echo "    created with $("$BASE_PYTHON" -c 'import sys; print(sys.executable)')"
fi
PY="$VENV/bin/python"
check_python_version "$PY"
pip() { "$PY" -m pip "$@"; }

step "torch"
if torch_version="$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"; then
    echo "    keeping torch $torch_version"
else
    # shellcheck disable=SC2086  # SEQVAE_TORCH_SPEC is a list of pip arguments
    if ! pip install $TORCH_SPEC; then
        command -v nvidia-smi >/dev/null && die "could not install torch ($TORCH_SPEC); set SEQVAE_TORCH_SPEC"
        echo "    retrying with the CPU index"
        # shellcheck disable=SC2086
        pip install $TORCH_SPEC --index-url https://download.pytorch.org/whl/cpu
    fi
fi

step "pinned requirements (requirements-dev.txt, which includes requirements.txt)"
REQ_KEY="$(fingerprint "requirements" "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
if stamp_ok requirements "$REQ_KEY"; then
    echo "    up to date"
else
    pip install -r "$ROOT/requirements-dev.txt"
    write_stamp requirements "$REQ_KEY"
fi

step "fairseq $FAIRSEQ_VERSION (--no-deps: its own pins break Python >= 3.11)"
installed_fairseq="$("$PY" -c 'import importlib.metadata as m; print(m.version("fairseq"))' 2>/dev/null || true)"
if [[ "$installed_fairseq" == "$FAIRSEQ_VERSION" && "$FORCE" != 1 ]]; then
    echo "    already installed"
else
    # builds from the sdist the first time (Cython/C++ extensions, ~30 s); pip caches the wheel
    pip install --no-deps "fairseq==$FAIRSEQ_VERSION"
fi

step "fairseq source fixes (scripts/patch_fairseq.py)"
check_rc=0
"$PY" "$ROOT/scripts/patch_fairseq.py" --check >/dev/null || check_rc=$?
case "$check_rc" in
    0) echo "    all applied" ;;
    1) "$PY" "$ROOT/scripts/patch_fairseq.py" ;;
    *) "$PY" "$ROOT/scripts/patch_fairseq.py" --check || die "patch_fairseq.py refused (see above)" ;;
esac

step "fairseq_seqvae (editable, --no-deps: deps come from requirements.txt)"
PLUGIN_KEY="$(fingerprint "$ROOT" "$ROOT/setup.py")"
plugin_is_editable_here() {
    "$PY" -I - "$ROOT" <<'EOF'  # -I: not the egg-info that setuptools leaves in $ROOT
import importlib.metadata, json, pathlib, sys
try:
    direct_url = importlib.metadata.distribution("fairseq_seqvae").read_text("direct_url.json")
    info = json.loads(direct_url or "{}")
except importlib.metadata.PackageNotFoundError:
    sys.exit(1)
here = pathlib.Path(sys.argv[1]).as_uri()
sys.exit(0 if info.get("dir_info", {}).get("editable") and info.get("url") == here else 1)
EOF
}
if stamp_ok plugin "$PLUGIN_KEY" && plugin_is_editable_here; then
    echo "    already installed from $ROOT"
else
    pip install --no-deps --use-pep517 -e "$ROOT"
    write_stamp plugin "$PLUGIN_KEY"
fi

step "verify: import fairseq, fairseq_seqvae"
"$PY" -I -c "import fairseq, fairseq_seqvae; print('    fairseq', fairseq.__version__, '| torch', __import__('torch').__version__)"
echo "done: activate with 'source $VENV/bin/activate'"
