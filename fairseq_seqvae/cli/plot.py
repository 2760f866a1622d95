"""seqvae-plot (also ``scripts/plot_training.py``): figures of sequence-VAE runs.

KL, mutual information, active units, reconstruction and -ELBO against optimizer
updates, one line per run (the picture of posterior collapse, Bowman et al. 2016 /
He et al. 2019, and of its prevention by pooling, Long et al. 2019); and a 2-D PCA
projection of posterior means (coloured by label or sentence length if asked).

    # runs as NAME=PATH (or PATH: named after its directory). PATH is a fairseq-train
    # log (stdout of --log-format json or simple), a --tensorboard-logdir, or a --save-dir
    # holding one or a train.log (seqvae-compare's folders)
    seqvae-plot curves max=checkpoints/ptb-max last=checkpoints/ptb-last \\
        lm=logs/ptb-lm.log --out curves.png --train
    seqvae-plot latent max=checkpoints/yelp-max last=checkpoints/yelp-last \\
        --data data-bin/yelp --text data-bin/yelp/text/test.txt \\
        --labels data-bin/yelp/text/test.labels --out latent.png
"""

import argparse
import math
import os
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fairseq_seqvae.cli import quiet_libraries  # noqa: E402
from fairseq_seqvae.cli.text import NotUTF8Error, read_lines  # noqa: E402
from fairseq_seqvae.fairseq_logs import LogError, Series, load_run  # noqa: E402
from fairseq_seqvae.hub import SeqVAE  # noqa: E402
from fairseq_seqvae.modules.gaussian import active_units  # noqa: E402

# metric -> (panel title, y-axis label); units as in fairseq_seqvae/criterions/seqvae_elbo.py
METRICS = {
    "kl": ("KL(q(z|x) || p(z))", "nats / sentence"),
    "mi": ("mutual information I(x; z)", "nats"),
    "au": ("active units", "latent dimensions"),
    "rec": ("reconstruction -E_q log p(x|z)", "nats / sentence"),
    "elbo": ("negative ELBO (rec + KL)", "nats / sentence"),
    "kl_weight": ("KL weight beta", "beta"),
    "ppl": ("perplexity bound 2^nll_loss", "perplexity"),
}
DEFAULT_METRICS = "kl,mi,au,rec,elbo"
# training curves exist only for these (mi and au are computed on validation)
TRAIN_METRICS = ("kl", "rec", "elbo", "kl_weight", "ppl", "loss", "nll_loss")
MAX_CATEGORIES = 20


def note(message: str):
    print(f"note: {message}", file=sys.stderr, flush=True)


class PlotError(Exception):
    """Bad input (paths, logs, labels): reported as one message."""


# ---- naming runs ------------------------------------------------------------------


def run_spec(spec: str) -> Tuple[str, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare PATH is named after its directory (a
    file after the directory that holds it)."""
    name, sep, path = spec.partition("=")
    if not sep or not name or os.path.exists(spec):
        path = spec
        folder = os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else path
        name = os.path.basename(os.path.normpath(folder))
    return name, path


def named_runs(specs: Sequence[str]) -> List[Tuple[str, str]]:
    runs = [run_spec(s) for s in specs]
    names = [name for name, _ in runs]
    for name in names:
        if names.count(name) > 1:
            raise PlotError(f"two runs are named {name!r}: name them with NAME=PATH")
    return runs


# ---- training curves ---------------------------------------------------------------


def training_series(series: Series) -> Optional[Dict[str, List[Tuple[int, float]]]]:
    """Per-interval training metrics (train_inner), else the per-epoch ones (train)."""
    return series.get("train_inner") or series.get("train")


def grid(n: int, ncols: int = 3) -> Tuple[int, int]:
    ncols = min(ncols, n)
    return math.ceil(n / ncols), ncols


def plot_curves(runs: List[Tuple[str, Series]], metrics: Sequence[str], split: str,
                with_train: bool, out: str, title: Optional[str] = None,
                dpi: int = 120) -> List[str]:
    """One panel per metric, one colour per run: ``split`` (solid, dots) and, with
    ``with_train``, training curves (dashed). Returns the metrics plotted."""
    panels = []
    for metric in metrics:
        have = [name for name, s in runs if s.get(split, {}).get(metric)]
        for name, s in runs:
            if name not in have:
                note(f"run {name!r} has no {split} {metric}; its line is left out")
        if have:
            panels.append(metric)
        else:
            note(f"no run logged {split} {metric}: no {metric} panel")
    if not panels:
        raise PlotError(f"nothing to plot: no run has {split} values of {', '.join(metrics)} "
                        f"(tags found: {sorted({t for _, s in runs for t in s})})")
    rows, cols = grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    axes = axes.ravel()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes, panels):
        panel_title, unit = METRICS.get(metric, (metric, ""))
        for i, (name, s) in enumerate(runs):
            colour = colours[i % len(colours)]
            points = s.get(split, {}).get(metric)
            if points:
                x, y = zip(*points)
                ax.plot(x, y, "-o", color=colour, markersize=3, linewidth=1.6)
            train = training_series(s) if with_train and metric in TRAIN_METRICS else None
            if train and train.get(metric):
                x, y = zip(*train[metric])
                ax.plot(x, y, "--", color=colour, linewidth=0.9, alpha=0.6)
        if metric == "au":  # a count
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel_title)
        ax.set_xlabel("optimizer updates")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], color=colours[i % len(colours)], marker="o", markersize=3)
               for i in range(len(runs))]
    names = [name for name, _ in runs]
    legend_title = f"{split} (solid)" + (", train (dashed)" if with_train else "")
    if len(axes) > len(panels):  # a spare grid cell holds the legend
        axes[len(panels)].legend(handles, names, loc="center", title=legend_title, frameon=False)
    else:
        axes[0].legend(handles, names, title=legend_title, fontsize="small",
                       title_fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return panels


def cmd_curves(args):
    runs = [(name, load_run(path)) for name, path in named_runs(args.runs)]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    panels = plot_curves(runs, metrics, args.split, args.train, args.out, args.title, args.dpi)
    print(f"wrote {args.out}: {', '.join(panels)} against updates for {len(runs)} run(s)")


# ---- latent space ------------------------------------------------------------------


def pca_2d(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Projects N x Z points on their first two principal components (padded with
    zeros when Z < 2). Each component's sign makes its largest loading positive, so
    the picture does not flip between runs.

    Returns:
        (N x 2 coordinates, the 2 components' fractions of the total variance)
    """
    centered = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)  # vt: K x Z
    k = min(2, vt.shape[0])
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    coords = np.zeros((x.shape[0], 2))
    coords[:, :k] = centered @ (vt[:k].T * signs)
    total = float((s ** 2).sum())
    ratios = np.zeros(2)
    if total > 0:
        ratios[:k] = s[:k] ** 2 / total
    return coords, ratios


def length_buckets(sentences: Sequence[str], buckets: int) -> List[str]:
    """A label per sentence: the range of word counts of its bucket among ``buckets``
    length quantiles ("3-7"); equal lengths always share a bucket."""
    lengths = np.array([len(s.split()) for s in sentences])
    cuts = np.unique(np.quantile(lengths, np.arange(1, buckets) / buckets, method="lower"))
    index = np.searchsorted(cuts, lengths, side="left")
    names = {}
    for b in np.unique(index):
        members = lengths[index == b]
        lo, hi = int(members.min()), int(members.max())
        names[b] = str(lo) if lo == hi else f"{lo}-{hi}"
    return [names[b] for b in index]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def category_order(labels: Sequence[str]) -> List[str]:
    """Distinct labels: numerically sorted when they are all numbers, else with the
    numbers inside them compared as numbers ("2-5" before "10-12")."""
    distinct = set(labels)
    if all(_is_number(label) for label in distinct):
        return sorted(distinct, key=float)
    return sorted(distinct, key=lambda label: [int(t) if t.isdigit() else t
                                               for t in re.split(r"(\d+)", label)])


def read_sentences(text_path: str,
                   labels_path: Optional[str]) -> Tuple[List[str], Optional[List[str]]]:
    """Sentences (and their labels, line by line); empty sentences are dropped with
    their labels."""
    try:
        sentences = [line.strip() for line in read_lines(text_path)]
        labels = [line.strip() for line in read_lines(labels_path)] if labels_path else None
    except NotUTF8Error as e:
        raise PlotError(str(e)) from None
    if labels_path:
        if len(labels) != len(sentences):
            raise PlotError(f"{labels_path} has {len(labels)} lines but {text_path} has "
                            f"{len(sentences)}: one label per sentence")
    keep = [i for i, s in enumerate(sentences) if s]
    if len(keep) < len(sentences):
        note(f"skipped {len(sentences) - len(keep)} empty line(s) of {text_path}")
    if len(keep) < 2:
        raise PlotError(f"{text_path} needs at least two sentences")
    return [sentences[i] for i in keep], ([labels[i] for i in keep] if labels else None)


def encode_means(name: str, checkpoint: str, sentences: List[str], data: Optional[str] = None,
                 checkpoint_file: str = "checkpoint_best.pt", cpu: bool = False,
                 batch_size: int = 64) -> Optional[np.ndarray]:
    """N x Z posterior means of a checkpoint, or None (with a note) for an LSTM LM."""
    try:
        vae = SeqVAE.from_pretrained(checkpoint, data, checkpoint_file=checkpoint_file,
                                     device="cpu" if cpu else None)
    except (FileNotFoundError, ValueError) as err:
        raise PlotError(f"{name}: {err}") from err
    if vae.latent_dim == 0:
        note(f"{name} is an LSTM language model (no latent variable): left out")
        return None
    mean, _ = vae.encode(sentences, max_sentences=batch_size)
    return mean.double().cpu().numpy()


def diameter(means: np.ndarray) -> float:
    """Twice the largest distance of a posterior mean from their centroid: every two
    means lie within this of each other."""
    return 2.0 * float(np.linalg.norm(means - means.mean(axis=0), axis=1).max())


def plot_latent(panels: List[Tuple[str, np.ndarray]], labels: Optional[List[str]],
                legend_title: str, out: str, dpi: int = 120):
    """Side-by-side scatter plots of PCA-projected posterior means, sharing axes so
    that the spreads compare. One colour, unless ``labels`` gives each point a
    category. A collapsed posterior (no active unit: every input gets about the same
    mean) is drawn with a large marker and says so in its panel, since on shared axes
    it is otherwise a dot.

    Returns:
        a row per panel: (name, N, Z, active units, summed variance of the means,
        the two components' variance fractions, diameter of the means)
    """
    categories = category_order(labels) if labels is not None else [None]
    cmap = plt.get_cmap("tab10" if len(categories) <= 10 else "tab20")
    labels = np.array(labels) if labels is not None else None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels) + 1.4, 4.2),
                             sharex=True, sharey=True, squeeze=False)
    rows = []
    for ax, (name, means) in zip(axes[0], panels):
        coords, ratios = pca_2d(means)
        variance = means.var(axis=0, ddof=1)  # Z
        means64 = torch.from_numpy(means)
        au = active_units(means64.sum(0), means64.pow(2).sum(0), len(means))
        spread = float(variance.sum())
        width = diameter(means)
        collapsed = au == 0
        for i, category in enumerate(categories):
            at = slice(None) if category is None else labels == category
            ax.scatter(coords[at, 0], coords[at, 1], s=60 if collapsed else 7,
                       alpha=0.7, color=cmap(i), label=category, linewidths=0)
        if collapsed:
            ax.annotate(f"collapsed: all {len(means)} posterior means\nwithin {width:.2g} "
                        "of each other", (coords[0, 0], coords[0, 1]), xytext=(0.5, 0.12),
                        textcoords="axes fraction", ha="center", color="tab:red",
                        arrowprops={"arrowstyle": "->", "color": "tab:red"})
        ax.set_title(f"{name}\nAU {au}/{means.shape[1]}, total Var[mean] {spread:.3g}",
                     fontsize="medium", color="tab:red" if collapsed else "black")
        ax.set_xlabel(f"PC 1 ({ratios[0]:.0%} of variance)")
        ax.set_ylabel(f"PC 2 ({ratios[1]:.0%} of variance)")
        ax.grid(alpha=0.3)
        rows.append((name, means.shape[0], means.shape[1], au, spread, ratios, width))
    if labels is not None:
        axes[0][-1].legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                           markerscale=2.5, fontsize="small", frameon=False)
    fig.suptitle("posterior means E[z|x], first two principal components")
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return rows


def format_latent_rows(rows) -> str:
    lines = [f"{'run':<16} {'sentences':>9} {'Z':>4} {'AU':>4} {'Var[mean]':>10} "
             f"{'PC1':>5} {'PC2':>5} {'diameter':>9}"]
    for name, n, z, au, spread, ratios, width in rows:
        lines.append(f"{name:<16} {n:>9} {z:>4} {au:>4} {spread:>10.4g} "
                     f"{ratios[0]:>5.0%} {ratios[1]:>5.0%} {width:>9.3g}"
                     + ("  collapsed" if au == 0 else ""))
    return "\n".join(lines)


def cmd_latent(args):
    sentences, labels = read_sentences(args.text, args.labels)
    legend_title = "label"
    if labels is None and args.buckets:
        labels, legend_title = length_buckets(sentences, args.buckets), "length (words)"
    distinct = len(set(labels)) if labels is not None else 1
    if distinct > MAX_CATEGORIES:
        raise PlotError(f"{args.labels} has {distinct} distinct labels: at most "
                        f"{MAX_CATEGORIES} can be told apart by colour (or use --buckets)")
    panels = []
    for name, checkpoint in named_runs(args.runs):
        means = encode_means(name, checkpoint, sentences, args.data, args.checkpoint_file,
                             args.cpu, args.batch_size)
        if means is not None:
            panels.append((name, means))
    if not panels:
        raise PlotError("no checkpoint with a latent variable to plot")
    rows = plot_latent(panels, labels, legend_title, args.out, args.dpi)
    print(format_latent_rows(rows))
    print(f"wrote {args.out}")


# ---- command line -----------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="seqvae-plot", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    curves = sub.add_parser("curves", help="metrics against updates, one line per run")
    curves.add_argument("runs", nargs="+", metavar="[NAME=]PATH",
                        help="fairseq-train log file (--log-format json or simple), or a "
                             "directory: a --tensorboard-logdir, or a --save-dir holding "
                             "one or a train.log (as seqvae-compare's folders do)")
    curves.add_argument("--metrics", default=DEFAULT_METRICS,
                        help=f"comma-separated, one panel each (default {DEFAULT_METRICS}; "
                             "also kl_weight, ppl, loss, ...)")
    curves.add_argument("--split", default="valid",
                        help="log tag of the solid curves: the validation subset (default valid)")
    curves.add_argument("--train", action="store_true",
                        help="add training curves (dashed) of kl, rec, elbo")
    curves.add_argument("--out", default="training_curves.png",
                        help="the PNG file to write (default training_curves.png)")
    curves.add_argument("--title", help="figure title")
    curves.add_argument("--dpi", type=int, default=120,
                        help="resolution of the PNG in dots per inch (default 120)")
    curves.set_defaults(func=cmd_curves)

    latent = sub.add_parser("latent", help="PCA of posterior means, one panel per checkpoint")
    latent.add_argument("runs", nargs="+", metavar="[NAME=]CHECKPOINT",
                        help="a --save-dir (then --checkpoint-file in it) or a .pt file")
    latent.add_argument("--text", required=True, help="sentences, one per line")
    colour = latent.add_mutually_exclusive_group()
    colour.add_argument("--labels", help="a label per line of --text (e.g. Yelp ratings)")
    colour.add_argument("--buckets", type=int, default=0,
                        help="without --labels: colour by this many length quantiles "
                             "(default 0: one colour)")
    latent.add_argument("--data", help="fairseq data directory with the training dict.txt "
                                       "(default: the one recorded in the checkpoint)")
    latent.add_argument("--checkpoint-file", default="checkpoint_best.pt",
                        help="file inside a --save-dir (default checkpoint_best.pt)")
    latent.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    latent.add_argument("--cpu", action="store_true", help="encode on the CPU even with a GPU")
    latent.add_argument("--out", default="latent.png",
                        help="the PNG file to write (default latent.png)")
    latent.add_argument("--dpi", type=int, default=120,
                        help="resolution of the PNG in dots per inch (default 120)")
    latent.set_defaults(func=cmd_latent)
    args = parser.parse_args(argv)
    if getattr(args, "buckets", 0) < 0:
        parser.error("--buckets must be 0 (one colour) or positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    quiet_libraries()
    try:
        args.func(args)
    except (PlotError, LogError, OSError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
