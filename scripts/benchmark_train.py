#!/usr/bin/env python
"""Training-throughput benchmark: runs the real fairseq-train on PTB for a fixed
number of updates and prints target tokens/s (words + EOS) per configuration.

The reference column is He et al. 2019's code measured on this kind of 2-core CPU
(../shared/docs/PERFORMANCE_BASELINE.md): 5,096 tokens/s at the PTB size and
1,011 at the Yahoo size, batch 32 sentences, SGD. Timings on a shared machine are
noisy: run on an idle machine and compare ratios taken in one run.

    python scripts/benchmark_train.py --data ../shared/data/ptb
    python scripts/benchmark_train.py --archs seqvae_lstm_ptb --precisions fp32,bf16 \
        --max-tokens 1000,2000,4000
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
REFERENCE_TOKENS_PER_S = {"seqvae_lstm_ptb": 5096, "seqvae_lstm_yahoo": 1011}


def binarize(text_dir: str, bin_dir: str) -> None:
    """fairseq-preprocess --only-source of train/valid (and test, when present) once."""
    splits = [s for s in ("train", "valid", "test")
              if s != "test" or os.path.isfile(os.path.join(text_dir, "test.txt"))]
    if all(os.path.exists(os.path.join(bin_dir, f"{s}.idx")) for s in splits):
        return
    for split in ("train", "valid"):
        if not os.path.isfile(os.path.join(text_dir, f"{split}.txt")):
            sys.exit(f"error: {text_dir}/{split}.txt not found (--data takes a directory "
                     "with train.txt and valid.txt, one sentence per line)")
    print(f"binarizing {text_dir} -> {bin_dir}", flush=True)
    prefixes = [a for s in splits for a in (f"--{s}pref", os.path.join(text_dir, f"{s}.txt"))]
    subprocess.run(
        [os.path.join(BIN, "fairseq-preprocess"), "--only-source", *prefixes,
         "--destdir", bin_dir, "--workers", "2"],
        check=True, stdout=subprocess.DEVNULL,
    )


def fairseq_train_stats(bin_dir, flags, updates, log_interval):
    """Runs fairseq-train for ``updates`` updates (SGD, clip 5, no validation, no
    checkpoints) with ``flags`` added; returns, over the logged intervals after the
    first (a warm-up), the medians ``tokens_per_s`` (target tokens of the updates'
    batches) and ``s_per_update`` and the mean ``inner_steps`` per update
    (--aggressive, else None); plus ``batches_per_epoch`` and the run's ``wall_s``."""
    cmd = [
        os.path.join(BIN, "fairseq-train"), bin_dir,
        "--user-dir", os.path.join(REPO, "fairseq_seqvae"),
        "--task", "seqvae_language_modeling", "--criterion", "seqvae_elbo", "--cpu",
        "--optimizer", "sgd", "--lr", "1.0", "--clip-norm", "5.0",
        "--max-update", str(updates), "--seed", "1",
        "--disable-validation", "--no-save", "--num-workers", "0",
        "--log-format", "json", "--log-interval", str(log_interval), "--no-progress-bar",
        *flags,
    ]
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(cmd + ["--save-dir", tmp], capture_output=True, text=True)
    wall = time.time() - start
    if out.returncode != 0:
        sys.exit(f"fairseq-train failed:\n{out.stderr[-3000:]}")
    records, batches = [], None
    for line in (out.stdout + out.stderr).splitlines():
        if "| train_inner |" in line:
            records.append(json.loads(line.split("| train_inner |", 1)[1]))
        elif "grouped total_num_itrs = " in line:
            batches = int(line.rsplit("=", 1)[1])
    if len(records) < 2:
        sys.exit("too few logged intervals: raise --updates or lower --log-interval")
    records = records[1:]
    # fairseq rounds ups to 2 decimals; tokens per update / tokens per s is finer
    s_per_update = [float(r["wpb"]) / float(r["wps"]) for r in records]
    inner = [float(r["inner_steps"]) for r in records if "inner_steps" in r]
    return {
        "tokens_per_s": statistics.median(float(r["wps"]) for r in records),
        "s_per_update": statistics.median(s_per_update),
        "inner_steps": statistics.mean(inner) if inner else None,
        "batches_per_epoch": batches,
        "wall_s": wall,
    }


def train_throughput(bin_dir, arch, precision, batch_size, max_tokens, updates, log_interval):
    """(median tokens/s over logged intervals after the first, seconds per update)."""
    flags = ["--arch", arch]
    if batch_size:
        flags += ["--batch-size", str(batch_size)]
    if max_tokens:
        flags += ["--max-tokens", str(max_tokens)]
    if precision == "bf16":
        flags += ["--bf16-autocast"]
    stats = fairseq_train_stats(bin_dir, flags, updates, log_interval)
    return stats["tokens_per_s"], stats["s_per_update"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "ptb"),
                        help="PTB text directory (train.txt, valid.txt); default ../shared/data/ptb")
    parser.add_argument("--bin-dir", default=os.path.join(REPO, "data-bin", "ptb"),
                        help="where to binarize it once (default data-bin/ptb, git-ignored)")
    parser.add_argument("--archs", default="seqvae_lstm_ptb,seqvae_lstm_yahoo",
                        help="comma-separated architectures (default: PTB and Yahoo sizes)")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="comma-separated: fp32 and/or bf16 (the task's --bf16-autocast)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="sentences per batch for the reference comparison (default 32)")
    parser.add_argument("--max-tokens", default="",
                        help="comma-separated --max-tokens values to sweep as well "
                             "(e.g. 1000,2000,4000), with the first architecture")
    parser.add_argument("--updates", type=int, default=200,
                        help="optimizer updates per run (default 200)")
    parser.add_argument("--log-interval", type=int, default=25,
                        help="updates per timing interval; the first is warm-up (default 25)")
    args = parser.parse_args()

    binarize(os.path.abspath(args.data), args.bin_dir)
    archs = args.archs.split(",")
    precisions = args.precisions.split(",")
    runs = [(a, p, args.batch_size, None) for a in archs for p in precisions]
    runs += [(archs[0], p, None, int(m)) for m in filter(None, args.max_tokens.split(","))
             for p in precisions]

    header = f"{'arch':<18} {'precision':<9} {'batch':<16} {'tokens/s':>9} {'s/update':>9} {'x reference':>11}"
    rows = []
    start = time.time()
    for arch, precision, bsz, max_tokens in runs:
        tps, spu = train_throughput(args.bin_dir, arch, precision, bsz, max_tokens,
                                    args.updates, args.log_interval)
        batch = f"{bsz} sentences" if bsz else f"{max_tokens} max-tokens"
        ref = REFERENCE_TOKENS_PER_S.get(arch)
        ratio = f"{tps / ref:.2f}" if ref and bsz == 32 else "-"
        rows.append(f"{arch:<18} {precision:<9} {batch:<16} {tps:>9.0f} {spu:>9.3f} {ratio:>11}")
        print(rows[-1], flush=True)
    print(f"\n{header}\n" + "\n".join(rows))
    print(f"\nreference (He et al. 2019 code, batch 32, this CPU kind): "
          f"{REFERENCE_TOKENS_PER_S}; total wall time {time.time() - start:.0f} s; "
          f"torch threads: fairseq default ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
