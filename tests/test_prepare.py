"""examples/<dataset>/prepare.sh end to end: the real PTB copy (checksums, counts,
binarized data), and small synthetic Yahoo/Yelp stand-ins in the released formats
(labels, _UNK, empty lines, file naming), checksum mismatch, missing files, download
from a mirror and offline."""

import hashlib
import io
import json
import tarfile
from collections import Counter

import cli_utils as cu
import pytest
from fairseq.data import Dictionary, data_utils

EXAMPLES = cu.REPO / "examples"
OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "no_proxy": "", "NO_PROXY": ""}


def prepare(dataset, *args, ok=True, env=None, cwd):
    cmd = ["bash", EXAMPLES / dataset / "prepare.sh", *args]
    return cu.run(cmd, cwd, expect_ok=ok, env=env)


def binarized(dest, split):
    """(dictionary, sentences as strings) of a fairseq-preprocess output split."""
    dictionary = Dictionary.load(str(dest / "dict.txt"))
    data = data_utils.load_indexed_dataset(str(dest / split), dictionary)
    assert data is not None, f"no {split} split in {dest}"
    return dictionary, [dictionary.string(data[i][:-1]) for i in range(len(data))]


def summary(dest):
    return json.loads((dest / "prepare.json").read_text())


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- synthetic stand-ins in the released formats ----------------------------------


def yelp_lines(n, seed):
    """``label<TAB>review`` lines as in He et al.'s yelp.*.txt, with _UNK words, one
    empty line and one label with an empty review."""
    sentences = cu.synthetic_sentences(n, seed=seed, vocab_size=30)
    lines = [f"{i % 5}\t{s}" + (" _UNK" if i % 3 == 0 else "") for i, s in enumerate(sentences)]
    return lines[:4] + [""] + lines[4:8] + ["2\t  "] + lines[8:]


def write_yelp(directory, style="yelp.{}.txt", n=(60, 20, 20)):
    directory.mkdir(exist_ok=True)
    lines = {}
    for (split, count), seed in zip(zip(("train", "valid", "test"), n), (1, 2, 3)):
        lines[split] = yelp_lines(count, seed)
        cu.write_lines(directory / style.format(split), lines[split])
    return lines


def expected_yelp(lines):
    """(sentences, labels) that prepare must keep: the non-empty reviews, _UNK -> <unk>."""
    texts, kept_labels = [], []
    for line in lines:
        label, _, text = line.partition("\t")
        words = ["<unk>" if w == "_UNK" else w for w in text.split()]
        if words:
            texts.append(" ".join(words))
            kept_labels.append(label)
    return texts, kept_labels


# ---- PTB (real data) ---------------------------------------------------------------


def test_ptb_real_corpus_verified_and_binarized(tmp_path):
    ptb = cu.ptb_dir()
    dest = tmp_path / "bin"
    proc = prepare("ptb", "--data", ptb, "--dest", dest, "--workers", 1, cwd=tmp_path)
    for split in ("train", "valid", "test"):
        ok = f"checksum OK: {ptb / f'{split}.txt'} (md5, sha256 of ptb.{split}.txt)"
        assert ok in proc.stdout
    info = summary(dest)
    assert info["dictionary"] == {"words": 9998, "specials": 4, "padding": 0, "size": 10002}
    assert info["train_types"] == 9999  # the Mikolov vocabulary: 9,999 words incl. <unk>
    assert "warning" not in proc.stderr
    for split, sentences in (("train", 42068), ("valid", 3370), ("test", 3761)):
        raw = (ptb / f"{split}.txt").read_text().splitlines()
        words = [w for line in raw for w in line.split()]
        stats = info["splits"][split]
        assert (stats["lines"], stats["sentences"], stats["skipped_empty"]) == \
            (sentences, sentences, 0)
        assert stats["tokens"] == len(words)
        assert stats["unk"] == words.count("<unk>") > 0
        assert stats["oov"] == 0  # valid and test use only train words
        _, decoded = binarized(dest, split)
        assert len(decoded) == sentences
        assert decoded[:50] == [" ".join(line.split()) for line in raw[:50]]
    dictionary, _ = binarized(dest, "valid")
    assert len(dictionary) == 10002 and dictionary.index("<unk>") == dictionary.unk()
    assert "train     42,068      0     42,068     887,521" in proc.stdout


def test_checksum_mismatch_fails_unless_no_verify(tmp_path):
    text = tmp_path / "text"
    text.mkdir()
    for split, n in (("train", 50), ("valid", 10), ("test", 10)):
        cu.write_lines(text / f"{split}.txt", cu.synthetic_sentences(n, seed=len(split)))
    dest = tmp_path / "bin"
    proc = prepare("ptb", "--data", text, "--dest", dest, ok=False, cwd=tmp_path)
    assert "checksum mismatch" in proc.stderr and "--no-verify" in proc.stderr
    canonical = "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"
    assert (f"{text / 'train.txt'} (as ptb.train.txt): sha256 is {sha256(text / 'train.txt')}, "
            f"expected {canonical}") in proc.stderr
    assert not (dest / "dict.txt").exists()

    proc = prepare("ptb", "--data", text, "--dest", dest, "--no-verify", "--workers", 1,
                   cwd=tmp_path)
    assert "Continuing because of --no-verify" in proc.stderr
    assert "the train split has 50 word types; the canonical ptb has 9999" in proc.stderr
    assert summary(dest)["sha256"]["train"] == sha256(text / "train.txt")
    assert (dest / "test.idx").is_file()


# ---- Yelp / Yahoo stand-ins --------------------------------------------------------


def test_yelp_labels_split_off_and_text_binarized(tmp_path):
    raw = tmp_path / "raw"
    lines = write_yelp(raw)
    dest = tmp_path / "bin"
    proc = prepare("yelp", "--data", raw, "--dest", dest, "--workers", 1, cwd=tmp_path)
    for split in ("train", "valid", "test"):
        digest = sha256(raw / f"yelp.{split}.txt")
        assert f"no known checksum for yelp.{split}.txt, computed sha256 {digest}" in proc.stdout
    assert "skipped 6 empty line(s)" in proc.stdout  # one empty line, one empty review, per split
    info = summary(dest)
    train_words = set()
    for split in ("train", "valid", "test"):
        texts, labels = expected_yelp(lines[split])
        if split == "train":
            train_words = {w for t in texts for w in t.split()}
        stats = info["splits"][split]
        assert stats["skipped_empty"] == 2 and stats["lines"] == len(lines[split])
        assert stats["sentences"] == len(texts)
        assert stats["unk"] == sum(t.split().count("<unk>") for t in texts) > 0
        assert stats["oov"] == sum(1 for t in texts for w in t.split() if w not in train_words)
        assert stats["labels"] == dict(sorted(Counter(labels).items()))
        assert (dest / "text" / f"{split}.labels").read_text().splitlines() == labels
        assert (dest / "text" / f"{split}.txt").read_text().splitlines() == texts
        dictionary, decoded = binarized(dest, split)
        assert decoded == [" ".join(w if w in train_words else "<unk>" for w in t.split())
                           for t in texts]
    # the dictionary: every train word (no label, no _UNK: it became fairseq's <unk>)
    assert set(dictionary.symbols[dictionary.nspecial:]) == train_words - {"<unk>"}
    assert info["dictionary"]["size"] == len(dictionary) == len(train_words) - 1 + 4
    assert "train labels: 0: " in proc.stdout


def test_yahoo_plain_names_val_split_and_passthrough_flags(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, name, n in (("train", "train.txt", 80), ("valid", "val.txt", 20),
                           ("test", "test.txt", 20)):
        sentences = cu.synthetic_sentences(n, seed=len(split), prefix="y")
        cu.write_lines(raw / name, cu.with_empty_lines(sentences, every=10))
    cu.write_lines(raw / "test.txt", ["3\ty1 y2"] + (raw / "test.txt").read_text().splitlines())
    dest = tmp_path / "bin"
    proc = prepare("yahoo", "--data", raw, "--dest", dest, "--workers", 1,
                   "--padding-factor", 8, cwd=tmp_path)
    assert "no known checksum for yahoo.valid.txt" in proc.stdout
    info = summary(dest)
    assert info["files"]["valid"] == str(raw / "val.txt")
    assert [info["splits"][s]["skipped_empty"] for s in ("train", "valid", "test")] == [8, 2, 2]
    assert "1 line(s) of" in proc.stderr and "pass --labels" in proc.stderr
    assert not (dest / "text" / "train.labels").exists()
    # --padding-factor 8 reached fairseq-preprocess (last, overriding prepare's 1)
    assert info["dictionary"]["size"] % 8 == 0 and info["dictionary"]["padding"] > 0
    assert len(binarized(dest, "valid")[1]) == 20


# ---- errors ----------------------------------------------------------------------


def test_missing_files_and_sources_are_named(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    cu.write_lines(raw / "train.txt", ["a b"])
    proc = prepare("yahoo", "--data", raw, ok=False, cwd=tmp_path)
    assert ("lacks the valid (valid.txt or yahoo.valid.txt or val.txt or yahoo.val.txt); "
            "test (test.txt or yahoo.test.txt) file(s)") in proc.stderr
    proc = prepare("yahoo", "--data", tmp_path / "nowhere", ok=False, cwd=tmp_path)
    assert f"data directory {tmp_path / 'nowhere'} does not exist" in proc.stderr
    for dataset in ("yelp", "ptb"):  # no default copy outside the repository
        proc = prepare(dataset, ok=False, cwd=tmp_path)
        assert "no data: pass --data DIR" in proc.stderr
    cu.write_lines(raw / "yahoo.train.txt", ["a b"])
    proc = prepare("yahoo", "--data", raw, ok=False, cwd=tmp_path)
    assert "several train files (train.txt, yahoo.train.txt)" in proc.stderr


def test_yelp_line_without_label_fails(tmp_path):
    raw = tmp_path / "raw"
    lines = write_yelp(raw)
    cu.write_lines(raw / "yelp.valid.txt", lines["valid"][:3] + ["no label here"])
    proc = prepare("yelp", "--data", raw, "--dest", tmp_path / "bin", ok=False, cwd=tmp_path)
    assert "1 line(s) have no TAB-separated label (first: line 4)" in proc.stderr


@pytest.mark.parametrize("dataset", ["ptb", "yelp"])
def test_download_offline_fails_clearly(tmp_path, dataset):
    proc = prepare(dataset, "--download", "--raw-dir", tmp_path / "raw",
                   "--dest", tmp_path / "bin", ok=False, env=OFFLINE, cwd=tmp_path)
    assert "error: cannot download https://" in proc.stderr
    assert "This machine may be offline" in proc.stderr and "--data DIR" in proc.stderr
    assert f"{dataset}.train.txt" in proc.stderr
    assert not list((tmp_path / "raw").rglob("*.part"))


# ---- download from a mirror (file:// URLs: the success path without network) -----


def test_download_per_file_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for split in ("train", "valid", "test"):
        cu.write_lines(mirror / f"ptb.{split}.txt", cu.synthetic_sentences(30, seed=len(split)))
    dest = tmp_path / "bin"
    prepare("ptb", "--download", "--url", f"{mirror.as_uri()}/{{file}}", "--no-verify",
            "--raw-dir", tmp_path / "raw", "--dest", dest, "--workers", 1, cwd=tmp_path)
    assert (tmp_path / "raw" / "ptb" / "ptb.valid.txt").read_bytes() == \
        (mirror / "ptb.valid.txt").read_bytes()
    assert len(binarized(dest, "train")[1]) == 30


def test_download_archive_mirror_extracts_and_reuses(tmp_path):
    raw = tmp_path / "yelp_data"
    write_yelp(raw)
    archive = tmp_path / "datasets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        readme = b"not data"
        info = tarfile.TarInfo("datasets/README")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
        tar.add(raw, arcname="datasets/yelp_data")
    args = ["--download", "--url", archive.as_uri(), "--raw-dir", tmp_path / "cache",
            "--workers", 1]
    prepare("yelp", *args, "--dest", tmp_path / "bin", cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "cache" / "yelp").iterdir()) == \
        ["yelp.test.txt", "yelp.train.txt", "yelp.valid.txt"]
    assert (tmp_path / "bin" / "text" / "train.labels").is_file()
    archive.unlink()  # the second run needs neither the network nor the archive
    proc = prepare("yelp", *args, "--dest", tmp_path / "bin2", cwd=tmp_path)
    assert "using the files downloaded before" in proc.stdout
    assert (tmp_path / "bin2" / "dict.txt").read_text() == \
        (tmp_path / "bin" / "dict.txt").read_text()
