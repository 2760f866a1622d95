#!/usr/bin/env bash
# Train every row of a dataset's results table as parallel processes (on one GPU, or on the
# CPU), evaluate each on the test set with seqvae-eval (k = 500) as soon as it is trained, and
# print the table.
#
# usage: examples/table.sh --dataset ptb|yahoo|yelp [options] [fairseq-train flags...]
#   --methods      the table's rows, examples/train.sh's methods
#                  (default "lm last max mean recipe-last recipe-max aggressive cyclical
#                  free-bits bn-vae max-free-bits ae-free-bits")
#   --seeded       the methods trained with every seed of --seeds (default "lm last max recipe-max");
#                  the others are trained with seed 1
#   --seeds        (default "1 2 3")
#   --jobs N       runs trained (then evaluated) at the same time (default: all of them); each
#                  gets the cores / N OpenMP threads unless OMP_NUM_THREADS is set
#   -k K           importance samples of the test IW-NLL (default 500)
#   --eval-flags F more seqvae-eval flags, one string (e.g. "--precision bf16")
#   --data-bin     binarized corpus (default data-bin/<dataset>)
#   --checkpoints  where the runs go, as <dataset>-<method>-s<seed> (default checkpoints)
#   --cpu          train and evaluate on the CPU (for a test with a tiny budget)
# Each run's output is appended to <checkpoints>/<run>.log, its evaluation's goes to
# <run>.eval.log. The results of every evaluated run in <checkpoints>, from this invocation and
# earlier ones, are <checkpoints>/<dataset>-test.jsonl and the table <dataset>-table.md.
# Re-running resumes: a run whose .eval.log holds a result is done; one whose .log says
# fairseq-train finished ("done training in") is evaluated; the others are resumed from their
# checkpoints (examples/train.sh resumes), then evaluated; a stopped evaluation continues where
# it stopped (seqvae-eval --resume). Extra flags go to every
# examples/train.sh call (e.g. --bf16-autocast, --lr-patience 0), after all of the options above.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${SEQVAE_VENV:-$ROOT/.venv}/bin/python"
DATASET=""
METHODS="lm last max mean recipe-last recipe-max aggressive cyclical free-bits bn-vae max-free-bits ae-free-bits"
SEEDED="lm last max recipe-max"
SEEDS="1 2 3"
JOBS=0
K=500
DATA_BIN=""
CHECKPOINTS="$ROOT/checkpoints"
DEVICE=()
EVAL_FLAGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dataset) DATASET="$2"; shift 2 ;;
        --methods) METHODS="$2"; shift 2 ;;
        --seeded) SEEDED="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        -k) K="$2"; shift 2 ;;
        --data-bin) DATA_BIN="$2"; shift 2 ;;
        --checkpoints) CHECKPOINTS="$2"; shift 2 ;;
        --cpu) DEVICE=(--cpu); shift ;;
        --eval-flags) read -r -a EVAL_FLAGS <<< "$2"; shift 2 ;;
        *) break ;;
    esac
done
for arg in "$@"; do  # the rest goes to every run: an option of ours there would be lost
    case "$arg" in
        --dataset|--methods|--seeded|--seeds|--jobs|-k|--data-bin|--checkpoints|--eval-flags)
            echo "error: $arg comes after the first fairseq-train flag ($1), so it would go to" \
                 "every run's fairseq-train: put table.sh's options first" >&2
            exit 2 ;;
    esac
done
[[ -n "$DATASET" ]] || { echo "error: --dataset is required (ptb, yahoo or yelp)" >&2; exit 2; }
[[ "$JOBS" =~ ^[0-9]+$ ]] || { echo "error: --jobs must be a number (got '$JOBS')" >&2; exit 2; }
DATA_BIN="${DATA_BIN:-$ROOT/data-bin/$DATASET}"
if [[ ! -f "$DATA_BIN/dict.txt" ]]; then
    echo "error: no binarized corpus at $DATA_BIN: run examples/$DATASET/prepare.sh first" \
         "(or pass --data-bin DIR)" >&2
    exit 1
fi
known=" $("$ROOT/examples/train.sh" --list-methods) "
for method in $METHODS; do
    [[ "$known" == *" $method "* ]] || {
        echo "error: unknown method '$method' in --methods (one of:$known)" >&2; exit 2; }
done
mkdir -p "$CHECKPOINTS"

runs=()  # "method seed"
for method in $METHODS; do
    seeds=1
    [[ " $SEEDED " == *" $method "* ]] && seeds="$SEEDS"
    for seed in $seeds; do runs+=("$method $seed"); done
done
(( JOBS > 0 )) || JOBS=${#runs[@]}

# OpenMP threads per run: the cores shared among the runs at a time, unless set
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
    export OMP_NUM_THREADS=$(( $(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1 ))
fi

log() { echo "[table $(date +%H:%M:%S)] $*" >&2; }

# trains one run (examples/train.sh resumes it), then evaluates it on the test set; a run whose
# .eval.log holds a result is done
train_and_evaluate() {
    local method="$1" seed="$2"
    shift 2
    local name="$DATASET-$method-s$seed"
    local run="$CHECKPOINTS/$name"
    if [[ -f "$run.eval.log" ]] && grep -q '^{' "$run.eval.log"; then
        log "$name: done before (delete $run.eval.log to evaluate again)"
        return 0
    fi
    # a finished run goes straight to its evaluation, without starting fairseq-train
    if [[ -f "$run.log" ]] && grep -q "done training in" "$run.log"; then
        log "$name: trained before ($run.log)"
    else
        log "$name: training (log $run.log)"
        if ! bash "$ROOT/examples/train.sh" --dataset "$DATASET" --method "$method" \
                --seed "$seed" --data-bin "$DATA_BIN" --save-dir "$run" "${DEVICE[@]}" "$@" \
                >> "$run.log" 2>&1; then
            log "$name: training failed; see $run.log"
            return 1
        fi
    fi
    log "$name: trained; evaluating with k = $K"
    if ! bash "$ROOT/examples/eval.sh" --dataset "$DATASET" --methods "$method" --seeds "$seed" \
            --data-bin "$DATA_BIN" --checkpoints "$CHECKPOINTS" -k "$K" --json --resume \
            "${DEVICE[@]}" "${EVAL_FLAGS[@]}" > "$run.eval.log" 2>&1; then
        log "$name: evaluation failed; see $run.eval.log"
        return 1
    fi
    log "$name: done"
}

log "${#runs[@]} runs, $JOBS at a time ($OMP_NUM_THREADS thread(s) each), in $CHECKPOINTS"
failed=0
for run in "${runs[@]}"; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || failed=1; done
    read -r method seed <<< "$run"
    train_and_evaluate "$method" "$seed" "$@" &
done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n || failed=1; done
if (( failed )); then
    echo "error: a run failed; see the .log and .eval.log files in $CHECKPOINTS" \
         "(re-running resumes)" >&2
    exit 1
fi
# the table is every evaluated run in --checkpoints, so runs from earlier invocations (other
# --methods or --seeds) count too
RESULTS="$CHECKPOINTS/$DATASET-test.jsonl"
shopt -s nullglob
evaluated=("$CHECKPOINTS/$DATASET"-*-s*.eval.log)
grep -h '^{' "${evaluated[@]}" > "$RESULTS"
log "$(wc -l < "$RESULTS") evaluated runs in $CHECKPOINTS (${#runs[@]} of them this time)"
"$PYTHON" "$ROOT/scripts/results_table.py" "$RESULTS" --dataset "$DATASET" \
    | tee "$CHECKPOINTS/$DATASET-table.md"
echo "[table] results: $RESULTS; table: $CHECKPOINTS/$DATASET-table.md" >&2
