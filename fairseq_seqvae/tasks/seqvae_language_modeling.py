"""Sequence-VAE language modeling: each sentence is both the encoder input and the
decoder target. Reads data binarized by ``fairseq-preprocess --only-source``.

With ``--aggressive`` it trains with He et al. (2019)'s aggressive inference-network
training ("Lagging Inference Networks and Posterior Collapse in Variational
Autoencoders"), in fairseq's hooks:

- ``train_step``: before the regular forward/backward, an inner loop of encoder-only
  updates on random training minibatches, logged as ``inner_steps`` (count per update);
- ``optimizer_step``: while aggressive, the regular update steps the decoder only;
- ``post_validate``: after each validation at an epoch's end, aggressive mode ends for
  good once the validation MI falls below the previous epoch's (logged as
  ``valid_aggressive``); ``get_batch_iterator`` keeps the training iterator for this.

Each hook delegates to ``fairseq_seqvae.aggressive.AggressiveTraining``.
"""

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn as nn

from fairseq import utils
from fairseq.data import Dictionary, data_utils
from fairseq.data.indexed_dataset import get_available_dataset_impl
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from fairseq_seqvae import aggressive, heap
from fairseq_seqvae.data import background_loading
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
    aggressive: bool = field(
        default=False,
        metadata={"help": "aggressive inference-network training (He et al. 2019): "
                  "before each update, update the encoder alone on random training "
                  "minibatches until its objective stops improving, then the decoder "
                  "alone; switched off for good once the validation MI at an epoch's end "
                  "falls below the previous epoch's, as He et al. (validations within an "
                  "epoch do not count). Default off"},
    )
    aggressive_check_steps: int = field(
        default=15,
        metadata={"help": "--aggressive: the encoder loop stops when its objective per "
                  "target token over the last this many inner steps is higher than over "
                  "the ones before (default 15, as He et al.)"},
    )
    aggressive_max_steps: int = field(
        default=100,
        metadata={"help": "--aggressive: at most this many encoder updates before each "
                  "decoder update (default 100, as He et al.)"},
    )
    malloc_trim_seconds: float = field(
        default=0.0,
        metadata={"help": "training: at the end of the first update this many seconds after "
                  "the last time, give the free memory of the process heap back to the system "
                  "(glibc's malloc_trim; nothing where the C library is not glibc). "
                  "Batches of varying length fragment glibc's heap, and a Yahoo-size "
                  "training grew to 6 GiB, most of it free, without it "
                  "(docs/PERFORMANCE.md#memory); examples/train.sh passes 10 at that size. "
                  "Each trim costs speed at the PTB size (0.94x at 10 s). Default 0: off"},
    )
    seed: int = II("common.seed")
    dataset_impl: Optional[ChoiceEnum(get_available_dataset_impl())] = II(
        "dataset.dataset_impl"
    )
    # fairseq's own options that --aggressive reads (batching of the inner loop, checks)
    max_tokens: Optional[int] = II("dataset.max_tokens")
    batch_size: Optional[int] = II("dataset.batch_size")
    required_batch_size_multiple: int = II("dataset.required_batch_size_multiple")
    clip_norm: float = II("optimization.clip_norm")
    update_freq: List[int] = II("optimization.update_freq")
    fp16: bool = II("common.fp16")
    amp: bool = II("common.amp")


@register_task("seqvae_language_modeling", dataclass=SeqVAELanguageModelingConfig)
class SeqVAELanguageModelingTask(FairseqTask):
    """Train sequence VAEs (and LSTM LMs) on one-sentence-per-line corpora."""

    def __init__(self, cfg: SeqVAELanguageModelingConfig, dictionary: Dictionary,
                 dictionary_path: str = "dict.txt"):
        super().__init__(cfg)
        self.dictionary = dictionary
        # where the dictionary came from: the model names it in its mismatch errors
        self.dictionary_path = dictionary_path
        self.last_trim = time.monotonic()  # of the heap, for --malloc-trim-seconds
        self.aggressive_training = None
        if cfg.aggressive:
            self.aggressive_training = aggressive.AggressiveTraining(
                cfg.aggressive_check_steps, cfg.aggressive_max_steps, cfg.seed,
                cfg.max_tokens, cfg.batch_size, cfg.required_batch_size_multiple,
                cfg.clip_norm, self.autocast,
            )

    @classmethod
    def setup_task(cls, cfg: SeqVAELanguageModelingConfig, **kwargs):
        if cfg.aggressive:
            aggressive.check_options(cfg.aggressive_check_steps, cfg.aggressive_max_steps,
                                     cfg.update_freq, cfg.fp16, cfg.amp)
        if cfg.malloc_trim_seconds < 0:
            raise ValueError("--malloc-trim-seconds must be 0 (off) or a number of seconds, "
                             f"got {cfg.malloc_trim_seconds}")
        if cfg.malloc_trim_seconds > 0 and not heap.available():
            logger.info("the C library is not glibc: --malloc-trim-seconds does nothing")
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
        return cls(cfg, dictionary, dict_path)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, **kwargs):
        self.datasets[split] = self.build_dataset(
            split, self.cfg.max_sentence_length, epoch=epoch, combine=combine
        )

    def build_dataset(self, split: str, max_words: int, limit: int = 0, epoch: int = 1,
                      combine: bool = False) -> SentenceDataset:
        """The split as a ``SentenceDataset`` with ``max_words`` as its length limit
        (0: none; --long-sentences says what happens above it) and, with ``limit``,
        only its first ``limit`` usable sentences. ``load_dataset`` uses the task's
        --max-sentence-length; evaluation passes 0 to score every sentence."""
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
        sentences = SentenceDataset(
            dataset,
            dataset.sizes,
            self.dictionary,
            max_words=max_words,
            truncate=self.cfg.long_sentences == "truncate",
            shuffle=True,
            name=f"{split} ({split_path})",
            limit=limit,
        )
        if len(sentences) == 0:
            raise ValueError(
                f"split '{split}' at {split_path} has no usable sentence: {sentences.counts}"
            )
        return sentences

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
        if self.cfg.aggressive and model.encoder.latent_dim == 0:
            raise ValueError("--aggressive trains an encoder: it needs --latent-dim > 0")
        init_encoder_from = utils.safe_getattr(cfg, "init_encoder_from", None)
        if init_encoder_from and not from_checkpoint:
            model.load_pretrained_encoder(init_encoder_from)
        return model

    def autocast(self, model: nn.Module, optimizer=None):
        """The training forward pass's context: float16 autocast when fairseq's
        --amp built an ``AMPOptimizer`` (as fairseq's own train step does), else
        bfloat16 autocast with --bf16-autocast, else none."""
        device_type = next(model.parameters()).device.type
        if isinstance(optimizer, AMPOptimizer):
            return torch.autocast(device_type, torch.float16)
        if self.cfg.bf16_autocast:
            return torch.autocast(device_type, torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq's train step (its forward pass under AMP's autocast with --amp), or
        under bf16 autocast with --bf16-autocast; with --aggressive, the encoder-only
        inner loop runs first. Every --malloc-trim-seconds the free heap memory goes
        back to the system."""
        model.train()
        model.set_num_updates(update_num)
        if self.aggressive_training is not None:
            self.aggressive_training.before_update(model, criterion, optimizer, update_num,
                                                   self.dataset("train"))
        with torch.autograd.profiler.record_function("forward"):
            with self.autocast(model, optimizer):
                loss, sample_size, logging_output = criterion(model, sample)
        if ignore_grad:
            loss *= 0
        with torch.autograd.profiler.record_function("backward"):
            optimizer.backward(loss)
        seconds = self.cfg.malloc_trim_seconds
        if seconds > 0 and time.monotonic() - self.last_trim >= seconds:
            heap.trim()  # the step's activations are freed by now
            self.last_trim = time.monotonic()
        return loss, sample_size, logging_output

    def optimizer_step(self, optimizer, model, update_num):
        if self.aggressive_training is not None:
            self.aggressive_training.optimizer_step(optimizer, model)
        else:
            optimizer.step()

    def get_batch_iterator(self, dataset, *args, **kwargs):
        """fairseq's batch iterator; with --aggressive, the training set's is kept so
        that the switch-off rule can tell an epoch's end from a mid-epoch validation.
        Its background loader threads are stopped cleanly at exit (see
        ``fairseq_seqvae.data.background_loading``)."""
        background_loading.stop_loaders_at_exit()
        itr = super().get_batch_iterator(dataset, *args, **kwargs)
        if self.aggressive_training is not None and dataset is self.datasets.get("train"):
            self.aggressive_training.train_iterator = itr
        return itr

    def begin_valid_epoch(self, epoch, model):
        if self.aggressive_training is not None:
            self.aggressive_training.begin_valid_epoch()

    def post_validate(self, model, stats, agg):
        if self.aggressive_training is not None:
            self.aggressive_training.post_validate(model, stats, agg)

    def max_positions(self):
        return None

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
