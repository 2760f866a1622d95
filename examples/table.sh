#!/usr/bin/env bash
# Train every row of a dataset's results table at once, as parallel processes (on one GPU, or
# on the CPU), then evaluate each on the test set with seqvae-eval (k = 500) and print the table.
#
# usage: examples/table.sh --dataset ptb|yahoo|yelp [options] [fairseq-train flags...]
#   --methods      the table's rows, examples/train.sh's methods
#                  (default "lm last max mean recipe-last recipe-max aggressive cyclical
#                  free-bits bn-vae max-free-bits")
#   --seeded       the methods trained with every seed of --seeds (default "lm last max recipe-max");
#                  the others are trained with seed 1
#   --seeds        (default "1 2 3")
#   --jobs N       runs trained (then evaluated) at the same time (default: all of them)
#   -k K           importance samples of the test IW-NLL (default 500)
#   --data-bin     binarized corpus (default data-bin/<dataset>)
#   --checkpoints  where the runs go, as <dataset>-<method>-s<seed> (default checkpoints)
#   --cpu          train and evaluate on the CPU (for a test with a tiny budget)
# Each run's output goes to <checkpoints>/<run>.log, its evaluation's to <run>.eval.log; the
# results are <checkpoints>/<dataset>-test.jsonl and the table <dataset>-table.md. Re-running
# resumes unfinished runs (examples/train.sh resumes) and evaluates again. Extra flags go to
# every examples/train.sh call (e.g. --bf16, --max-epoch 40).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${SEQVAE_VENV:-$ROOT/.venv}/bin/python"
DATASET=""
METHODS="lm last max mean recipe-last recipe-max aggressive cyclical free-bits bn-vae max-free-bits"
SEEDED="lm last max recipe-max"
SEEDS="1 2 3"
JOBS=0
K=500
DATA_BIN=""
CHECKPOINTS="$ROOT/checkpoints"
DEVICE=()
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
        *) break ;;
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

# runs the jobs JOBS at a time; a job is "FILE COMMAND...", its output going to <checkpoints>/FILE
run_all() {
    local failed=0 name
    for job in "$@"; do
        while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || failed=1; done
        name="${job%% *}"
        echo "[table $(date +%H:%M:%S)] ${name%%.*}: started" >&2
        bash -c "${job#* }" > "$CHECKPOINTS/$name" 2>&1 &
    done
    while (( $(jobs -rp | wc -l) > 0 )); do wait -n || failed=1; done
    return $failed
}

quoted_extra=""
(( $# == 0 )) || quoted_extra="$(printf '%q ' "$@")"
root=$(printf '%q' "$ROOT") data=$(printf '%q' "$DATA_BIN") ck=$(printf '%q' "$CHECKPOINTS")
train_jobs=() eval_jobs=()
for run in "${runs[@]}"; do
    read -r method seed <<< "$run"
    name="$DATASET-$method-s$seed"
    train_jobs+=("$name.log bash $root/examples/train.sh --dataset $DATASET --method $method \
--seed $seed --data-bin $data --save-dir $ck/$name ${DEVICE[*]} $quoted_extra")
    eval_jobs+=("$name.eval.log bash $root/examples/eval.sh --dataset $DATASET --methods $method \
--seeds $seed --data-bin $data --checkpoints $ck -k $K --json ${DEVICE[*]}")
done
echo "[table] ${#runs[@]} runs, $JOBS at a time, in $CHECKPOINTS" >&2
if ! run_all "${train_jobs[@]}"; then
    echo "error: a training run failed; see the .log files in $CHECKPOINTS" >&2
    exit 1
fi
echo "[table $(date +%H:%M:%S)] trained; evaluating with k = $K" >&2
if ! run_all "${eval_jobs[@]}"; then
    echo "error: an evaluation failed; see the .eval.log files in $CHECKPOINTS" >&2
    exit 1
fi
RESULTS="$CHECKPOINTS/$DATASET-test.jsonl"
for run in "${runs[@]}"; do
    read -r method seed <<< "$run"
    grep '^{' "$CHECKPOINTS/$DATASET-$method-s$seed.eval.log"
done > "$RESULTS"
"$PYTHON" "$ROOT/scripts/results_table.py" "$RESULTS" --dataset "$DATASET" \
    | tee "$CHECKPOINTS/$DATASET-table.md"
echo "[table] results: $RESULTS; table: $CHECKPOINTS/$DATASET-table.md" >&2
