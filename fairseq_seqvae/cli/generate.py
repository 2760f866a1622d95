"""seqvae-generate: sample, reconstruct and interpolate sentences with a trained VAE.

Bowman et al. (2016), "Generating Sentences from a Continuous Space": decode latent
codes drawn from the prior, taken from the posterior of a sentence, or spaced on the
line between the posterior means of two sentences (``fairseq_seqvae.decoding``: greedy,
beam search, or top-k / nucleus sampling). The command line is built on
``fairseq_seqvae.hub.SeqVAE``::

    seqvae-generate sample --path checkpoints/max -n 5
    seqvae-generate reconstruct --path checkpoints/max --input sentences.txt --json
    printf 'the market fell\\tprices rose again\\n' | \\
        seqvae-generate interpolate --path checkpoints/max --steps 5
"""

import argparse
import json
import logging
import os
import sys
from typing import Dict, List, Optional

import torch
from torch import Tensor

from fairseq_seqvae.cli.text import NotUTF8Error, decode_lines
from fairseq_seqvae.decoding import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LEN
from fairseq_seqvae.hub import SeqVAE

# ---- command line ------------------------------------------------------------------


class GenerateError(Exception):
    """A problem with the user's input: printed without a traceback, exit code 1."""


def checked(kind, ok, requirement: str):
    """An argparse type: ``kind(text)``, refused unless ``ok(value)``."""

    def parse(text: str):
        value = kind(text)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse's "invalid int value" names it
    return parse


positive_int = checked(int, lambda v: v >= 1, "at least 1")
nonnegative_int = checked(int, lambda v: v >= 0, "0 (off) or positive")
positive_float = checked(float, lambda v: v > 0, "positive")
probability = checked(float, lambda v: 0 <= v <= 1, "between 0 and 1")
interpolation_steps = checked(int, lambda v: v >= 2, "at least 2 (both ends)")


def common_options() -> argparse.ArgumentParser:
    """The options every mode takes (a parent parser)."""
    parser = argparse.ArgumentParser(add_help=False)
    model = parser.add_argument_group("model")
    model.add_argument("--path", required=True, metavar="CKPT",
                       help="checkpoint file, or a fairseq-train --save-dir (then its "
                            "checkpoint_best.pt)")
    model.add_argument("--data", metavar="DIR",
                       help="fairseq-preprocess output holding the dict.txt the model was "
                            "trained with (default: the data directory stored in the "
                            "checkpoint)")
    model.add_argument("--cpu", action="store_true",
                       help="run on the CPU even when CUDA is available")
    model.add_argument("--tokenizer", choices=("none", "moses"), default="none",
                       help="'moses' if the training text was Moses-tokenized: input is "
                            "tokenized and output detokenized with sacremoses (default "
                            "none: words are separated by spaces)")
    model.add_argument("--lang", default="en",
                       help="language for --tokenizer moses (default en)")

    search = parser.add_argument_group("decoding (default: greedy)")
    search.add_argument("--beam", type=positive_int, metavar="K", default=1,
                        help="beam search with this many hypotheses per sentence "
                             "(default 1: greedy decoding)")
    search.add_argument("--lenpen", type=float, metavar="A", default=1.0,
                        help="beam search: a hypothesis scores its summed log-probability "
                             "divided by (words + 1) ** A; 0 ranks by the plain sum, "
                             "larger values favour longer sentences (default 1, as in "
                             "fairseq-generate)")
    search.add_argument("--sampling", action="store_true",
                        help="sample each word from the model's distribution instead of "
                             "searching for the most likely sentence (random, see --seed)")
    search.add_argument("--sampling-topk", type=nonnegative_int, metavar="K", default=0,
                        help="with --sampling: draw only from the K most likely words "
                             "(default 0: all)")
    search.add_argument("--sampling-topp", type=probability, metavar="P", default=0.0,
                        help="with --sampling: draw only from the smallest set of most "
                             "likely words whose probability reaches P (nucleus sampling; "
                             "applied after --sampling-topk; default 0: off)")
    search.add_argument("--temperature", type=positive_float, metavar="T", default=1.0,
                        help="divide the logits by this before the softmax: below 1 is "
                             "more conservative, above 1 more varied (default 1)")
    search.add_argument("--max-len", type=positive_int, metavar="N", default=DEFAULT_MAX_LEN,
                        help="most words per output sentence; longer ones are cut there "
                             f"(default {DEFAULT_MAX_LEN})")

    io = parser.add_argument_group("input and output")
    io.add_argument("--output", default="-", metavar="FILE",
                    help="where to write one sentence per line (default -: stdout)")
    io.add_argument("--json", action="store_true",
                    help="write one JSON object per line instead: the sentence, its "
                         "latent code 'z' and, per mode, the input")
    io.add_argument("--batch-size", type=positive_int, metavar="N", default=DEFAULT_BATCH_SIZE,
                    help="sentences encoded or decoded together (default "
                         f"{DEFAULT_BATCH_SIZE}; with --beam each holds that many "
                         "hypotheses)")
    io.add_argument("--seed", type=int, metavar="N", default=1,
                    help="random seed for prior samples, posterior samples and "
                         "--sampling (default 1); the same seed and flags give the "
                         "same output")
    return parser


def input_option(parser: argparse.ArgumentParser, what: str):
    parser.add_argument("--input", default="-", metavar="FILE",
                        help=f"UTF-8 text, {what} (default -: stdin)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqvae-generate",
        description="Generate text with a trained sequence VAE (fairseq_seqvae): sample "
                    "latent codes from the prior, reconstruct sentences from their "
                    "posterior, or interpolate between two sentences in latent space.",
        epilog="Run 'seqvae-generate MODE --help' for the options. Examples:\n"
               "  seqvae-generate sample --path checkpoints/max -n 5\n"
               "  seqvae-generate reconstruct --path checkpoints/max --input test.txt\n"
               "  printf 'a b c\\td e f\\n' | seqvae-generate interpolate "
               "--path checkpoints/max",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    modes = parser.add_subparsers(dest="mode", required=True, metavar="MODE",
                                  title="modes")
    common = common_options()
    sample = modes.add_parser(
        "sample", parents=[common], help="decode latent codes drawn from the prior N(0, I)",
        description="Decode -n latent codes drawn from the prior N(0, I), one sentence per "
                    "line. Works for LSTM language models (--latent-dim 0) too.")
    sample.add_argument("-n", "--num-samples", type=positive_int, metavar="N", default=10,
                        help="how many sentences (default 10)")
    reconstruct = modes.add_parser(
        "reconstruct", parents=[common], help="encode sentences, then decode them",
        description="Encode each input line and decode it from its posterior mean (or "
                    "one posterior sample): one output line per input line. Input of "
                    "any length is encoded in full; out-of-vocabulary words become <unk> "
                    "(counted on stderr); an empty line is an error.")
    input_option(reconstruct, "one sentence per line")
    reconstruct.add_argument("--sample-posterior", action="store_true",
                             help="decode one sample z ~ q(z|x) instead of the posterior "
                                  "mean")
    interpolate = modes.add_parser(
        "interpolate", parents=[common],
        help="decode points on the line between two sentences' latent codes",
        description="For each input line 'SENTENCE<TAB>SENTENCE', decode --steps latent "
                    "codes evenly spaced from the first sentence's posterior mean to the "
                    "second's (both ends included): --steps output lines per input line.")
    input_option(interpolate, "one pair per line: two sentences separated by a tab")
    interpolate.add_argument("--steps", type=interpolation_steps, metavar="N", default=5,
                             help="points per pair, both ends included (default 5, at "
                                  "least 2)")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sampling and args.beam > 1:
        parser.error("--sampling draws one sentence per latent code: use it without --beam")
    if not args.sampling:
        for flag, value in (("--sampling-topk", args.sampling_topk),
                            ("--sampling-topp", args.sampling_topp)):
            if value:
                parser.error(f"{flag} needs --sampling")
    return args


def decode_args(args) -> Dict:
    if args.sampling:
        strategy = "sample"
    else:
        strategy = "beam" if args.beam > 1 else "greedy"
    return dict(strategy=strategy, beam=args.beam, sampling_topk=args.sampling_topk,
                sampling_topp=args.sampling_topp, temperature=args.temperature,
                lenpen=args.lenpen, max_len=args.max_len, batch_size=args.batch_size)


def read_lines(name: str) -> List[str]:
    """Lines of a UTF-8 file (``-``: stdin), stripped; errors name the file and line."""
    shown = "stdin" if name == "-" else name
    try:
        if name == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(name, "rb") as f:
                lines = decode_lines(f.read(), shown)
    except FileNotFoundError:
        raise GenerateError(f"--input: no such file: {name}") from None
    except IsADirectoryError:
        raise GenerateError(f"--input: {name} is a directory, not a text file") from None
    except NotUTF8Error as e:
        raise GenerateError(f"--input: {e}") from None
    except UnicodeDecodeError as e:  # stdin, decoded by Python
        raise GenerateError(f"--input: {shown} is not UTF-8 text ({e})") from None
    if not any(line.strip() for line in lines):
        raise GenerateError(f"--input: no sentences in {shown} (it is empty)")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise GenerateError(f"--input: line {i} of {shown} is empty; give one "
                                f"sentence per line")
    return [line.strip() for line in lines]


def read_pairs(name: str) -> List[List[str]]:
    """``SENTENCE<TAB>SENTENCE`` lines -> [a, b] pairs."""
    shown = "stdin" if name == "-" else name
    pairs = []
    for i, line in enumerate(read_lines(name), 1):
        pair = [side.strip() for side in line.split("\t")]
        if len(pair) != 2 or not all(pair):
            raise GenerateError(f"--input: line {i} of {shown} must hold two sentences "
                                f"separated by one tab, got {line!r}")
        pairs.append(pair)
    return pairs


def note_long_inputs(sentences: List[str], max_len: int):
    long = sum(1 for s in sentences if len(s.split()) > max_len)
    if long:
        print(f"seqvae-generate: {long} input sentence(s) have more than --max-len "
              f"{max_len} words; they are encoded in full, but outputs stop at {max_len} "
              f"words", file=sys.stderr)


def shortest(z: Tensor) -> List[float]:
    """The values of a float32 vector, each written with the fewest digits that read
    back as the same float32."""
    return [float(str(v)) for v in z.float().numpy()]


def generate(vae, args, out):
    """Runs ``args.mode``, writing one line per sentence to ``out``."""
    dargs = decode_args(args)

    def emit(records: List[Dict], z: Tensor):
        sentences = vae.decode(z, **dargs)
        for record, sentence, zi in zip(records, sentences, z.cpu()):
            if args.json:
                out.write(json.dumps({**record, "sentence": sentence, "z": shortest(zi)},
                                     ensure_ascii=False) + "\n")
            else:
                out.write(sentence + "\n")
        out.flush()

    if args.mode == "sample":
        # all codes at once from their own generator: the same --seed gives the same
        # codes whatever the decoding strategy and batch size
        prior = torch.Generator(vae.device).manual_seed(args.seed)
        z = torch.randn(args.num_samples, vae.latent_dim, device=vae.device, generator=prior)
        for start in range(0, args.num_samples, args.batch_size):
            stop = min(start + args.batch_size, args.num_samples)
            emit([{"id": i} for i in range(start, stop)], z[start:stop])
    elif args.mode == "reconstruct":
        vae.require_latent("reconstruct")
        sentences = read_lines(args.input)
        note_long_inputs(sentences, args.max_len)
        z = vae.latent_codes(sentences, use_mean=not args.sample_posterior,
                             max_sentences=args.batch_size)
        for start in range(0, len(sentences), args.batch_size):
            chunk = range(start, min(start + args.batch_size, len(sentences)))
            emit([{"id": i, "input": sentences[i]} for i in chunk], z[chunk.start:chunk.stop])
    else:
        vae.require_latent("interpolate")
        pairs = read_pairs(args.input)
        note_long_inputs([s for pair in pairs for s in pair], args.max_len)
        z = vae.interpolation_codes(pairs, args.steps, max_sentences=args.batch_size)
        t = torch.linspace(0, 1, args.steps).tolist()
        records = [{"id": p, "step": s, "t": round(t[s], 6), "source": a, "target": b}
                   for p, (a, b) in enumerate(pairs) for s in range(args.steps)]
        z = z.view(-1, vae.latent_dim)  # (pairs * steps) x Z
        for start in range(0, len(records), args.batch_size):
            stop = start + args.batch_size
            emit(records[start:stop], z[start:stop])


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        level=logging.INFO, stream=sys.stderr)
    try:
        torch.manual_seed(args.seed)
        vae = SeqVAE.from_pretrained(args.path, args.data, tokenizer=args.tokenizer,
                                     lang=args.lang, device="cpu" if args.cpu else None)
        if args.output == "-":
            generate(vae, args, sys.stdout)
        else:
            try:
                out = open(args.output, "w", encoding="utf-8", newline="\n")
            except OSError as e:
                raise GenerateError(f"--output: cannot write {args.output}: {e.strerror}")
            with out:
                generate(vae, args, out)
    except BrokenPipeError:  # piped into head: stop quietly, also at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (GenerateError, OSError, ValueError) as e:
        print(f"seqvae-generate: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seqvae-generate: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
