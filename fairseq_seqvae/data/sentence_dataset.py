"""One sentence per sample: the encoder reads it and the decoder reconstructs it."""

import logging

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

logger = logging.getLogger(__name__)

# without a length limit, sentences longer than this many words are reported: usually a
# paragraph or a file that is not split into sentences, slow to train and dominating the loss
LONG_SENTENCE_WORDS = 200


class SentenceDataset(FairseqDataset):
    """Wraps a binarized monolingual dataset (each item: word ids + EOS) for a VAE.

    Empty sentences are skipped; sentences longer than ``max_words`` are skipped
    or, with ``truncate``, cut to ``max_words`` words (EOS kept). Every skipped or
    truncated sentence is counted in ``self.counts`` and logged. With ``limit`` > 0
    only the first ``limit`` sentences kept (in file order) are used.

    A batch holds, right-padded:
        net_input.src_tokens        B x T  words + EOS (encoder input)
        net_input.src_lengths       B
        net_input.prev_output_tokens B x T  BOS + words (decoder input)
        target                      B x T  words + EOS
    """

    def __init__(self, dataset, sizes, dictionary, max_words=0, truncate=False,
                 shuffle=True, name="dataset", limit=0):
        self.dataset = dataset
        self.dictionary = dictionary
        self.shuffle = shuffle
        self.max_words = max_words
        self.truncate = truncate
        sizes = np.asarray(sizes, dtype=np.int64)
        keep = sizes > 1  # an empty line binarizes to a lone EOS
        too_long = (sizes - 1 > max_words) if max_words > 0 else np.zeros_like(keep)
        self.counts = {
            "lines": len(sizes),
            "empty_skipped": int((~keep).sum()),
            "long_truncated": int((keep & too_long).sum()) if truncate else 0,
            "long_skipped": 0 if truncate else int((keep & too_long).sum()),
        }
        if not truncate:
            keep &= ~too_long
        self.index = np.flatnonzero(keep)
        if limit > 0:
            self.index = self.index[:limit]
        self.sizes = sizes[self.index]
        if truncate and max_words > 0:
            self.sizes = np.minimum(self.sizes, max_words + 1)
        self.counts["kept"] = len(self.index)
        # sentences used in full although longer than LONG_SENTENCE_WORDS
        self.over_long = int((self.sizes - 1 > LONG_SENTENCE_WORDS).sum())
        if self.over_long:
            logger.warning(
                f"{name}: {self.over_long} sentence(s) have more than "
                f"{LONG_SENTENCE_WORDS} words (the longest {int(self.sizes.max()) - 1}) and are "
                f"used in full; one sentence per line is expected (--max-sentence-length N "
                f"skips or, with --long-sentences truncate, cuts them)"
            )
        logger.info(
            "{}: {lines} lines, kept {kept}, skipped {empty_skipped} empty, "
            "skipped {long_skipped} and truncated {long_truncated} over {} words".format(
                name, max_words if max_words > 0 else "inf", **self.counts
            )
        )

    def __getitem__(self, i):
        tokens = self.dataset[self.index[i]]
        if tokens.numel() > self.sizes[i]:
            tokens = torch.cat([tokens[: self.sizes[i] - 1], tokens.new([self.dictionary.eos()])])
        return {"id": i, "source": tokens}

    def __len__(self):
        return len(self.index)

    def collater(self, samples):
        if len(samples) == 0:
            return {}
        pad, eos, bos = self.dictionary.pad(), self.dictionary.eos(), self.dictionary.bos()
        sources = [s["source"] for s in samples]
        src_tokens = data_utils.collate_tokens(sources, pad, eos, left_pad=False)
        # BOS + words: the target shifted right by one
        prev = data_utils.collate_tokens(
            [torch.cat([s.new([bos]), s[:-1]]) for s in sources], pad, eos, left_pad=False
        )
        lengths = torch.LongTensor([s.numel() for s in sources])
        return {
            "id": torch.LongTensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(lengths.sum()),
            "net_input": {
                "src_tokens": src_tokens,
                "src_lengths": lengths,
                "prev_output_tokens": prev,
            },
            "target": src_tokens,
        }

    def num_tokens(self, index):
        return self.sizes[index]

    def num_tokens_vec(self, indices):
        return self.sizes[indices]

    def size(self, index):
        return self.sizes[index]

    def ordered_indices(self):
        # random order, then stable sort by length: batches of similar lengths
        order = np.random.permutation(len(self)) if self.shuffle else np.arange(len(self))
        return order[np.argsort(self.sizes[order], kind="mergesort")]

    @property
    def supports_prefetch(self):
        return False
