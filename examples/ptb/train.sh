#!/usr/bin/env bash
# Train one method on PTB with Li et al. 2019's setting: examples/train.sh --dataset ptb, binarizing the text once.
#
# usage: examples/ptb/train.sh [--data DIR] [--bin-dir DIR] [--method M] [--save-dir DIR] [--seed N] [fairseq-train flags...]
#   --data      PTB text directory with train.txt, valid.txt, test.txt (default ../shared/data/ptb)
#   --bin-dir   where it is binarized, once (default data-bin/ptb)
#   --method    lm | last | max | mean | aggressive | cyclical | free-bits | bn-vae | max-free-bits
#               (default max; --pooling is the same option)
#   --save-dir  checkpoints and logs (default checkpoints/ptb-<method>-s<seed>)
# Extra flags go to fairseq-train last, so they override the defaults (e.g. --max-epoch 1, --cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/data/ptb"
BIN="$ROOT/data-bin/ptb"
PASS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --bin-dir) BIN="$2"; shift 2 ;;
        --pooling|--method) PASS+=(--method "$2"); shift 2 ;;
        --save-dir|--seed) PASS+=("$1" "$2"); shift 2 ;;
        *) break ;;
    esac
done
VENV_BIN="${SEQVAE_VENV:-$ROOT/.venv}/bin"

binarize() {
    [[ -f "$BIN/train.idx" ]] && return
    for split in train valid test; do
        [[ -f "$DATA/$split.txt" ]] || { echo "error: $DATA/$split.txt not found (--data DIR)" >&2; exit 1; }
    done
    "$VENV_BIN/fairseq-preprocess" --only-source --workers 2 --destdir "$BIN" \
        --trainpref "$DATA/train.txt" --validpref "$DATA/valid.txt" --testpref "$DATA/test.txt"
}

binarize
exec "$ROOT/examples/train.sh" --dataset ptb --data-bin "$BIN" "${PASS[@]}" "$@"
