#!/usr/bin/env python
"""Evaluation-speed benchmark: importance-weighted NLL with k samples (default 500)
on the PTB test set, batched as seqvae-eval does it, against the reference protocol
(He et al. 2019's code: one sentence at a time, samples in chunks of 100), in the
same run. Prints sentences/s and the projected time for the whole test set.

The model is seqvae_lstm_ptb (or --arch) after one training update, or a checkpoint
given with --path: the speed does not depend on the weights. With ``--reference DIR`` (a
checkout of He et al. 2019's code, github.com/jxhe/vae-lagging-encoder, not part of this
project) its own evaluator runs on the same sentences in the same invocation
(scripts/reference_speed.py); without it the table quotes its recorded 0.843 s per PTB
test sentence at k=500 (docs/PERFORMANCE.md). ``--precisions fp32,bf16`` times
seqvae-eval's --precision choices. Timings on a shared machine are noisy: run on an idle
machine and compare ratios taken in one run.

    python scripts/benchmark_eval.py --data PTB_DIR    # train.txt, valid.txt, test.txt of PTB
    python scripts/benchmark_eval.py --data PTB_DIR --reference REF_DIR --precisions fp32,bf16
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
from fairseq_seqvae.scoring import PRECISIONS, evaluate_dataset, load_split
from reference_speed import measure  # scripts/ is on sys.path when a script runs

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


def reference_seconds(code_dir: str, text_dir: str, sentences: int, k: int) -> float:
    """s/sentence of He et al.'s own IW-NLL on the first ``sentences`` test sentences."""
    return measure("--code", code_dir, "--mode", "eval",
                   "--text", os.path.join(text_dir, "train.txt"),
                   "--eval-text", os.path.join(text_dir, "test.txt"),
                   "--sentences", str(sentences), "-k", str(k))["s_per_sentence"]


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
                        help="skip our one-sentence-at-a-time run")
    parser.add_argument("--reference", metavar="DIR",
                        help="a checkout of github.com/jxhe/vae-lagging-encoder: time its own "
                             "evaluator on the same sentences (k a multiple of 100)")
    parser.add_argument("--precisions", default="fp32",
                        help="comma-separated seqvae-eval --precision values to time in "
                             "batched mode (default fp32)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32)")
    parser.add_argument("--max-tokens", default="40000",
                        help="comma-separated decoder positions per forward pass to try "
                        "(default 40000, seqvae-eval's default)")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even if CUDA is available")
    args = parser.parse_args()

    precisions = [p for p in args.precisions.split(",") if p]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        parser.error(f"--precisions: choose from {','.join(PRECISIONS)}")
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
    for precision in precisions:
        for max_tokens in [int(m) for m in args.max_tokens.split(",")]:
            secs, result = timed(vae.model, subset, device, k=args.k,
                                 batch_size=args.batch_size, max_tokens=max_tokens,
                                 precision=precision)
            rows.append((f"batch {args.batch_size}, max-tokens {max_tokens}, {precision}",
                         len(subset), secs))
            print(f"{rows[-1][0]}: {secs / len(subset):.3f} s/sentence, "
                  f"IW-NLL {result['iw_nll']:.4f}", flush=True)
    ref = REFERENCE_S_PER_SENTENCE
    if args.reference:
        ref = reference_seconds(args.reference, os.path.abspath(args.data), len(subset), args.k)
        rows.append(("reference code, measured now", len(subset), ref * len(subset)))

    threads = torch.get_num_threads() if device == "cpu" else "-"
    print(f"\nIW-NLL, k={args.k}, {args.arch if not args.path else path} on {device} "
          f"(torch threads {threads}); PTB test = {total} sentences")
    print("| mode | sentences | seconds | sentences/s | s/sentence | whole test set "
          "| x reference |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for mode, n, secs in rows:
        print(f"| {mode} | {n} | {secs:.1f} | {n / secs:.2f} | {secs / n:.3f} | "
              f"{secs / n * total / 60:.1f} min | {ref * n / secs:.2f} |")
    if not args.reference:
        print(f"| reference code (docs/PERFORMANCE.md) | - | - | {1 / ref:.2f} | {ref:.3f} | "
              f"{ref * total / 60:.1f} min | 1.00 |")


if __name__ == "__main__":
    sys.exit(main())
