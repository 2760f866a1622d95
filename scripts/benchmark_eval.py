#!/usr/bin/env python
"""Evaluation-speed benchmark: importance-weighted NLL with k samples (default 500)
on the PTB test set, batched as seqvae-eval does it, against the reference protocol
(He et al. 2019's code: one sentence at a time, samples in chunks of 100), in the
same run. Prints sentences/s and the projected time for the whole test set.

The model is seqvae_lstm_ptb (or --arch) after one training update, or a checkpoint
given with --path: the speed does not depend on the weights. The reference code
takes 0.843 s per PTB test sentence at k=500 on this kind of 2-core CPU
(docs/PERFORMANCE.md). Timings on a shared machine are noisy:
run on an idle machine and compare ratios taken in one run.

    python scripts/benchmark_eval.py --data PTB_DIR    # train.txt, valid.txt, test.txt of PTB
    python scripts/benchmark_eval.py --data PTB_DIR --sentences 256 --max-tokens 10000,40000,160000
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch

from fairseq_seqvae.cli.fairseq_commands import binarize_once, train_command
from fairseq_seqvae.hub import SeqVAE
from fairseq_seqvae.scoring import evaluate_dataset, load_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REFERENCE_S_PER_SENTENCE = 0.843


def one_update_checkpoint(bin_dir: str, arch: str, save_dir: str) -> str:
    subprocess.run(
        train_command(bin_dir, "--arch", arch, "--optimizer", "adam", "--lr", "0.001",
                      "--batch-size", "32", "--max-update", "1", "--disable-validation",
                      "--save-dir", save_dir, "--no-progress-bar")
        + (["--cpu"] if not torch.cuda.is_available() else []),
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return os.path.join(save_dir, "checkpoint_last.pt")


def timed(model, dataset, device, **kwargs):
    torch.manual_seed(1)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.time()
    result = evaluate_dataset(model, dataset, device=device, **kwargs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.time() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="PTB text directory (train.txt, valid.txt, test.txt)")
    parser.add_argument("--bin-dir", default=os.path.join(REPO, "data-bin", "ptb"),
                        help="where to binarize it once (default data-bin/ptb, git-ignored)")
    parser.add_argument("--path", help="checkpoint to time (default: --arch after one update)")
    parser.add_argument("--arch", default="seqvae_lstm_ptb", help="default seqvae_lstm_ptb")
    parser.add_argument("-k", type=int, default=500, help="importance samples (default 500)")
    parser.add_argument("--sentences", type=int, default=64,
                        help="the first N test sentences are timed in every mode (default 64)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the one-sentence-at-a-time run")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32)")
    parser.add_argument("--max-tokens", default="40000",
                        help="comma-separated decoder positions per forward pass to try "
                        "(default 40000, seqvae-eval's default)")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    args = parser.parse_args()

    device = "cpu" if args.cpu or not torch.cuda.is_available() else "cuda"
    binarize_once(os.path.abspath(args.data), args.bin_dir)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.path or one_update_checkpoint(args.bin_dir, args.arch, tmp)
        vae = SeqVAE.from_pretrained(path, args.bin_dir, device=device)
    subset = load_split(vae.task, "test", args.sentences)
    total = len(load_split(vae.task, "test"))
    rows = []
    if not args.no_reference:
        longest = int(subset.sizes.max())
        secs, _ = timed(vae.model, subset, device, k=args.k, batch_size=1,
                        max_tokens=100 * longest)
        rows.append(("one at a time, chunks of 100", len(subset), secs))
    for max_tokens in [int(m) for m in args.max_tokens.split(",")]:
        secs, _ = timed(vae.model, subset, device, k=args.k, batch_size=args.batch_size,
                        max_tokens=max_tokens)
        rows.append((f"batch {args.batch_size}, max-tokens {max_tokens}", len(subset), secs))

    threads = torch.get_num_threads() if device == "cpu" else "-"
    print(f"\nIW-NLL, k={args.k}, {args.arch if not args.path else path} on {device} "
          f"(torch threads {threads}); PTB test = {total} sentences")
    print(f"| mode | sentences | seconds | sentences/s | s/sentence | whole test set |")
    print(f"|---|---:|---:|---:|---:|---:|")
    for mode, n, secs in rows:
        print(f"| {mode} | {n} | {secs:.1f} | {n / secs:.2f} | {secs / n:.3f} | "
              f"{secs / n * total / 60:.1f} min |")
    print(f"| reference code (docs/PERFORMANCE.md) | - | - | "
          f"{1 / REFERENCE_S_PER_SENTENCE:.2f} | {REFERENCE_S_PER_SENTENCE:.3f} | "
          f"{REFERENCE_S_PER_SENTENCE * total / 60:.1f} min |")


if __name__ == "__main__":
    sys.exit(main())
