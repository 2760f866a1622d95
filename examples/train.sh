#!/usr/bin/env bash
# Train one method (the LSTM LM, a sequence VAE, or a baseline) on a prepared benchmark corpus with its published setting.
#
# usage: examples/train.sh --dataset ptb|yahoo|yelp [--method M] [--data-bin DIR] [--save-dir DIR] [--seed N] [fairseq-train flags...]
#   --dataset   ptb: Li et al. 2019's setting (seqvae_lstm_ptb); yahoo, yelp: He et al. 2019's (seqvae_lstm_yahoo)
#   --method    lm | last | max | mean | aggressive | cyclical | free-bits | bn-vae | max-free-bits
#               | ae-free-bits | authors-last | authors-max | recipe-last | recipe-max (default max)
#   --data-bin  binarized corpus (default data-bin/<dataset>, made by examples/<dataset>/prepare.sh)
#   --save-dir  checkpoints and logs (default checkpoints/<dataset>-<method>-s<seed>)
#   --seed      random seed (default 1)
#   --list-methods  print the method names (for examples/eval.sh) and exit
#   --print-flags M print method M's own fairseq-train flags for --dataset, one per line, and exit
#                   (scripts/benchmark_methods.py reads the methods from here)
# Methods differ by flags only (see METHOD_FLAGS below), except ae-free-bits, which first trains
# an autoencoder in <save-dir>/ae (once; its log is <save-dir>/ae/train.log). Extra flags go to
# fairseq-train last, so they override the defaults (e.g. --cpu, --bf16-autocast, --max-epoch 1).
# Re-running resumes exactly, the learning-rate schedule included (scripts/patch_fairseq.py,
# fixes 11 and 12); a finished run stops at once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
METHODS="lm last max mean aggressive cyclical free-bits bn-vae max-free-bits ae-free-bits authors-last authors-max recipe-last recipe-max"
DATASET=""
METHOD=max
DATA_BIN=""
SAVE_DIR=""
SEED=1
PRINT_FLAGS=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dataset) DATASET="$2"; shift 2 ;;
        --method) METHOD="$2"; shift 2 ;;
        --data-bin) DATA_BIN="$2"; shift 2 ;;
        --save-dir) SAVE_DIR="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --list-methods) echo "$METHODS"; exit 0 ;;
        --print-flags) METHOD="$2"; PRINT_FLAGS=1; shift 2 ;;
        *) break ;;
    esac
done

# He et al. 2019's training loop (also used by Li et al. 2019 for PTB): SGD lr 1, clip 5, batch
# 32 with the loss averaged over sentences (--sentence-avg: their loss.mean() over the batch of
# per-sentence losses; fairseq's default per-token average is a ~20x smaller step), beta linearly from 0.1 to 1 over the first 10 epochs, lr halved after 5 epochs without
# a better validation loss, stop after the 5th halving (lr 1 / 2^5 <= 0.04), at most 100 epochs
case "$DATASET" in
    ptb) ARCH=seqvae_lstm_ptb; EPOCHS_10=13000; SIZE_FLAGS=() ;;   # 10 epochs of 1,316 batches
    # 10 epochs of 100k sentences / 32; at this size glibc's heap grows to gigabytes of free
    # memory unless trimmed (docs/PERFORMANCE.md#memory)
    yahoo|yelp) ARCH=seqvae_lstm_yahoo; EPOCHS_10=31000; SIZE_FLAGS=(--malloc-trim-seconds 10) ;;
    *) echo "error: --dataset must be ptb, yahoo or yelp (got '$DATASET')" >&2; exit 2 ;;
esac

case "$METHOD" in
    lm) METHOD_FLAGS=(--latent-dim 0) ;;                           # LSTM language model
    last|max|mean) METHOD_FLAGS=(--pooling "$METHOD") ;;           # VAE; last = Bowman et al. 2016
    aggressive) METHOD_FLAGS=(--pooling last --aggressive) ;;      # He et al. 2019
    cyclical) METHOD_FLAGS=(--pooling last --kl-schedule cyclical --kl-start 0  # Fu et al. 2019:
        --kl-cycle-updates "$EPOCHS_10" --kl-num-cycles 4) ;;                   # 4 cycles of 10 epochs
    free-bits) METHOD_FLAGS=(--pooling last --free-bits 0.5) ;;    # Li et al. 2019, per dimension
    bn-vae) METHOD_FLAGS=(--pooling last --bn-gamma 0.6) ;;        # Zhu et al. 2020
    max-free-bits) METHOD_FLAGS=(--pooling max --free-bits 0.5) ;; # pooling + free bits
    ae-free-bits) METHOD_FLAGS=(--pooling last --free-bits 0.5) ;; # Li et al. 2019: free bits after
        # autoencoder pretraining (below)
    authors-last|authors-max)  # the pooling paper's authors' encoder and training (Xu et al. 2020's
        # code): a 2-layer bidirectional encoder, directions averaged, posterior without bias,
        # trained by Adam (lr 1e-3, constant) while the decoder keeps the shared SGD and lr halving
        METHOD_FLAGS=(--pooling "${METHOD#authors-}" --encoder-layers 2 --encoder-bidirectional
            --encoder-merge mean --no-posterior-bias
            --optimizer encoder_decoder --encoder-optimizer adam --encoder-lr 0.001) ;;
    recipe-last|recipe-max)  # the pooling study's recipe (docs/COLLAPSE.md): He et al.'s encoder
        # trained by Adam (lr 1e-3) beside the shared SGD decoder, free bits of 0.1 nats per
        # dimension; without seqvae-compare's word dropout 0.5, which costs 4 nats at convergence
        METHOD_FLAGS=(--pooling "${METHOD#recipe-}" --optimizer encoder_decoder
            --encoder-optimizer adam --encoder-lr 0.001 --free-bits 0.1) ;;
    *) echo "error: unknown --method '$METHOD' (one of: $METHODS)" >&2; exit 2 ;;
esac
if [[ "$PRINT_FLAGS" == 1 ]]; then
    printf '%s\n' "${METHOD_FLAGS[@]}"
    exit 0
fi

DATA_BIN="${DATA_BIN:-$ROOT/data-bin/$DATASET}"
SAVE_DIR="${SAVE_DIR:-$ROOT/checkpoints/$DATASET-$METHOD-s$SEED}"
if [[ ! -f "$DATA_BIN/dict.txt" ]]; then
    echo "error: no binarized corpus at $DATA_BIN: run examples/$DATASET/prepare.sh first" \
         "(or pass --data-bin DIR)" >&2
    exit 1
fi

# train DIR [flags...]: fairseq-train into DIR; the method's flags come after the shared ones, so
# they override them (cyclical's schedule). Batches are loaded in the training process
# (--num-workers 0): fairseq's default worker process, forked from the grown trainer, added about
# 6 GiB to a Yahoo-size run at no gain in speed (docs/PERFORMANCE.md#memory)
train() {
    "${SEQVAE_VENV:-$ROOT/.venv}/bin/fairseq-train" "$DATA_BIN" --user-dir "$ROOT/fairseq_seqvae" \
        --task seqvae_language_modeling --criterion seqvae_elbo --arch "$ARCH" \
        --kl-schedule linear --kl-start 0.1 --kl-max 1.0 --kl-warmup-updates "$EPOCHS_10" \
        --optimizer sgd --lr 1.0 --clip-norm 5.0 --batch-size 32 --batch-size-valid 32 --sentence-avg \
        --lr-scheduler reduce_lr_on_plateau --lr-shrink 0.5 --lr-patience 4 --stop-min-lr 0.04 \
        --max-epoch 100 --best-checkpoint-metric elbo --seed "$SEED" --num-workers 0 \
        --save-dir "$1" --tensorboard-logdir "$1/tb" \
        --log-format simple --log-interval 100 "${SIZE_FLAGS[@]}" "${METHOD_FLAGS[@]}" "${@:2}"
}

if [[ "$METHOD" == ae-free-bits ]]; then
    # Li et al. 2019's autoencoder pretraining, once: beta = 0, the best checkpoint by
    # reconstruction; the VAE then starts from its encoder with a fresh decoder
    AE="$SAVE_DIR/ae"
    if [[ ! -f "$AE/pretrained" ]]; then
        mkdir -p "$AE"
        echo "ae-free-bits: training the autoencoder in $AE (log $AE/train.log)"
        if ! train "$AE" --kl-schedule constant --kl-max 0 --best-checkpoint-metric rec "$@" \
                >> "$AE/train.log" 2>&1; then
            tail -n 20 "$AE/train.log" >&2
            echo "error: the autoencoder's training failed; see $AE/train.log" >&2
            exit 1
        fi
        touch "$AE/pretrained"  # trained: a re-run resumes the VAE only
    fi
    echo "ae-free-bits: the autoencoder in $AE is trained; training the VAE in $SAVE_DIR"
    METHOD_FLAGS+=(--init-encoder-from "$AE/checkpoint_best.pt")
fi
train "$SAVE_DIR" "$@"
