#!/usr/bin/env bash
# Evaluate the trained methods of a dataset on its test set with seqvae-eval (IW-NLL with k = 500, PPL, KL, MI, AU) in one table.
#
# usage: examples/eval.sh --dataset ptb|yahoo|yelp [--methods "lm last max ..."] [--seeds "1 2 3"] [--data-bin DIR] [--checkpoints DIR] [seqvae-eval flags...]
#   --methods      methods to look for (default: all of examples/train.sh's)
#   --seeds        seeds to look for (default "1 2 3")
#   --checkpoints  where examples/train.sh saved them as <dataset>-<method>-s<seed> (default checkpoints)
# Runs that are not trained yet are listed and skipped. Extra flags go to seqvae-eval
# (e.g. --json, -k 100, --split valid, --cpu).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASET=""
METHODS="$("$ROOT/examples/train.sh" --list-methods)"
SEEDS="1 2 3"
DATA_BIN=""
CHECKPOINTS="$ROOT/checkpoints"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dataset) DATASET="$2"; shift 2 ;;
        --methods) METHODS="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --data-bin) DATA_BIN="$2"; shift 2 ;;
        --checkpoints) CHECKPOINTS="$2"; shift 2 ;;
        *) break ;;
    esac
done
[[ -n "$DATASET" ]] || { echo "error: --dataset is required (ptb, yahoo or yelp)" >&2; exit 2; }
DATA_BIN="${DATA_BIN:-$ROOT/data-bin/$DATASET}"

paths=()
for method in $METHODS; do
    for seed in $SEEDS; do
        run="$CHECKPOINTS/$DATASET-$method-s$seed"
        if [[ -f "$run/checkpoint_best.pt" ]]; then
            paths+=("$run")
        else
            echo "not trained yet, skipped: $run" >&2
        fi
    done
done
[[ ${#paths[@]} -gt 0 ]] || { echo "error: no trained run under $CHECKPOINTS for $DATASET" >&2; exit 1; }
exec "${SEQVAE_VENV:-$ROOT/.venv}/bin/seqvae-eval" "$DATA_BIN" --path "${paths[@]}" "$@"
