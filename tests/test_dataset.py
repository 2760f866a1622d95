"""SentenceDataset: skipping and truncation with counts, the collater's layout, and
length-sorted ordering."""

import numpy as np
import pytest
import torch

from fairseq_seqvae.data.sentence_dataset import LONG_SENTENCE_WORDS, SentenceDataset


def _sent(dictionary, *word_ids):
    return torch.tensor(list(word_ids) + [dictionary.eos()])


@pytest.fixture
def lines(dictionary):
    """7 lines: two empty (a lone EOS), word counts 3, 5, 1, 2, 4."""
    return [
        _sent(dictionary, 4, 5, 6),
        _sent(dictionary),
        _sent(dictionary, 7, 8, 9, 10, 11),
        _sent(dictionary, 12),
        _sent(dictionary),
        _sent(dictionary, 13, 14),
        _sent(dictionary, 15, 16, 17, 18),
    ]


def _dataset(dictionary, lines, **kwargs):
    kwargs.setdefault("shuffle", False)
    return SentenceDataset(lines, [s.numel() for s in lines], dictionary, **kwargs)


def _items(ds):
    return [ds[i]["source"] for i in range(len(ds))]


def _assert_same_tensors(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert torch.equal(g, e), (g, e)


def test_empty_lines_skipped_and_counted(dictionary, lines):
    ds = _dataset(dictionary, lines)
    assert ds.counts == {
        "lines": 7, "empty_skipped": 2, "long_truncated": 0, "long_skipped": 0, "kept": 5
    }
    assert len(ds) == 5
    _assert_same_tensors(_items(ds), [s for s in lines if s.numel() > 1])
    assert list(ds.sizes) == [4, 6, 2, 3, 5]


def test_long_sentences_skipped_and_counted(dictionary, lines):
    ds = _dataset(dictionary, lines, max_words=3)
    assert ds.counts == {
        "lines": 7, "empty_skipped": 2, "long_truncated": 0, "long_skipped": 2, "kept": 3
    }
    # exactly max_words words is kept
    _assert_same_tensors(_items(ds), [lines[0], lines[3], lines[5]])
    assert list(ds.sizes) == [4, 2, 3]


def test_long_sentences_truncated_keep_eos(dictionary, lines):
    ds = _dataset(dictionary, lines, max_words=3, truncate=True)
    assert ds.counts == {
        "lines": 7, "empty_skipped": 2, "long_truncated": 2, "long_skipped": 0, "kept": 5
    }
    expected = [
        lines[0],
        _sent(dictionary, 7, 8, 9),
        lines[3],
        lines[5],
        _sent(dictionary, 15, 16, 17),
    ]
    _assert_same_tensors(_items(ds), expected)
    # sizes (used for batching) agree with the items
    assert list(ds.sizes) == [s.numel() for s in expected]
    assert [ds.num_tokens(i) for i in range(len(ds))] == list(ds.sizes)
    assert list(ds.num_tokens_vec(np.arange(len(ds)))) == list(ds.sizes)
    # the underlying data is not modified
    assert lines[2].numel() == 6


def test_over_long_sentences_are_reported(dictionary, lines, caplog):
    """A 2,000-word line (a paragraph, a file not split into sentences) is not trained
    on silently: without a limit it is counted and logged."""
    long = _sent(dictionary, *([4] * 2000))
    with caplog.at_level("WARNING"):
        ds = _dataset(dictionary, lines + [long], name="train")
    assert ds.over_long == 1 and len(ds) == 6
    assert f"train: 1 sentence(s) have more than {LONG_SENTENCE_WORDS} words (the longest " \
           "2000)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        ds = _dataset(dictionary, lines + [long], max_words=300)
    assert ds.over_long == 0 and "more than" not in caplog.text


def test_no_limit_by_default(dictionary, lines):
    ds = _dataset(dictionary, lines, truncate=True)
    assert ds.counts["long_truncated"] == ds.counts["long_skipped"] == 0
    assert len(ds) == 5


def test_collater_layout(dictionary, lines):
    ds = _dataset(dictionary, lines)
    pad, eos, bos = dictionary.pad(), dictionary.eos(), dictionary.bos()
    indices = [1, 0, 3]  # 5, 3 and 2 words
    batch = ds.collater([ds[i] for i in indices])
    words = [[7, 8, 9, 10, 11], [4, 5, 6], [13, 14]]
    target = torch.tensor([
        [7, 8, 9, 10, 11, eos],
        [4, 5, 6, eos, pad, pad],
        [13, 14, eos, pad, pad, pad],
    ])
    prev = torch.tensor([
        [bos, 7, 8, 9, 10, 11],
        [bos, 4, 5, 6, pad, pad],
        [bos, 13, 14, pad, pad, pad],
    ])
    assert torch.equal(batch["target"], target)
    assert torch.equal(batch["net_input"]["src_tokens"], target)
    assert torch.equal(batch["net_input"]["prev_output_tokens"], prev)
    assert torch.equal(batch["net_input"]["src_lengths"], torch.tensor([6, 4, 3]))
    assert batch["ntokens"] == sum(len(w) + 1 for w in words) == 13
    assert batch["nsentences"] == 3
    assert torch.equal(batch["id"], torch.tensor(indices))
    # ntokens counts exactly the non-pad targets the criterion sums over
    assert batch["ntokens"] == int(batch["target"].ne(pad).sum())


def test_collater_empty(dictionary, lines):
    assert _dataset(dictionary, lines).collater([]) == {}


@pytest.mark.parametrize("shuffle", [False, True])
def test_ordered_indices_sorted_by_length(dictionary, shuffle):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 9, (40,), generator=g).tolist()
    lines = [torch.cat([torch.full((n,), 5), torch.tensor([dictionary.eos()])]) for n in lengths]
    ds = SentenceDataset(lines, [s.numel() for s in lines], dictionary, shuffle=shuffle)
    np.random.seed(0)
    order = ds.ordered_indices()
    assert sorted(order.tolist()) == list(range(40))
    sizes = ds.sizes[order]
    assert (np.diff(sizes) >= 0).all()
    if not shuffle:  # stable: ties keep dataset order
        assert order.tolist() == sorted(range(40), key=lambda i: (lengths[i], i))


def test_batches_by_size_cover_dataset(dictionary, lines):
    ds = _dataset(dictionary, lines)
    batches = ds.batch_by_size(ds.ordered_indices(), max_tokens=10)
    seen = sorted(i for b in batches for i in b.tolist())
    assert seen == list(range(len(ds)))
    for b in batches:
        assert len(b) * ds.sizes[b].max() <= 10
