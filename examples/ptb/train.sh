#!/usr/bin/env bash
# Train one method on PTB with Li et al. 2019's setting: examples/train.sh --dataset ptb, preparing the data once.
#
# usage: examples/ptb/train.sh [--data DIR] [--bin-dir DIR] [--no-verify] [--method M] [--save-dir DIR] [--seed N] [fairseq-train flags...]
#   --data      PTB text directory with train.txt, valid.txt, test.txt (needed until --bin-dir is prepared)
#   --bin-dir   where examples/ptb/prepare.sh binarizes it, once (default data-bin/ptb)
#   --no-verify text that is not the canonical PTB: warn about its checksums instead of failing
#   --method    lm | last | max | mean | aggressive | cyclical | free-bits | bn-vae | max-free-bits
#               | ae-free-bits
#               (default max; --pooling is the same option)
#   --save-dir  checkpoints and logs (default checkpoints/ptb-<method>-s<seed>)
# Extra flags go to fairseq-train last, so they override the defaults (e.g. --max-epoch 1, --cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/data-bin/ptb"
PREPARE=()
PASS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) PREPARE+=(--data "$2"); shift 2 ;;
        --bin-dir) BIN="$2"; shift 2 ;;
        --no-verify) PREPARE+=(--no-verify); shift ;;
        --pooling|--method) PASS+=(--method "$2"); shift 2 ;;
        --save-dir|--seed) PASS+=("$1" "$2"); shift 2 ;;
        *) break ;;
    esac
done

# the same dictionary as examples/ptb/prepare.sh, so checkpoints and data-bin/ptb always match
[[ -f "$BIN/prepare.json" ]] || "$ROOT/examples/ptb/prepare.sh" --dest "$BIN" "${PREPARE[@]}"
exec "$ROOT/examples/train.sh" --dataset ptb --data-bin "$BIN" "${PASS[@]}" "$@"
