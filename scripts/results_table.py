#!/usr/bin/env python
"""The results table of docs/RESULTS.md: seqvae-eval results of several seeds per method,
as mean +- standard deviation, next to the published numbers.

    examples/eval.sh --dataset ptb --json > ptb-test.jsonl
    python scripts/results_table.py ptb-test.jsonl --dataset ptb

Input: the JSON lines of ``seqvae-eval --json`` (other lines are ignored). A run's method
is its checkpoint directory's name without the ``-s<seed>`` suffix (examples/train.sh saves
to ``<dataset>-<method>-s<seed>``), so the seeds of a method are averaged together; rows
keep the input order, followed by the published rows that were not run (seeds 0). The published columns (``--dataset ptb``) are Li et al. 2020
(Optimus), Table 8: other papers' numbers, not our measurements.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from fairseq_seqvae.cli.table import format_table

# method -> (PPL, MI, AU) published for PTB, as tabulated in Li et al. 2020 (Optimus) Table 8
PUBLISHED = {
    "ptb": {
        "lm": ("100.47", "-", "-"),
        "last": ("101.40", "0.0", "0"),
        "cyclical": ("108.81", "1.27", "5"),
        "aggressive": ("99.83", "0.83", "4"),
        "ae-free-bits": ("96.86", "5.31", "32"),
    },
}
SEED_SUFFIX = re.compile(r"-s\d+$")
COLUMNS = [  # (key, header, digits)
    ("iw_nll", "IW-NLL", 2),
    ("ppl", "PPL", 2),
    ("kl", "KL", 2),
    ("mi", "MI", 2),
    ("au", "AU", 1),
]


def method_of(result, dataset_prefix):
    """'checkpoints/ptb-max-s2/checkpoint_best.pt' -> 'max' (with prefix 'ptb-')."""
    name = SEED_SUFFIX.sub("", Path(result["checkpoint"]).parent.name)
    return name[len(dataset_prefix):] if name.startswith(dataset_prefix) else name


def mean_sd(values, digits):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def read_results(paths):
    results = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("{"):
                    results.append(json.loads(line))
    if not results:
        sys.exit(f"error: no seqvae-eval --json line in {', '.join(paths)}")
    return results


def k_label(runs):
    """The importance samples of the runs, and "exact" for an LM's (no latent, exact NLL)."""
    ks = [str(k) for k in sorted({r["k"] for r in runs if r.get("latent_dim") != 0})]
    return ", ".join(ks + ["exact"] * any(r.get("latent_dim") == 0 for r in runs))


def table(results, published=None, dataset_prefix=""):
    groups = {}  # method -> its runs, in input order
    for r in results:
        groups.setdefault(method_of(r, dataset_prefix), []).append(r)
    header = ["method", "seeds", "k"] + [h for _, h, _ in COLUMNS] + ["epochs", "updates",
                                                                      "train h"]
    if published is not None:
        header += ["published PPL", "published MI", "published AU"]
    rows = []
    for method, runs in groups.items():
        row = [method, str(len(runs)), k_label(runs)]
        row += [mean_sd([r[key] for r in runs if key in r], digits) for key, _, digits in COLUMNS]
        row += [mean_sd([r["epochs"] for r in runs if "epochs" in r], 0),
                mean_sd([r["updates"] for r in runs if "updates" in r], 0),
                mean_sd([(r["train_seconds"] + r.get("pretrain_seconds", 0)) / 3600
                         for r in runs if "train_seconds" in r], 2)]
        if published is not None:
            row += list(published.get(method, ("-",) * 3))
        rows.append(row)
    for method in published or {}:  # published rows this project has not run
        if method not in groups:
            rows.append([method, "0"] + ["-"] * (len(COLUMNS) + 4) + list(published[method]))
    return format_table(header, rows, markdown=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="files of seqvae-eval --json lines")
    parser.add_argument("--dataset", default="",
                        help="runs are named <dataset>-<method>-s<seed>; for ptb the "
                             "published PPL, MI and AU are added")
    args = parser.parse_args(argv)
    results = read_results(args.results)
    prefix = f"{args.dataset}-" if args.dataset else ""
    print(table(results, PUBLISHED.get(args.dataset), prefix))
    splits = sorted({r["split"] for r in results})
    print(f"\n{len(results)} run(s); split {', '.join(splits)}; k = {k_label(results)}; "
          "mean ± sample standard deviation over seeds; IW-NLL, KL in nats per sentence; "
          "MI in nats; k = importance samples; epochs, updates and train h (fairseq's training "
          "wall time, with that of a pretrained encoder's checkpoint) up to the evaluated "
          "checkpoint")


if __name__ == "__main__":
    main()
