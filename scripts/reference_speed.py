#!/usr/bin/env python
"""Times He et al. 2019's own code (github.com/jxhe/vae-lagging-encoder) and prints one
JSON line: its training speed (target tokens/s, s/update) or its importance-weighted NLL
speed (s/sentence).

``--mode train`` times the reference's plain VAE update as its ``text.py`` runs it:
batches of up to 32 sentences of one length (``MonoTextData.create_data_batch``),
``VAE.loss`` with one sample, the loss averaged over sentences, gradient clipping at 5
and SGD lr 1 for encoder and decoder. ``--mode eval`` times its ``VAE.nll_iw`` with
k = 500 samples in chunks of 100, one sentence at a time, as its ``calc_iwnll`` does,
on the first N sentences of ``--eval-text``. The weights are its initialization: the
speed does not depend on them. The code is not part of this project: fetch it yourself
and pass its folder. ``scripts/benchmark_train.py`` and ``scripts/benchmark_eval.py``
run this beside our implementation with ``--reference DIR``.

    git clone https://github.com/jxhe/vae-lagging-encoder /tmp/vae-lagging-encoder
    OMP_NUM_THREADS=1 python scripts/reference_speed.py --code /tmp/vae-lagging-encoder \\
        --text PTB_DIR/train.txt --size ptb --updates 200
    python scripts/reference_speed.py --code /tmp/vae-lagging-encoder --mode eval \\
        --text PTB_DIR/train.txt --eval-text PTB_DIR/test.txt --sentences 64
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import warnings
from types import SimpleNamespace

# the reference's model sizes (Li et al. 2019's PTB configuration; He et al.'s Yahoo one)
SIZES = {
    "ptb": dict(ni=256, enc_nh=256, dec_nh=256, nz=32, dec_dropout_in=0.5, dec_dropout_out=0.5),
    "yahoo": dict(ni=512, enc_nh=1024, dec_nh=1024, nz=32, dec_dropout_in=0.5,
                  dec_dropout_out=0.5),
}


def measure(*flags: str) -> dict:
    """Runs this script with ``flags`` in a subprocess (the reference's modules and its
    thread count stay out of the caller) and returns its JSON line; exits on failure."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), *flags],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"the reference's code failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_reference(code_dir: str):
    """The reference's data reader and model classes, imported from ``code_dir``."""
    if not os.path.isfile(os.path.join(code_dir, "modules", "vae.py")):
        sys.exit(f"--code {code_dir}: not a checkout of jxhe/vae-lagging-encoder "
                 "(no modules/vae.py); clone it and pass its folder")
    sys.path.insert(0, os.path.abspath(code_dir))
    from data import MonoTextData
    from modules import VAE, LSTMDecoder, LSTMEncoder
    return MonoTextData, VAE, LSTMEncoder, LSTMDecoder


def time_training(vae, data, args, torch):
    enc_opt = torch.optim.SGD(vae.encoder.parameters(), lr=1.0)
    dec_opt = torch.optim.SGD(vae.decoder.parameters(), lr=1.0)
    batches = data.create_data_batch(batch_size=args.batch_size, device=torch.device("cpu"),
                                     batch_first=True)
    random.shuffle(batches)
    vae.train()
    rates, per_update = [], []
    tokens, start = 0, time.perf_counter()
    for step in range(1, args.updates + 1):
        batch = batches[step % len(batches)]
        enc_opt.zero_grad()
        dec_opt.zero_grad()
        loss, _, _ = vae.loss(batch, 1.0, nsamples=1)
        loss.mean(dim=-1).backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 5.0)
        enc_opt.step()
        dec_opt.step()
        tokens += batch.numel() - batch.size(0)  # words + EOS: every position but BOS
        if step % args.log_interval == 0:
            elapsed = time.perf_counter() - start
            rates.append(tokens / elapsed)
            per_update.append(elapsed / args.log_interval)
            tokens, start = 0, time.perf_counter()
    return {"tokens_per_s": statistics.median(rates[1:]),
            "s_per_update": statistics.median(per_update[1:])}


def time_evaluation(vae, vocab, args, MonoTextData, torch):
    test = MonoTextData(args.eval_text, vocab=vocab)
    sentences = [test._to_tensor([sent], True, torch.device("cpu"))[0]
                 for sent in test.data[:args.sentences]]
    vae.eval()
    with torch.no_grad():
        vae.nll_iw(sentences[0], nsamples=args.k, ns=100)  # warm-up
        start = time.perf_counter()
        nll = sum(vae.nll_iw(x, nsamples=args.k, ns=100).sum().item() for x in sentences)
        elapsed = time.perf_counter() - start
    return {"s_per_sentence": elapsed / len(sentences), "sentences": len(sentences),
            "iw_nll": nll / len(sentences)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", required=True, metavar="DIR",
                        help="a checkout of github.com/jxhe/vae-lagging-encoder")
    parser.add_argument("--text", required=True, metavar="FILE",
                        help="training text, one sentence per line (e.g. PTB's train.txt): "
                             "the vocabulary, and the batches of --mode train")
    parser.add_argument("--mode", choices=["train", "eval"], default="train",
                        help="time a training update or the IW-NLL (default train)")
    parser.add_argument("--size", choices=sorted(SIZES), default="ptb",
                        help="model size: ptb (256-unit LSTMs) or yahoo (1024-unit) "
                             "(default ptb)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="train: sentences per batch (default 32, the reference's)")
    parser.add_argument("--updates", type=int, default=200,
                        help="train: updates to time (default 200)")
    parser.add_argument("--log-interval", type=int, default=25,
                        help="train: updates per timing interval; the first is warm-up "
                             "(default 25)")
    parser.add_argument("--eval-text", metavar="FILE",
                        help="eval: sentences to score (e.g. PTB's test.txt)")
    parser.add_argument("--sentences", type=int, default=64,
                        help="eval: the first N sentences of --eval-text (default 64)")
    parser.add_argument("-k", type=int, default=500,
                        help="eval: importance samples, a multiple of 100 (default 500)")
    args = parser.parse_args()
    if args.mode == "train" and args.updates < 2 * args.log_interval:
        parser.error("--updates must cover at least two --log-interval intervals")
    if args.mode == "eval" and not args.eval_text:
        parser.error("--mode eval needs --eval-text")
    if args.k < 100 or args.k % 100:
        parser.error("-k must be a multiple of 100 (the reference draws samples in chunks of 100)")

    import torch
    from torch import nn
    # its decoder builds CrossEntropyLoss(reduce=False), which torch warns about
    warnings.filterwarnings("ignore", message="size_average and reduce")
    MonoTextData, VAE, LSTMEncoder, LSTMDecoder = load_reference(args.code)

    torch.manual_seed(1)
    random.seed(1)
    data = MonoTextData(args.text)
    config = SimpleNamespace(**SIZES[args.size], device=torch.device("cpu"))

    def uniform(scale):
        return lambda tensor: nn.init.uniform_(tensor, -scale, scale)

    vae = VAE(LSTMEncoder(config, len(data.vocab), uniform(0.01), uniform(0.1)),
              LSTMDecoder(config, data.vocab, uniform(0.01), uniform(0.1)), config)
    if args.mode == "train":
        stats = time_training(vae, data, args, torch)
    else:
        stats = time_evaluation(vae, data.vocab, args, MonoTextData, torch)
    print(json.dumps({**stats, "mode": args.mode, "size": args.size,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
