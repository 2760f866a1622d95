#!/usr/bin/env python
"""Get a text-VAE benchmark corpus (PTB, Yahoo, Yelp) into fairseq's binary format:
find or download the raw train/valid/test files, verify their checksums, split off a
label column, drop empty lines, and run ``fairseq-preprocess --only-source`` with a
dictionary built from train only, keeping every word.

The corpora are the preprocessed releases the text-VAE literature uses: Mikolov's PTB
split (Bowman et al. 2016; Kim et al. 2018; He et al. 2019) and Yang et al. 2017's Yahoo
and Yelp as He et al. 2019 distribute them (github.com/jxhe/vae-lagging-encoder). They
already have a fixed vocabulary, so nothing is tokenized or cut here.

The per-dataset wrappers (``examples/<dataset>/prepare.sh``) only choose arguments;
run one with ``--help`` for the options. Outputs in ``--dest``:

    dict.txt, {train,valid,test}.{bin,idx}   fairseq-preprocess output
    text/{split}.txt                         the sentences that were binarized
    text/{split}.labels                      with --labels: one label per sentence
    prepare.json                             sources, checksums and counts
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections import Counter
from typing import Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLITS = ("train", "valid", "test")
# Kim et al. 2018 (sa-vae) name the validation split "val"
SPLIT_ALIASES = {"train": ("train",), "valid": ("valid", "val"), "test": ("test",)}
UNK = "<unk>"  # fairseq's unknown-word symbol
# fairseq's Dictionary: <s>, <pad>, </s>, <unk> before the corpus words
NUM_SPECIALS = 4
# padding symbols fairseq-preprocess adds with --padding-factor > 1
PADDING_SYMBOL = re.compile(r"madeupword\d{4}$")
# "SHA256 (ptb.train.txt) = <hex>": the BSD tagged format of `sha256sum --tag`
CHECKSUM_LINE = re.compile(
    r"^(?P<algo>[A-Za-z0-9]+) \((?P<file>[^)]+)\) = (?P<digest>[0-9a-fA-F]+)$")
READ_CHUNK = 1 << 20


class PrepareError(Exception):
    """A problem with the user's data or arguments: reported as one clear message."""


def log(message: str):
    print(message, flush=True)


def warn(message: str):
    print(f"warning: {message}", file=sys.stderr, flush=True)


# ---- finding and downloading the raw files ----------------------------------------


def canonical_name(name: str, split: str) -> str:
    """The file name of a split in the public releases: ptb.train.txt, yelp.valid.txt."""
    return f"{name}.{split}.txt"


def find_split_files(data_dir: str, name: str) -> Dict[str, str]:
    """``{split: path}`` for train/valid/test in ``data_dir``, named either
    ``<split>.txt`` or ``<name>.<split>.txt`` (``val`` accepted for ``valid``)."""
    if not os.path.isdir(data_dir):
        raise PrepareError(f"data directory {data_dir} does not exist (--data DIR)")
    found, missing = {}, []
    for split in SPLITS:
        candidates = [f"{prefix}{alias}.txt" for alias in SPLIT_ALIASES[split]
                      for prefix in ("", f"{name}.")]
        present = [c for c in candidates if os.path.isfile(os.path.join(data_dir, c))]
        if len(present) > 1:
            raise PrepareError(f"{data_dir} has several {split} files ({', '.join(present)}); "
                               "keep one")
        if present:
            found[split] = os.path.join(data_dir, present[0])
        else:
            missing.append(f"{split} ({' or '.join(candidates)})")
    if missing:
        raise PrepareError(f"{data_dir} lacks the {'; '.join(missing)} file(s): --data takes "
                           "a directory with train, valid and test text files")
    return found


def fetch(url: str, dest: str, needed: str):
    """Downloads ``url`` to ``dest`` (through ``dest``.part, so an interrupted
    download never looks finished); ``needed`` names the files for the error message."""
    part = dest + ".part"
    log(f"downloading {url}\n         -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            content_type = response.headers.get("Content-Type", "")
            shutil.copyfileobj(response, out, READ_CHUNK)
    except (urllib.error.URLError, OSError) as err:
        if os.path.exists(part):
            os.remove(part)
        reason = getattr(err, "reason", err)
        raise PrepareError(
            f"cannot download {url}: {reason}. This machine may be offline: get {needed} "
            "on a machine with network access and pass their directory with --data DIR "
            "(or give a reachable mirror with --url)"
        ) from err
    if content_type.startswith("text/html") and not url.endswith(".html"):
        os.remove(part)
        raise PrepareError(f"{url} returned a web page, not the data (a download quota or a "
                           "moved file?): download it in a browser and pass --data DIR")
    os.replace(part, dest)


def download(url: str, name: str, raw_dir: str) -> str:
    """Fetches the three split files into ``raw_dir/name`` and returns that directory.

    A ``url`` with ``{file}`` is one URL per file (``{file}`` = ptb.train.txt, ...);
    any other ``url`` is a tar archive that holds ``<name>.<split>.txt`` somewhere
    inside (He et al.'s datasets.tar.gz holds Yahoo and Yelp; it is kept in
    ``raw_dir``, so the second dataset does not download it again).
    """
    out_dir = os.path.join(raw_dir, name)
    os.makedirs(out_dir, exist_ok=True)
    wanted = {canonical_name(name, split) for split in SPLITS}
    if all(os.path.isfile(os.path.join(out_dir, f)) for f in wanted):
        log(f"using the files downloaded before in {out_dir}")
        return out_dir
    needed = ", ".join(sorted(wanted))
    if "{file}" in url:
        for file in sorted(wanted):
            fetch(url.replace("{file}", file), os.path.join(out_dir, file), needed)
        return out_dir
    archive = os.path.join(raw_dir, "archive-" + hashlib.sha1(url.encode()).hexdigest()[:12])
    if not os.path.isfile(archive):
        fetch(url, archive, needed)
    extract(archive, wanted, out_dir)
    return out_dir


def extract(archive: str, wanted, out_dir: str):
    """Copies the archive members whose base names are in ``wanted`` to ``out_dir``
    (by base name only: nothing else of the archive's paths reaches the disk)."""
    if not tarfile.is_tarfile(archive):
        raise PrepareError(f"{archive} is not a tar archive; delete it and download again")
    found = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            base = os.path.basename(member.name)
            if member.isfile() and base in wanted and base not in found:
                target = os.path.join(out_dir, base)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, READ_CHUNK)
                found.add(base)
    if found != set(wanted):
        raise PrepareError(f"{archive} does not contain {', '.join(sorted(set(wanted) - found))}")
    log(f"extracted {', '.join(sorted(found))} from {archive}")


# ---- checksums -------------------------------------------------------------------


def read_checksums(path: Optional[str]) -> Dict[str, Dict[str, str]]:
    """``{file name: {algorithm: hex digest}}`` from a file of ``ALGO (name) = hex``
    lines (``sha256sum --tag`` format; ``#`` starts a comment)."""
    if path is None:
        return {}
    known: Dict[str, Dict[str, str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = CHECKSUM_LINE.match(line)
            if m is None or m.group("algo").lower() not in hashlib.algorithms_available:
                raise PrepareError(f"{path}:{number}: not an 'ALGO (file) = digest' line: {line}")
            digests = known.setdefault(m.group("file"), {})
            digests[m.group("algo").lower()] = m.group("digest").lower()
    return known


def file_digests(path: str, algorithms) -> Dict[str, str]:
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(READ_CHUNK), b""):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify(files: Dict[str, str], name: str, checksums_path: Optional[str],
           enforce: bool) -> Dict[str, str]:
    """Checks each split file against the recorded digests of its canonical name.

    Returns ``{split: sha256}``. Raises on a mismatch when ``enforce``; a file with
    no recorded digest is reported with the digests computed here, not an error.
    """
    known = read_checksums(checksums_path)
    sha256s, mismatches = {}, []
    for split, path in files.items():
        canonical = canonical_name(name, split)
        expected = known.get(canonical, {})
        digests = file_digests(path, {"sha256", "md5", *expected})
        sha256s[split] = digests["sha256"]
        if not expected:
            log(f"no known checksum for {canonical}, computed sha256 {digests['sha256']} "
                f"(md5 {digests['md5']})")
            continue
        wrong = [f"{path} (as {canonical}): {algo} is {digests[algo]}, expected {digest}"
                 for algo, digest in sorted(expected.items()) if digests[algo] != digest]
        if not wrong:
            log(f"checksum OK: {path} ({', '.join(sorted(expected))} of {canonical})")
        mismatches += wrong
    if mismatches:
        text = (f"checksum mismatch against {checksums_path}:\n  " + "\n  ".join(mismatches)
                + f"\nThese are not the canonical {name} files (another version, or damaged).")
        if enforce:
            raise PrepareError(text + " Pass --no-verify to use them anyway.")
        warn(text + " Continuing because of --no-verify.")
    return sha256s


# ---- cleaning and counting --------------------------------------------------------


def clean_split(src: str, text_out: str, labels_out: Optional[str], unk_token: str) -> Dict:
    """Writes the sentences of ``src`` to ``text_out`` (one per line, words joined by
    one space, ``unk_token`` rewritten to ``<unk>``), and with ``labels_out`` splits
    a ``label<TAB>text`` line into label and text. Empty sentences are dropped.

    Returns counts: lines, skipped_empty, sentences, tokens (words, no EOS), unk,
    lines_with_tab, labels (``{label: sentences}``) and the word ``types`` (a Counter).
    """
    stats = dict(lines=0, skipped_empty=0, sentences=0, tokens=0, unk=0, lines_with_tab=0)
    types: Counter = Counter()
    labels: Counter = Counter()
    no_label = []
    with contextlib.ExitStack() as stack:
        lines = stack.enter_context(open(src, encoding="utf-8"))
        text = stack.enter_context(open(text_out, "w", encoding="utf-8"))
        lab = stack.enter_context(open(labels_out, "w", encoding="utf-8")) if labels_out else None
        for number, line in enumerate(lines, 1):
            stats["lines"] += 1
            line = line.rstrip("\n")
            if "\t" in line:
                stats["lines_with_tab"] += 1
            label = None
            if lab is not None:
                if "\t" not in line:
                    if line.strip():
                        no_label.append(number)
                    else:
                        stats["skipped_empty"] += 1
                    continue
                label, line = line.split("\t", 1)
                label = label.strip()
            words = [UNK if w == unk_token else w for w in line.split()]
            if not words:
                stats["skipped_empty"] += 1
                continue
            text.write(" ".join(words) + "\n")
            if lab is not None:
                lab.write(label + "\n")
                labels[label] += 1
            stats["sentences"] += 1
            stats["tokens"] += len(words)
            stats["unk"] += sum(1 for w in words if w == UNK)
            types.update(words)
    if no_label:
        raise PrepareError(f"{src}: {len(no_label)} line(s) have no TAB-separated label "
                           f"(first: line {no_label[0]}); --labels expects 'label<TAB>text' lines")
    stats["labels"] = dict(sorted(labels.items()))
    stats["types"] = types
    return stats


def dictionary_words(dest: str) -> Tuple[List[str], int]:
    """(corpus words, number of padding symbols) in fairseq's ``dest/dict.txt``."""
    words, padding = [], 0
    with open(os.path.join(dest, "dict.txt"), encoding="utf-8") as f:
        for line in f:
            word = line.rsplit(" ", 1)[0]
            if PADDING_SYMBOL.match(word):
                padding += 1
            else:
                words.append(word)
    return words, padding


# ---- the pipeline -----------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Other flags are passed to fairseq-preprocess last (e.g. --padding-factor 8).",
    )
    parser.add_argument("--name", required=True,
                        help="dataset name: file names <name>.<split>.txt, default --dest")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", metavar="DIR",
                        help="local directory with the raw train/valid/test files "
                             "(train.txt or <name>.train.txt style; val.txt accepted)")
    source.add_argument("--download", action="store_true",
                        help="download the raw files from --url into --raw-dir")
    parser.add_argument("--url",
                        help="where --download gets the data: a URL with {file} (one per "
                             "split file) or a tar archive holding <name>.<split>.txt")
    parser.add_argument("--raw-dir", default=os.path.join(REPO, "data-bin", "raw"),
                        help="where downloads are kept (default data-bin/raw)")
    parser.add_argument("--dest", help="output directory (default data-bin/<name>)")
    parser.add_argument("--checksums", metavar="FILE",
                        help="'ALGO (file) = digest' lines for the canonical raw files")
    parser.add_argument("--no-verify", action="store_true",
                        help="warn about a checksum mismatch instead of failing")
    parser.add_argument("--labels", action="store_true",
                        help="lines are 'label<TAB>text': the labels go to "
                             "text/<split>.labels, only the text is binarized")
    parser.add_argument("--unk-token", default=UNK,
                        help="the corpus's unknown-word token, rewritten to fairseq's <unk> "
                             "(default <unk>; Yang et al.'s Yahoo/Yelp use _UNK)")
    parser.add_argument("--expect-types", type=int,
                        help="number of word types the canonical train split has: a "
                             "different count is reported as a warning")
    parser.add_argument("--workers", type=int, default=2,
                        help="fairseq-preprocess worker processes (default 2)")
    args, preprocess_flags = parser.parse_known_args(argv)
    args.preprocess_flags = preprocess_flags
    args.dest = args.dest or os.path.join(REPO, "data-bin", args.name)
    return args


def raw_directory(args) -> str:
    if args.download:
        if not args.url:
            raise PrepareError(f"no download location is known for {args.name}: pass --url")
        return download(args.url, args.name, args.raw_dir)
    if args.data:
        return args.data
    raise PrepareError("no data: pass --data DIR (a directory with the raw train/valid/test "
                       "files) or --download")


def preprocess(text_dir: str, dest: str, workers: int, extra_flags: List[str]):
    """fairseq-preprocess --only-source with a dictionary from train alone, every word
    kept (--thresholdsrc 0) and no padding symbols (--padding-factor 1): the
    dictionary is the corpus vocabulary plus fairseq's four specials."""
    cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--only-source",
           "--trainpref", os.path.join(text_dir, "train.txt"),
           "--validpref", os.path.join(text_dir, "valid.txt"),
           "--testpref", os.path.join(text_dir, "test.txt"),
           "--destdir", dest, "--thresholdsrc", "0", "--padding-factor", "1",
           "--workers", str(workers), *extra_flags]
    log("running " + " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise PrepareError(f"fairseq-preprocess failed (exit {proc.returncode}):\n{proc.stdout}")


def prepare(args) -> Dict:
    raw_dir = raw_directory(args)
    files = find_split_files(raw_dir, args.name)
    sha256s = verify(files, args.name, args.checksums, enforce=not args.no_verify)

    text_dir = os.path.join(args.dest, "text")
    os.makedirs(text_dir, exist_ok=True)
    stats = {}
    for split, path in files.items():
        labels_out = os.path.join(text_dir, f"{split}.labels") if args.labels else None
        stats[split] = clean_split(path, os.path.join(text_dir, f"{split}.txt"), labels_out,
                                   args.unk_token)
        if stats[split]["sentences"] == 0:
            raise PrepareError(f"{path} has no sentences")
        if not args.labels and stats[split]["lines_with_tab"]:
            warn(f"{stats[split]['lines_with_tab']} line(s) of {path} contain a TAB: if the "
                 "first field is a label, pass --labels")

    train_types = stats["train"]["types"]
    for split in ("valid", "test"):
        # words fairseq-preprocess will map to <unk>: not in the train dictionary
        split_types = stats[split].pop("types")
        stats[split]["oov"] = sum(n for w, n in split_types.items() if w not in train_types)
    stats["train"].pop("types")
    stats["train"]["oov"] = 0
    if args.expect_types is not None and len(train_types) != args.expect_types:
        warn(f"the train split has {len(train_types)} word types; the canonical "
             f"{args.name} has {args.expect_types}")

    preprocess(text_dir, args.dest, args.workers, args.preprocess_flags)
    words, padding = dictionary_words(args.dest)
    dropped = len(set(train_types) - {UNK} - set(words))
    if dropped:
        warn(f"{dropped} train word type(s) are not in dict.txt (did a fairseq-preprocess "
             "flag such as --thresholdsrc or --nwordssrc drop them?)")
    summary = {
        "name": args.name,
        "source": os.path.abspath(raw_dir),
        "files": {s: os.path.abspath(p) for s, p in files.items()},
        "sha256": sha256s,
        "unk_token": args.unk_token,
        "train_types": len(train_types),
        "dictionary": {"words": len(words), "specials": NUM_SPECIALS, "padding": padding,
                       "size": len(words) + NUM_SPECIALS + padding},
        "splits": stats,
    }
    with open(os.path.join(args.dest, "prepare.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    report(summary, args.dest)
    return summary


def report(summary: Dict, dest: str):
    d = summary["dictionary"]
    log(f"dictionary: {d['words']:,} words from train ({summary['train_types']:,} types, "
        f"{UNK} included) + {d['specials']} fairseq specials"
        + (f" + {d['padding']} padding symbols" if d["padding"] else "")
        + f" = {d['size']:,} symbols")
    log(f"{'split':<6} {'lines':>9} {'empty':>6} {'sentences':>10} {'tokens':>11} "
        f"{UNK:>9} {'unk %':>6} {'OOV':>7}")
    for split, s in summary["splits"].items():
        log(f"{split:<6} {s['lines']:>9,} {s['skipped_empty']:>6,} {s['sentences']:>10,} "
            f"{s['tokens']:>11,} {s['unk']:>9,} {100 * s['unk'] / s['tokens']:>6.2f} "
            f"{s['oov']:>7,}")
    log("tokens: words, without the </s> fairseq appends to each sentence; "
        f"OOV: words not in the train dictionary, mapped to {UNK} by fairseq-preprocess")
    skipped = sum(s["skipped_empty"] for s in summary["splits"].values())
    if skipped:
        log(f"skipped {skipped} empty line(s)")
    labels = summary["splits"]["train"].get("labels")
    if labels:
        log("train labels: " + ", ".join(f"{k}: {v:,}" for k, v in labels.items()))
    log(f"wrote {dest} (fairseq data, text/ with the binarized sentences, prepare.json)")


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args)
    except PrepareError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
