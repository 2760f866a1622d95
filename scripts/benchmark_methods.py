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

The methods and their flags are examples/train.sh's (``--print-flags METHOD``, with its
PTB setting), so the benchmark times what the examples train.

    python scripts/benchmark_methods.py --data PTB_DIR --updates 40
    python scripts/benchmark_methods.py --data PTB_DIR --methods last,aggressive \
        --arch seqvae_lstm_tiny
"""

import argparse
import os
import subprocess
import time

from fairseq_seqvae.cli import table
from fairseq_seqvae.cli.fairseq_commands import binarize_once, train_timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_SH = os.path.join(REPO, "examples", "train.sh")
# the reference of the ratio column
REFERENCE_METHOD = "last"
# what each of examples/train.sh's methods is, for the table (its flags stay there)
DESCRIPTIONS = {
    "last": "standard VAE, last state (Bowman et al. 2016)",
    "max": "max pooling (Long et al. 2019)",
    "mean": "mean pooling (Long et al. 2019)",
    "aggressive": "aggressive training (He et al. 2019)",
    "cyclical": "cyclical annealing (Fu et al. 2019)",
    "free-bits": "free bits 0.5 (Li et al. 2019)",
    "bn-vae": "BN-VAE gamma 0.6 (Zhu et al. 2020)",
    "max-free-bits": "max pooling and free bits 0.5",
    "ae-free-bits": "free bits 0.5 after an autoencoder (Li et al. 2019); the VAE stage",
    "lm": "LSTM language model",
}


def train_sh(*args: str) -> str:
    return subprocess.run(["bash", TRAIN_SH, *args], check=True, capture_output=True,
                          text=True).stdout


def method_names():
    """examples/train.sh's methods, the reference first."""
    names = train_sh("--list-methods").split()
    return [REFERENCE_METHOD] + [m for m in names if m != REFERENCE_METHOD]


def method_flags(method: str):
    """The fairseq-train flags examples/train.sh adds for ``method`` (PTB setting)."""
    return train_sh("--dataset", "ptb", "--print-flags", method).split("\n")[:-1]


def format_table(rows):
    reference = rows[0]["s_per_epoch"]
    header = ["method", "s/update", "s/epoch", "tokens/s", f"x {rows[0]['method']}",
              "inner steps", "description"]
    cells = [[r["method"], f"{r['s_per_update']:.3f}", f"{r['s_per_epoch']:.1f}",
              f"{r['tokens_per_s']:.0f}", f"{r['s_per_epoch'] / reference:.2f}",
              "-" if r["inner_steps"] is None else f"{r['inner_steps']:.1f}", r["description"]]
             for r in rows]
    return table.format_table(header, cells, align="lrrrrrl")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="text directory with train.txt and valid.txt, one sentence per "
                             "line (e.g. PTB)")
    parser.add_argument("--bin-dir", default=os.path.join(REPO, "data-bin", "ptb"),
                        help="where to binarize it once (default data-bin/ptb, git-ignored)")
    known = method_names()
    parser.add_argument("--methods", default=",".join(known),
                        help=f"comma-separated methods of examples/train.sh, the first is "
                             f"the ratio's reference (default all: {','.join(known)})")
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
    unknown = [m for m in methods if m not in known]
    if unknown:
        parser.error(f"unknown --methods {unknown}; choose from {known}")
    binarize_once(os.path.abspath(args.data), args.bin_dir)
    shared = ["--arch", args.arch, "--batch-size", str(args.batch_size),
              "--kl-schedule", "linear", "--kl-start", "0.1", "--kl-warmup-updates", "13000"]
    rows = []
    start = time.time()
    for method in methods:
        description = DESCRIPTIONS.get(method, "")
        stats = train_timing(args.bin_dir, shared + method_flags(method), args.updates,
                                    args.log_interval)
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
