"""Sequence-VAE language modeling: each sentence is both the encoder input and the
decoder target. Reads data binarized by ``fairseq-preprocess --only-source``.

With ``--aggressive`` it trains with He et al. (2019)'s aggressive inference-network
training ("Lagging Inference Networks and Posterior Collapse in Variational
Autoencoders"), in fairseq's hooks:

- ``train_step``: before the regular forward/backward, an inner loop of encoder-only
  updates on random training minibatches (``fairseq_seqvae.aggressive``), logged as
  ``inner_steps`` (count per update);
- ``optimizer_step``: while aggressive, the regular update steps the decoder only;
- ``post_validate``: after each validation, aggressive mode ends for good once the
  validation MI falls below the previous validation's (logged as ``valid_aggressive``).

The inner updates use fairseq's own optimizer (same ``--optimizer``, ``--lr`` and
schedule, ``--clip-norm`` on the encoder gradient) restricted to the encoder's
parameters: with per-parameter optimizers (SGD, Adam, ...) that is exactly He et al.'s
separate encoder optimizer, and its state is saved in checkpoints with the rest.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn

from fairseq import metrics, utils
from fairseq.data import Dictionary, data_utils
from fairseq.data.indexed_dataset import get_available_dataset_impl
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.distributed import utils as distributed_utils
from fairseq.tasks import FairseqTask, register_task
from omegaconf import II

from fairseq_seqvae.aggressive import NOT_STARTED, ON, OFF, next_phase, run_inner_loop
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
                  "alone; switched off for good once the validation MI falls. Default off"},
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


def data_parallel_rank_and_size():
    """(rank, world size) of data-parallel training; (0, 1) when not distributed."""
    if not torch.distributed.is_initialized():
        return 0, 1
    return (distributed_utils.get_data_parallel_rank(),
            distributed_utils.get_data_parallel_world_size())


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside fairseq's distributed wrappers."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def check_aggressive_options(cfg: SeqVAELanguageModelingConfig):
    """Clear errors for what --aggressive cannot do."""
    if cfg.aggressive_check_steps < 1:
        raise ValueError(f"--aggressive-check-steps must be >= 1, got {cfg.aggressive_check_steps}")
    if cfg.aggressive_max_steps < 1:
        raise ValueError(f"--aggressive-max-steps must be >= 1, got {cfg.aggressive_max_steps}")
    if max(cfg.update_freq) > 1:
        raise ValueError("--aggressive does not support --update-freq > 1 (the encoder "
                         "loop runs once per update); use a larger --max-tokens/--batch-size")
    if cfg.fp16 or cfg.amp:
        raise ValueError("--aggressive supports fp32 training (and --bf16-autocast), "
                         "not --fp16, --memory-efficient-fp16 or --amp")


@register_task("seqvae_language_modeling", dataclass=SeqVAELanguageModelingConfig)
class SeqVAELanguageModelingTask(FairseqTask):
    """Train sequence VAEs (and LSTM LMs) on one-sentence-per-line corpora."""

    def __init__(self, cfg: SeqVAELanguageModelingConfig, dictionary: Dictionary):
        super().__init__(cfg)
        self.dictionary = dictionary
        self._inner_batches = None  # (train dataset, its batches) for --aggressive
        self._mi_checked = False  # this validation's MI already decided on

    @classmethod
    def setup_task(cls, cfg: SeqVAELanguageModelingConfig, **kwargs):
        if cfg.aggressive:
            check_aggressive_options(cfg)
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
        if self.cfg.aggressive and model.encoder.latent_dim == 0:
            raise ValueError("--aggressive trains an encoder: it needs --latent-dim > 0")
        init_encoder_from = utils.safe_getattr(cfg, "init_encoder_from", None)
        if init_encoder_from and not from_checkpoint:
            model.load_pretrained_encoder(init_encoder_from)
        return model

    def autocast(self, model: nn.Module):
        """The training forward pass's context: bf16 autocast with --bf16-autocast."""
        device_type = next(model.parameters()).device.type
        return torch.autocast(device_type, torch.bfloat16, enabled=self.cfg.bf16_autocast)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        """fairseq's train step, with the forward pass optionally under bf16 autocast;
        with --aggressive, the encoder-only inner loop runs first."""
        model.train()
        model.set_num_updates(update_num)
        if self.cfg.aggressive:
            inner_steps = 0
            if self.aggressive_active(model):
                inner_steps = self.train_encoder_aggressively(
                    model, criterion, optimizer, update_num
                )
            metrics.log_scalar("inner_steps", inner_steps, round=1)
        with self.autocast(model):
            loss, sample_size, logging_output = criterion(model, sample)
        if ignore_grad:
            loss *= 0
        optimizer.backward(loss)
        return loss, sample_size, logging_output

    def optimizer_step(self, optimizer, model, update_num):
        """While aggressive, the regular update steps the decoder only (He et al.
        step only their decoder optimizer); the encoder's gradient still counted in
        the clipped norm, as in their code."""
        if self.cfg.aggressive and unwrap_model(model).aggressive_state[0] == ON:
            for p in unwrap_model(model).encoder.parameters():
                p.grad = None  # fairseq's and torch's optimizers skip such parameters
        optimizer.step()

    # --- aggressive inference-network training (He et al. 2019) -----------------

    def aggressive_active(self, model: nn.Module) -> bool:
        """Whether this update is aggressive; starts aggressive mode in a run (also a
        resumed one) that has not had it yet."""
        state = unwrap_model(model).aggressive_state  # [phase, previous valid MI]
        if state[0] == NOT_STARTED:
            state[0] = ON
        return bool(state[0] == ON)

    def train_encoder_aggressively(self, model, criterion, optimizer, update_num) -> int:
        """He et al.'s inner loop: encoder-only updates on random training batches.

        Every rank draws its own batches (seeded by the seed, the update number and
        the rank, so a resumed run draws the same ones), the encoder gradients and the
        loss sums are all-reduced at every step, so all ranks take the same steps.

        Returns:
            the number of encoder updates made
        """
        module = unwrap_model(model)
        params = [p for p in module.encoder.parameters() if p.requires_grad]
        dataset = self.dataset("train")
        batches = self.inner_loop_batches(dataset)
        rank, _ = data_parallel_rank_and_size()
        with data_utils.numpy_seed(self.cfg.seed, update_num, rank):
            picks = iter(np.random.randint(len(batches), size=self.cfg.aggressive_max_steps))

        def encoder_step():
            batch = dataset.collater([dataset[i] for i in batches[next(picks)]])
            return self.encoder_step(module, criterion, optimizer, batch, params)

        return run_inner_loop(
            encoder_step, self.cfg.aggressive_check_steps, self.cfg.aggressive_max_steps
        )

    def encoder_step(self, module, criterion, optimizer, sample, params):
        """One update of ``params`` (the encoder's) on ``sample``, normalized like
        fairseq's step (summed loss / summed sample size over ranks), clipped.

        Returns:
            (summed objective, target tokens), over all ranks
        """
        device = params[0].device
        if device.type == "cuda":
            sample = utils.move_to_cuda(sample, device=device)
        with self.autocast(module):
            loss, sample_size, logging_output = criterion(module, sample)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        totals = torch.tensor([loss.detach().item(), float(logging_output["ntokens"]),
                               float(sample_size)], device=device)
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [totals])
        if data_parallel_rank_and_size()[1] > 1:
            flat = distributed_utils.all_reduce(
                flat, group=distributed_utils.get_data_parallel_group()
            )
        loss_sum, ntokens, sample_size = flat[-3:].tolist()
        offset = 0
        for p in params:
            p.grad = (flat[offset:offset + p.numel()].view_as(p) / max(sample_size, 1.0)).to(p)
            offset += p.numel()
        if self.cfg.clip_norm > 0:
            utils.clip_grad_norm_(params, self.cfg.clip_norm)
        optimizer.step()
        optimizer.zero_grad()
        return loss_sum, ntokens

    def inner_loop_batches(self, dataset) -> List[np.ndarray]:
        """The training set cut into batches as fairseq cuts it (--max-tokens,
        --batch-size), once per dataset; the inner loop draws from these."""
        if self._inner_batches is None or self._inner_batches[0] is not dataset:
            with data_utils.numpy_seed(self.cfg.seed):
                indices = dataset.ordered_indices()
            batches = dataset.batch_by_size(
                indices,
                max_tokens=self.cfg.max_tokens,
                max_sentences=self.cfg.batch_size,
                required_batch_size_multiple=self.cfg.required_batch_size_multiple,
            )
            self._inner_batches = (dataset, batches)
        return self._inner_batches[1]

    def begin_valid_epoch(self, epoch, model):
        self._mi_checked = False

    def post_validate(self, model, stats, agg):
        """fairseq calls this on every rank after each validation subset, with the
        same (all-reduced) metrics: the first subset's MI decides whether aggressive
        mode goes on. Adds ``aggressive`` (1 on, 0 off) to the logged stats."""
        if not self.cfg.aggressive or self._mi_checked:
            return
        self._mi_checked = True
        state = unwrap_model(model).aggressive_state  # [phase, previous valid MI]
        if state[0] == ON:
            if "mi" not in agg:
                raise ValueError("--aggressive needs the validation MI of the "
                                 "seqvae_elbo criterion (--criterion seqvae_elbo)")
            mi, previous = float(agg["mi"].avg), float(state[1])
            state[0] = next_phase(float(state[0]), mi, previous)
            if state[0] == OFF:
                logger.info(f"aggressive training ends: valid MI {mi:.4f} < previous "
                            f"{previous:.4f}")
            else:
                logger.info(f"aggressive training goes on: valid MI {mi:.4f} >= previous "
                            f"{previous:.4f}")
            state[1] = mi
        stats["aggressive"] = int(state[0] == ON)

    def max_positions(self):
        return None

    @property
    def source_dictionary(self):
        return self.dictionary

    @property
    def target_dictionary(self):
        return self.dictionary
