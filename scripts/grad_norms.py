#!/usr/bin/env python
"""Gradient norms of a checkpoint's encoder and decoder, and what fairseq's clipping of their
joint norm does to the decoder's step.

fairseq-train clips the gradient of the whole model to --clip-norm (5 in He et al.'s loop), so
a large encoder gradient also shrinks the decoder's SGD step. This script runs the run's own
training forward and backward pass (its criterion with the KL weight of the checkpoint's
update, dropout and word dropout on, its autocast) on training batches, without updating,
divides the gradient by the sample size as fairseq's trainer does, and prints the mean over
the batches of:

| row                   | meaning                                                              |
|-----------------------|----------------------------------------------------------------------|
| encoder, decoder norm | L2 norms of the two halves' gradients (the model's param_group)      |
| whole-model norm      | what fairseq clips and logs as gnorm                                 |
| clipped               | share of batches whose whole-model norm exceeds --clip-norm          |
| decoder step scale    | min(1, clip / whole-model norm): the factor applied to the decoder's |
|                       | gradient, beside min(1, clip / decoder norm), were the decoder       |
|                       | clipped alone                                                        |

    python scripts/grad_norms.py checkpoints/ptb-fast/ptb-max-s1 --batches 50
"""

import argparse
import json
import math
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fairseq_seqvae.cli.table import format_records  # noqa: E402
from fairseq_seqvae.hub import load_checkpoint, resolve_checkpoint  # noqa: E402
from fairseq_seqvae.optim.encoder_decoder import HALVES  # noqa: E402

COLUMNS = [("encoder_norm", "encoder norm", "{:.4g}"), ("decoder_norm", "decoder norm", "{:.4g}"),
           ("whole_norm", "whole-model norm", "{:.4g}"), ("clipped", "clipped", "{:.2f}"),
           ("decoder_scale", "decoder step scale", "{:.3f}"),
           ("decoder_scale_alone", "decoder clipped alone", "{:.3f}")]


def gradient_norms(model, task, criterion, sample, updates: int):
    """Per-half gradient L2 norms of one training batch, divided by its sample size."""
    model.train()
    model.set_num_updates(updates)
    model.zero_grad()
    with task.autocast(model):
        loss, sample_size, _ = criterion(model, sample)
    loss.backward()
    norms = {}
    for half in HALVES:
        squares = [p.grad.float().pow(2).sum().item() for p in model.parameters()
                   if getattr(p, "param_group", None) == half and p.grad is not None]
        norms[half] = math.sqrt(sum(squares)) / max(sample_size, 1)
    return norms


def summarize(rows, clip_norm: float):
    """Means over the batches of the quantities in the module docstring."""
    def mean(values):
        values = list(values)
        return sum(values) / len(values)

    whole = [math.hypot(r["encoder"], r["decoder"]) for r in rows]
    out = {
        "batches": len(rows),
        "clip_norm": clip_norm,
        "encoder_norm": mean(r["encoder"] for r in rows),
        "decoder_norm": mean(r["decoder"] for r in rows),
        "whole_norm": mean(whole),
    }
    if clip_norm > 0:
        out["clipped"] = mean(w > clip_norm for w in whole)
        out["decoder_scale"] = mean(min(1.0, clip_norm / w) if w else 1.0 for w in whole)
        out["decoder_scale_alone"] = mean(min(1.0, clip_norm / r["decoder"]) if r["decoder"]
                                          else 1.0 for r in rows)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="a checkpoint file, or a fairseq-train --save-dir "
                        "(its checkpoint_best.pt)")
    parser.add_argument("--data", default=None, help="binarized data directory (default: the "
                        "one recorded in the checkpoint)")
    parser.add_argument("--batches", type=int, default=50,
                        help="training batches averaged over (default 50)")
    parser.add_argument("--clip-norm", type=float, default=None,
                        help="the clipping threshold (default: the run's --clip-norm)")
    parser.add_argument("--seed", type=int, default=1, help="batch order and dropout (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON line, not a table")
    args = parser.parse_args(argv)
    if args.batches < 1:
        parser.error(f"--batches must be >= 1, got {args.batches}")
    try:
        path = resolve_checkpoint(args.path)
        model, task, cfg, progress = load_checkpoint(path, args.data)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    clip_norm = cfg.optimization.clip_norm if args.clip_norm is None else args.clip_norm
    torch.manual_seed(args.seed)
    task.load_dataset("train")
    criterion = task.build_criterion(cfg.criterion)
    batches = task.get_batch_iterator(
        dataset=task.dataset("train"), max_tokens=cfg.dataset.max_tokens,
        max_sentences=cfg.dataset.batch_size, seed=args.seed,
    ).next_epoch_itr(shuffle=True)
    rows = [gradient_norms(model, task, criterion, sample, progress["updates"])
            for _, sample in zip(range(args.batches), batches)]
    if len(rows) < args.batches:
        print(f"warning: the training set has {len(rows)} batches, fewer than --batches "
              f"{args.batches}; averaged over {len(rows)}", file=sys.stderr)
    result = {"path": path, "updates": progress["updates"], **summarize(rows, clip_norm)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"{path}: {result['batches']} training batches at update {result['updates']}, "
          f"clip norm {clip_norm:g}")
    print(format_records([result], COLUMNS))

if __name__ == "__main__":
    main()
