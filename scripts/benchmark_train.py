#!/usr/bin/env python
"""Training-throughput benchmark: runs the real fairseq-train on PTB for a fixed
number of updates and prints target tokens/s (words + EOS) per configuration.

With ``--reference DIR`` (a checkout of He et al. 2019's code, github.com/jxhe/
vae-lagging-encoder, which is not part of this project) the reference's own training step
runs in the same invocation, at the same model size and thread count, and the
"x reference" column divides by that measurement (scripts/reference_speed.py). Without
it the column divides by the reference's speed recorded in docs/PERFORMANCE.md (5,096
tokens/s at the PTB size, 1,011 at the Yahoo size, 2 threads). Timings on a shared
machine are noisy: run on an idle machine and compare ratios taken in one run.

    python scripts/benchmark_train.py --data PTB_DIR     # train.txt, valid.txt of PTB
    python scripts/benchmark_train.py --data PTB_DIR --reference REF_DIR --threads 1,2
    python scripts/benchmark_train.py --data PTB_DIR --archs seqvae_lstm_ptb \
        --precisions fp32,bf16 --max-tokens 1000,2000,4000
"""

import argparse
import os
import time

from fairseq_seqvae.cli.fairseq_commands import binarize_once, train_timing
from reference_speed import measure  # scripts/ is on sys.path when a script runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_TOKENS_PER_S = {"seqvae_lstm_ptb": 5096, "seqvae_lstm_yahoo": 1011}
REFERENCE_SIZE = {"seqvae_lstm_ptb": "ptb", "seqvae_lstm_yahoo": "yahoo"}


def set_threads(threads):
    """Every later subprocess (fairseq-train, the reference) runs with ``threads``."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def reference_throughput(code_dir, text, arch, batch_size, updates, log_interval):
    """(tokens/s, s/update) of He et al.'s own training step at ``arch``'s size."""
    stats = measure("--code", code_dir, "--text", text, "--size", REFERENCE_SIZE[arch],
                    "--batch-size", str(batch_size), "--updates", str(updates),
                    "--log-interval", str(log_interval))
    return stats["tokens_per_s"], stats["s_per_update"]


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
    parser.add_argument("--reference", metavar="DIR",
                        help="a checkout of github.com/jxhe/vae-lagging-encoder: time its own "
                             "training step beside ours (same size, batch and threads)")
    parser.add_argument("--threads", default="",
                        help="comma-separated thread counts per run (OMP_NUM_THREADS), each "
                             "measured in turn, e.g. 1,2 (default: the environment's, else "
                             "torch's default of one per core)")
    parser.add_argument("--updates", type=int, default=200,
                        help="optimizer updates per run (default 200)")
    parser.add_argument("--log-interval", type=int, default=25,
                        help="updates per timing interval; the first is warm-up (default 25)")
    args = parser.parse_args()

    archs = args.archs.split(",")
    precisions = args.precisions.split(",")
    unknown = [a for a in archs if args.reference and a not in REFERENCE_SIZE]
    if unknown:
        parser.error(f"--reference: no reference size for {','.join(unknown)}; use "
                     f"{','.join(REFERENCE_SIZE)}")
    binarize_once(os.path.abspath(args.data), args.bin_dir)
    threads = [int(t) for t in args.threads.split(",") if t] or [None]
    runs = [(a, p, args.batch_size, None) for a in archs for p in precisions]
    runs += [(archs[0], p, None, int(m)) for m in filter(None, args.max_tokens.split(","))
             for p in precisions]
    train_text = os.path.join(os.path.abspath(args.data), "train.txt")

    header = (f"{'threads':>7} {'arch':<18} {'implementation':<15} {'batch':<16} "
              f"{'tokens/s':>9} {'s/update':>9} {'x reference':>11}")
    rows = []

    def row(n_threads, arch, name, batch, tps, spu, ratio):
        rows.append(f"{n_threads:>7} {arch:<18} {name:<15} {batch:<16} {tps:>9.0f} "
                    f"{spu:>9.3f} {ratio:>11}")
        print(rows[-1], flush=True)

    start = time.time()
    for n in threads:
        if n is not None:
            set_threads(n)
        shown = n or os.environ.get("OMP_NUM_THREADS", "default")
        measured = {}
        for arch in archs if args.reference else []:
            measured[arch] = reference_throughput(args.reference, train_text, arch,
                                                  args.batch_size, args.updates,
                                                  args.log_interval)
            row(shown, arch, "reference fp32", f"{args.batch_size} sentences",
                *measured[arch], "1.00")
        for arch, precision, bsz, max_tokens in runs:
            tps, spu = train_throughput(args.bin_dir, arch, precision, bsz, max_tokens,
                                        args.updates, args.log_interval)
            batch = f"{bsz} sentences" if bsz else f"{max_tokens} max-tokens"
            ref = measured[arch][0] if arch in measured else REFERENCE_TOKENS_PER_S.get(arch)
            ratio = f"{tps / ref:.2f}" if ref and bsz == args.batch_size else "-"
            row(shown, arch, f"ours {precision}", batch, tps, spu, ratio)
    print(f"\n{header}\n" + "\n".join(rows))
    source = ("the reference measured above, same threads" if args.reference else
              f"the reference's recorded speed {REFERENCE_TOKENS_PER_S} (2 threads)")
    print(f"\nx reference: against {source}; total wall time {time.time() - start:.0f} s; "
          f"{os.cpu_count()} cores")

if __name__ == "__main__":
    main()
