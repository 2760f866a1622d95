#!/usr/bin/env bash
# Train one sequence VAE (or the LSTM LM) on PTB with the PTB setting of Li et al. 2019.
#
# usage: examples/ptb/train.sh [--data DIR] [--bin-dir DIR] [--pooling max|mean|last|lm] [--save-dir DIR] [fairseq-train flags...]
#   --data      PTB text directory with train.txt, valid.txt, test.txt (default ../shared/data/ptb)
#   --bin-dir   where it is binarized, once (default data-bin/ptb)
#   --pooling   encoder pooling; "lm" trains the LSTM language model (--latent-dim 0). Default max
#   --save-dir  checkpoints and logs (default checkpoints/ptb-<pooling>)
# Extra flags go to fairseq-train last, so they override the defaults (e.g. --max-epoch 1, --cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="$ROOT/../shared/data/ptb"
POOLING=max
SAVE_DIR=""
BIN="$ROOT/data-bin/ptb"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --pooling) POOLING="$2"; shift 2 ;;
        --save-dir) SAVE_DIR="$2"; shift 2 ;;
        --bin-dir) BIN="$2"; shift 2 ;;
        *) break ;;
    esac
done
SAVE_DIR="${SAVE_DIR:-$ROOT/checkpoints/ptb-$POOLING}"
VENV_BIN="${SEQVAE_VENV:-$ROOT/.venv}/bin"

binarize() {
    [[ -f "$BIN/train.idx" ]] && return
    for split in train valid test; do
        [[ -f "$DATA/$split.txt" ]] || { echo "error: $DATA/$split.txt not found (--data DIR)" >&2; exit 1; }
    done
    "$VENV_BIN/fairseq-preprocess" --only-source --workers 2 --destdir "$BIN" \
        --trainpref "$DATA/train.txt" --validpref "$DATA/valid.txt" --testpref "$DATA/test.txt"
}

train() {
    local model=(--pooling "$POOLING")
    [[ "$POOLING" == lm ]] && model=(--latent-dim 0)
    "$VENV_BIN/fairseq-train" "$BIN" --user-dir "$ROOT/fairseq_seqvae" \
        --task seqvae_language_modeling --arch seqvae_lstm_ptb --criterion seqvae_elbo \
        "${model[@]}" \
        --kl-schedule linear --kl-start 0.1 --kl-max 1.0 --kl-warmup-updates 13000 \
        --optimizer sgd --lr 1.0 --clip-norm 5.0 --batch-size 32 --batch-size-valid 32 \
        --max-epoch 100 --patience 5 --best-checkpoint-metric elbo \
        --save-dir "$SAVE_DIR" --tensorboard-logdir "$SAVE_DIR/tb" \
        --log-format simple --log-interval 100 "$@"
}

binarize
train "$@"
