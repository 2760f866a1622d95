#!/usr/bin/env bash
# Autoencoder pretraining (Li et al. 2019): train with beta = 0, then a VAE whose encoder starts from that run and whose decoder starts fresh, with free bits.
#
# usage: examples/ptb/pretrain_ae.sh [--data DIR] [--bin-dir DIR] [--pooling last|max|mean] [--save-dir DIR] [--free-bits NATS] [fairseq-train flags...]
#   --data, --bin-dir, --no-verify  as for train.sh (PTB text; where it is binarized)
#   --pooling          encoder pooling (default last, the encoder Li et al. pretrain)
#   --save-dir         checkpoints of both stages, in DIR/ae and DIR/vae (default checkpoints/ptb-ae-<pooling>)
#   --free-bits        free bits of the second stage, nats per latent dimension (default 0.5)
# Both stages are examples/ptb/train.sh (its PTB setting: linear KL annealing, SGD, early stopping);
# extra flags go to both, last (e.g. --max-epoch 1).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
POOLING=last
SAVE_DIR=""
FREE_BITS=0.5
DATA_FLAGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data|--bin-dir) DATA_FLAGS+=("$1" "$2"); shift 2 ;;
        --no-verify) DATA_FLAGS+=("$1"); shift ;;
        --pooling) POOLING="$2"; shift 2 ;;
        --save-dir) SAVE_DIR="$2"; shift 2 ;;
        --free-bits) FREE_BITS="$2"; shift 2 ;;
        *) break ;;
    esac
done
SAVE_DIR="${SAVE_DIR:-$ROOT/checkpoints/ptb-ae-$POOLING}"

stage() {
    "$HERE/train.sh" "${DATA_FLAGS[@]}" --pooling "$POOLING" "$@"
}

# 1. autoencoder: beta = 0 throughout, so the best checkpoint is the best reconstruction
stage --save-dir "$SAVE_DIR/ae" --kl-schedule constant --kl-max 0 \
    --best-checkpoint-metric rec "$@"
# 2. VAE: the pretrained encoder, a fresh decoder, train.sh's annealing plus free bits
stage --save-dir "$SAVE_DIR/vae" --init-encoder-from "$SAVE_DIR/ae/checkpoint_best.pt" \
    --free-bits "$FREE_BITS" "$@"
