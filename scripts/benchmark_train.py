#!/usr/bin/env python
"""Training-throughput benchmark: runs the real fairseq-train on PTB for a fixed
number of updates and prints target tokens/s (words + EOS) per configuration.

The reference column is He et al. 2019's code measured on this kind of 2-core CPU
(docs/PERFORMANCE.md): 5,096 tokens/s at the PTB size and
1,011 at the Yahoo size, batch 32 sentences, SGD. Timings on a shared machine are
noisy: run on an idle machine and compare ratios taken in one run.

    python scripts/benchmark_train.py --data PTB_DIR     # train.txt, valid.txt of PTB
    python scripts/benchmark_train.py --data PTB_DIR --archs seqvae_lstm_ptb \
        --precisions fp32,bf16 --max-tokens 1000,2000,4000
"""

import argparse
import os
import time

from fairseq_seqvae.cli.fairseq_commands import binarize_once, train_timing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_TOKENS_PER_S = {"seqvae_lstm_ptb": 5096, "seqvae_lstm_yahoo": 1011}


def train_throughput(bin_dir, arch, precision, batch_size, max_tokens, updates, log_interval):
    """(median tokens/s over logged intervals after the first, seconds per update)."""
    flags = ["--arch", arch]
    if batch_size:
        flags += ["--batch-size", str(batch_size)]
    if max_tokens:
        flags += ["--max-tokens", str(max_tokens)]
    if precision == "bf16":
        flags += ["--bf16-autocast"]
    stats = train_timing(bin_dir, flags, updates, log_interval)
    return stats["tokens_per_s"], stats["s_per_update"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="text directory with train.txt and valid.txt, one sentence "
                             "per line (the reference numbers are for PTB)")
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

    binarize_once(os.path.abspath(args.data), args.bin_dir)
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
