#!/usr/bin/env python
"""Profiles this plugin's training step and prints where the time goes: torch.profiler's
operators by self time, and the forward / backward / optimizer split.

The step is the one fairseq-train runs (the task's ``train_step`` with its criterion,
gradient clipping, then the optimizer), built from the same flags as fairseq-train:

    python scripts/profile_train.py data-bin/ptb --arch seqvae_lstm_yahoo --bf16-autocast
    OMP_NUM_THREADS=1 python scripts/profile_train.py data-bin/ptb --arch seqvae_lstm_ptb \\
        --bf16-autocast --steps 30 --rows 25

Flags it does not know go to fairseq's parser (``--optimizer``, ``--lr``, model flags...);
by default SGD lr 1, clip 5, batches of 32 sentences, as scripts/benchmark_train.py times.
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from fairseq_seqvae.cli.fairseq_commands import CRITERION, PLUGIN_DIR, TASK  # noqa: E402


def build(data, fairseq_flags):
    """task, model, criterion and fairseq optimizer from fairseq-train's flags."""
    from fairseq import optim, options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        data, "--user-dir", PLUGIN_DIR, "--task", TASK, "--criterion", CRITERION, "--cpu",
        "--optimizer", "sgd", "--lr", "1.0", "--clip-norm", "5.0", "--batch-size", "32",
        "--seed", "1", *fairseq_flags,
    ])
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.build_optimizer(cfg.optimizer, params)
    batches = task.get_batch_iterator(
        dataset=task.dataset("train"), max_tokens=cfg.dataset.max_tokens,
        max_sentences=cfg.dataset.batch_size, seed=1,
    ).next_epoch_itr(shuffle=True)
    return cfg, task, model, criterion, optimizer, batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="binarized data (fairseq-preprocess --only-source)")
    parser.add_argument("--steps", type=int, default=20,
                        help="profiled training steps, after --warmup ones (default 20)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="unprofiled steps first (default 5)")
    parser.add_argument("--rows", type=int, default=20,
                        help="operators shown (default 20)")
    args, fairseq_flags = parser.parse_known_args()

    import torch
    from torch.profiler import ProfilerActivity, profile
    cfg, task, model, criterion, optimizer, batches = build(args.data, fairseq_flags)
    update = [0]

    def step():
        sample = next(batches)
        optimizer.zero_grad()
        task.train_step(sample, model, criterion, optimizer, update[0])
        with torch.autograd.profiler.record_function("optimizer"):
            optimizer.clip_grad_norm(cfg.optimization.clip_norm)
            task.optimizer_step(optimizer, model, update[0])
        update[0] += 1
        return int(sample["ntokens"])

    for _ in range(args.warmup):
        step()
    tokens, start = 0, time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            tokens += step()
    wall = time.perf_counter() - start
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    phases = {e.key: e.cpu_time_total for e in events
              if e.key in ("forward", "backward", "optimizer")}
    total = sum(phases.values()) or 1.0
    print(f"{args.steps} steps, {tokens} target tokens, {wall / args.steps:.3f} s per step "
          f"under the profiler, {torch.get_num_threads()} threads")
    print("phase     share")
    for name in ("forward", "backward", "optimizer"):
        print(f"{name:<9} {100 * phases.get(name, 0) / total:5.1f}%")


if __name__ == "__main__":
    main()
