"""Sequence-VAE language modeling: each sentence is both the encoder input and the
decoder target. Reads data binarized by ``fairseq-preprocess --only-source``."""

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import torch

from fairseq import utils
from fairseq.data import Dictionary, data_utils
from fairseq.data.indexed_dataset import get_available_dataset_impl
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from fairseq_seqvae.data.sentence_dataset import SentenceDataset

logger = logging.getLogger(__name__)

PREPROCESS_HINT = (
    "binarize your text (one sentence per line) with: fairseq-preprocess --only-source "
    "--trainpref train.txt --validpref valid.txt --testpref test.txt --destdir DIR"
)


@dataclass
class SeqVAELanguageModelingConfig(FairseqDataclass):
    data: Optional[str] = field(
        default=None,
        metadata={"help": "directory of data binarized by fairseq-preprocess "
                  "--only-source (dict.txt, train.bin/.idx, ...); several joined by ':' "
                  "are used one per epoch"},
    )
    max_sentence_length: int = field(
        default=0,
        metadata={"help": "longest sentence, in words (EOS not counted), to use; "
                  "0 (default) means no limit"},
    )
    long_sentences: ChoiceEnum(["skip", "truncate"]) = field(
        default="skip",
        metadata={"help": "what to do with sentences over --max-sentence-length: skip "
                  "them or truncate them (both counted and logged). Default skip"},
    )
    bf16_autocast: bool = field(
        default=False,
        metadata={"help": "run training forward passes under torch.autocast in bfloat16 "
                  "(CPU with AVX512-BF16, or CUDA): matrix products and LSTMs in bf16, "
                  "parameters, optimizer state, softmax and loss in fp32; validation "
                  "stays fp32. On CPU use this rather than fairseq's --bf16, which "
                  "0.12.2 ties to TPUs. Default off"},
    )
    seed: int = II("common.seed")
    dataset_impl: Optional[ChoiceEnum(get_available_dataset_impl())] = II(
        "dataset.dataset_impl"
    )


@register_task("seqvae_language_modeling", dataclass=SeqVAELanguageModelingConfig)
class SeqVAELanguageModelingTask(FairseqTask):
    """Train sequence VAEs (and LSTM LMs) on one-sentence-per-line corpora."""

    def __init__(self, cfg: SeqVAELanguageModelingConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary

    @classmethod
    def setup_task(cls, cfg: SeqVAELanguageModelingConfig, **kwargs):
        if not cfg.data:
            raise ValueError(f"no data directory given. {PREPROCESS_HINT}")
        paths = utils.split_paths(cfg.data)
        for path in paths:
            if not os.path.isdir(path):
                raise FileNotFoundError(f"data directory not found: {path}. {PREPROCESS_HINT}")
        dict_path = os.path.join(paths[0], "dict.txt")
        if not os.path.isfile(dict_path):
            raise FileNotFoundError(f"no dictionary at {dict_path}. {PREPROCESS_HINT}")
        dictionary = Dictionary.load(dict_path)
        logger.info("dictionary: {} types ({})".format(len(dictionary), dict_path))
        task = cls(cfg, dictionary)
        task.dictionary_path = dict_path
        return task

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        paths = utils.split_paths(self.cfg.data)
        data_path = paths[(epoch - 1) % len(paths)]
        split_path = os.path.join(data_path, split)
        dataset = data_utils.load_indexed_dataset(
            split_path, self.dictionary, self.cfg.dataset_impl, combine=combine
        )
        if dataset is None:
            raise FileNotFoundError(
                f"split '{split}' not found: no {split_path}.bin/.idx. {PREPROCESS_HINT}"
            )
        self.check_token_ids(dataset, split_path)
        self.datasets[split] = SentenceDataset(
            dataset,
            dataset.sizes,
            self.dictionary,
            max_words=self.cfg.max_sentence_length,
            truncate=self.cfg.long_sentences == "truncate",
            shuffle=True,
            name=f"{split} ({split_path})",
        )
        if len(self.datasets[split]) == 0:
            raise ValueError(
                f"split '{split}' at {split_path} has no usable sentence: "
                f"{self.datasets[split].counts}"
            )

    def check_token_ids(self, dataset, split_path):
        """A dataset binarized with another dict.txt can hold ids this dictionary
        lacks; catch that here instead of deep inside an embedding lookup."""
        top = max((int(dataset[i].max()) for i in range(len(dataset))), default=-1)
        if top >= len(self.dictionary):
            raise ValueError(
                f"dictionary mismatch: {split_path}.bin holds token id {top} but "
                f"dict.txt has only {len(self.dictionary)} symbols; binarize all splits "
                f"with the same dictionary (fairseq-preprocess --srcdict)"
            )

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        if not hasattr(model, "encoder") or not hasattr(model.decoder, "output_layer"):
            raise ValueError(
                f"task seqvae_language_modeling needs a seqvae_lstm model, got "
                f"{type(model).__name__}"
            )
        init_encoder_from = utils.safe_getattr(cfg, "init_encoder_from", None)
        if init_encoder_from and not from_checkpoint:
            model.load_pretrained_encoder(init_encoder_from)
        return model

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq's train step, with the forward pass optionally under bf16 autocast."""
        model.train()
        model.set_num_updates(update_num)
        device_type = next(model.parameters()).device.type
        with torch.autocast(device_type, torch.bfloat16, enabled=self.cfg.bf16_autocast):
            loss, sample_size, logging_output = criterion(model, sample)
        if ignore_grad:
            loss *= 0
        optimizer.backward(loss)
        return loss, sample_size, logging_output

    def max_positions(self):
        return None

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
