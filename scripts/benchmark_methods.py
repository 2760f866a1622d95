#!/usr/bin/env python
"""Cost of the baselines: trains each method with the real fairseq-train for the same
number of updates on the same binarized data and prints wall time per epoch and
target tokens/s side by side, with the ratio of epoch time to the standard VAE's.

He et al. (2019) report aggressive inference-network training at 2-4x the time of a
plain VAE; Long et al. (2019) claim pooling costs no more than a plain VAE. The epoch
time is seconds per update (median over the logged intervals after the first) times
the number of batches in an epoch, so a short run estimates a full epoch. tokens/s
counts the target tokens of the regular updates' batches only (not those of the
aggressive inner loop), i.e. training progress per second. Every method uses the same
model size, batch, optimizer (SGD lr 1, clip 5) and seed; aggressive mode never
switches off here (no validation), like the first epoch He et al. time. A shared
machine is noisy: compare ratios taken in one run.

    python scripts/benchmark_methods.py --data ../shared/data/ptb --updates 40
    python scripts/benchmark_methods.py --methods standard,aggressive --arch seqvae_lstm_tiny
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_train import REPO, binarize, fairseq_train_stats  # noqa: E402

# name: (what it is, fairseq-train flags on top of the shared ones); the first is the
# reference of the ratio column
METHODS = {
    "standard": ("standard VAE, last state (Bowman et al. 2016)", ["--pooling", "last"]),
    "max": ("max pooling (Long et al. 2019)", ["--pooling", "max"]),
    "aggressive": ("aggressive training (He et al. 2019)", ["--pooling", "last", "--aggressive"]),
    "cyclical": ("cyclical annealing (Fu et al. 2019)",
                 ["--pooling", "last", "--kl-schedule", "cyclical", "--kl-cycle-updates", "5000"]),
    "free-bits": ("free bits 0.5 (Li et al. 2019)", ["--pooling", "last", "--free-bits", "0.5"]),
    "bn-vae": ("BN-VAE gamma 0.6 (Zhu et al. 2020)", ["--pooling", "last", "--bn-gamma", "0.6"]),
    "lm": ("LSTM language model", ["--latent-dim", "0"]),
}


def format_table(rows):
    header = (f"{'method':<12} {'s/update':>9} {'s/epoch':>9} {'tokens/s':>9} "
              f"{'x standard':>10} {'inner steps':>11}  description")
    lines = [header, "-" * len(header)]
    reference = rows[0]["s_per_epoch"]
    for r in rows:
        inner = f"{r['inner_steps']:.1f}" if r["inner_steps"] is not None else "-"
        lines.append(
            f"{r['method']:<12} {r['s_per_update']:>9.3f} {r['s_per_epoch']:>9.1f} "
            f"{r['tokens_per_s']:>9.0f} {r['s_per_epoch'] / reference:>10.2f} {inner:>11}  "
            f"{r['description']}"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "ptb"),
                        help="text directory with train.txt and valid.txt, one sentence per "
                             "line (default ../shared/data/ptb)")
    parser.add_argument("--bin-dir", default=os.path.join(REPO, "data-bin", "ptb"),
                        help="where to binarize it once (default data-bin/ptb, git-ignored)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, the first is the ratio's reference "
                             f"(default all: {','.join(METHODS)})")
    parser.add_argument("--arch", default="seqvae_lstm_ptb",
                        help="model size for every method (default seqvae_lstm_ptb)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="sentences per batch (default 32, as He et al.)")
    parser.add_argument("--updates", type=int, default=40,
                        help="optimizer updates per method (default 40)")
    parser.add_argument("--log-interval", type=int, default=5,
                        help="updates per timing interval; the first is warm-up (default 5)")
    args = parser.parse_args(argv)

    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {list(METHODS)}")
    binarize(os.path.abspath(args.data), args.bin_dir)
    shared = ["--arch", args.arch, "--batch-size", str(args.batch_size),
              "--kl-schedule", "linear", "--kl-start", "0.1", "--kl-warmup-updates", "13000"]
    rows = []
    start = time.time()
    for method in methods:
        description, flags = METHODS[method]
        stats = fairseq_train_stats(args.bin_dir, shared + flags, args.updates, args.log_interval)
        stats.update(method=method, description=description,
                     s_per_epoch=stats["s_per_update"] * stats["batches_per_epoch"])
        rows.append(stats)
        print(f"{method}: {stats['s_per_update']:.3f} s/update, {stats['tokens_per_s']:.0f} "
              f"tokens/s ({stats['wall_s']:.0f} s)", flush=True)
    print(f"\n{format_table(rows)}")
    print(f"\n{args.updates} updates per method (the first {args.log_interval} not timed), "
          f"--arch {args.arch}, batch {args.batch_size} sentences, "
          f"{rows[0]['batches_per_epoch']} batches per epoch; total wall time "
          f"{time.time() - start:.0f} s; torch threads: fairseq default ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
