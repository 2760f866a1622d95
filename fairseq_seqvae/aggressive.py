"""Aggressive inference-network training (``--aggressive``), all of it.

He, Spokoyny, Neubig & Berg-Kirkpatrick (2019), "Lagging Inference Networks and
Posterior Collapse in Variational Autoencoders": before each decoder update the
encoder alone is updated on fresh minibatches until its objective stops improving,
and aggressive mode ends for good once the validation mutual information I(x; z)
stops rising. ``run_inner_loop`` and ``next_phase`` are the rule, free of fairseq;
``AggressiveTraining`` runs it in the hooks of the task ``seqvae_language_modeling``.
"""

import logging
import math
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from fairseq import metrics, utils
from fairseq.data import data_utils
from fairseq.distributed import utils as distributed_utils

logger = logging.getLogger(__name__)

# phases, kept in the model's ``aggressive_state`` buffer (index 0)
NOT_STARTED, ON, OFF = 0.0, 1.0, 2.0


def run_inner_loop(encoder_step: Callable[[], Tuple[float, float]], check_every: int,
                   max_steps: int) -> int:
    """He et al.'s inner loop: calls ``encoder_step`` (one encoder-only update; it
    returns the summed objective and the number of target tokens of its minibatch)
    until the objective per token over the last ``check_every`` steps is higher than
    over the ``check_every`` steps before, or ``max_steps`` steps were taken.

    The first window is compared with +inf, as in the reference code, so the loop
    stops after 2, 3, ... windows or at ``max_steps``.

    Returns:
        the number of encoder updates made
    """
    previous = math.inf
    loss_sum = tokens = 0.0
    for step in range(1, max_steps + 1):
        loss, ntokens = encoder_step()
        loss_sum += loss
        tokens += ntokens
        if step % check_every == 0:
            current = loss_sum / max(tokens, 1.0)
            if current > previous:
                return step
            previous, loss_sum, tokens = current, 0.0, 0.0
    return max_steps


def next_phase(phase: float, valid_mi: float, previous_mi: float) -> float:
    """Aggressive mode ends for good when the validation MI falls below the previous
    one's (He et al. compare with the previous epoch's value, which starts at 0)."""
    if phase == ON and valid_mi < previous_mi:
        return OFF
    return phase


# ---- the mechanics in fairseq's hooks ------------------------------------------------


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


def check_options(check_steps: int, max_steps: int, update_freq: List[int], fp16: bool,
                  amp: bool):
    """Clear errors for what --aggressive cannot do."""
    if check_steps < 1:
        raise ValueError(f"--aggressive-check-steps must be >= 1, got {check_steps}")
    if max_steps < 1:
        raise ValueError(f"--aggressive-max-steps must be >= 1, got {max_steps}")
    if max(update_freq) > 1:
        raise ValueError("--aggressive does not support --update-freq > 1 (the encoder "
                         "loop runs once per update); use a larger --max-tokens/--batch-size")
    if fp16 or amp:
        raise ValueError("--aggressive supports fp32 training (and --bf16-autocast), "
                         "not --fp16, --memory-efficient-fp16 or --amp")


class AggressiveTraining:
    """He et al.'s schedule in fairseq's hooks; the task calls ``before_update`` in
    ``train_step``, ``optimizer_step``, and ``begin_valid_epoch``/``post_validate``.

    The phase and the previous validation MI live in the model's ``aggressive_state``
    buffer, so they travel in checkpoints. The inner updates use fairseq's own
    optimizer restricted to the encoder's parameters: with per-parameter optimizers
    (SGD, Adam, ...) that is exactly He et al.'s separate encoder optimizer, and its
    state is saved in checkpoints with the rest.

    Args:
        check_steps, max_steps: ``run_inner_loop``'s window and limit
        seed: the run's seed (the inner loop's batches are drawn from it)
        max_tokens, batch_size, required_batch_size_multiple: fairseq's batching of
            the training set, which the inner loop draws from
        clip_norm: fairseq's --clip-norm, applied to the encoder gradient (0: off)
        autocast: a function of the model returning the forward pass's context
    """

    def __init__(self, check_steps: int, max_steps: int, seed: int, max_tokens: Optional[int],
                 batch_size: Optional[int], required_batch_size_multiple: int,
                 clip_norm: float, autocast: Callable):
        self.check_steps = check_steps
        self.max_steps = max_steps
        self.seed = seed
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.required_batch_size_multiple = required_batch_size_multiple
        self.clip_norm = clip_norm
        self.autocast = autocast
        self._batches = None  # (train dataset, its batches)
        self._mi_checked = False  # this validation's MI already decided on
        # the training set's EpochBatchIterator (the task sets it): a validation
        # before its epoch's end does not decide
        self.train_iterator = None

    def before_update(self, model, criterion, optimizer, update_num: int, dataset) -> int:
        """Runs the encoder-only inner loop when this update is aggressive; logs and
        returns ``inner_steps``, the number of encoder updates made."""
        inner_steps = 0
        if self.active(model):
            inner_steps = self.train_encoder(model, criterion, optimizer, update_num, dataset)
        metrics.log_scalar("inner_steps", inner_steps, round=1)
        return inner_steps

    def optimizer_step(self, optimizer, model):
        """While aggressive, the regular update steps the decoder only (He et al.
        step only their decoder optimizer); the encoder's gradient still counted in
        the clipped norm, as in their code."""
        if unwrap_model(model).aggressive_state[0] == ON:
            for p in unwrap_model(model).encoder.parameters():
                p.grad = None  # fairseq's and torch's optimizers skip such parameters
        optimizer.step()

    def active(self, model: nn.Module) -> bool:
        """Whether this update is aggressive; starts aggressive mode in a run (also a
        resumed one) that has not had it yet."""
        state = unwrap_model(model).aggressive_state  # [phase, previous valid MI]
        if state[0] == NOT_STARTED:
            state[0] = ON
        return bool(state[0] == ON)

    def train_encoder(self, model, criterion, optimizer, update_num: int, dataset) -> int:
        """He et al.'s inner loop: encoder-only updates on random training batches.

        Every rank draws its own batches (seeded by the seed, the update number and
        the rank, so a resumed run draws the same ones), the encoder gradients and the
        loss sums are all-reduced at every step, so all ranks take the same steps.

        Returns:
            the number of encoder updates made
        """
        module = unwrap_model(model)
        params = [p for p in module.encoder.parameters() if p.requires_grad]
        batches = self.inner_loop_batches(dataset)
        rank, _ = data_parallel_rank_and_size()
        with data_utils.numpy_seed(self.seed, update_num, rank):
            picks = iter(np.random.randint(len(batches), size=self.max_steps))

        def encoder_step():
            batch = dataset.collater([dataset[i] for i in batches[next(picks)]])
            return self.encoder_step(module, criterion, optimizer, batch, params)

        return run_inner_loop(encoder_step, self.check_steps, self.max_steps)

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
        # one flat all-reduce of every encoder gradient and the three sums: the encoder
        # is updated outside fairseq's distributed wrapper, which would sync the whole model
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
        if self.clip_norm > 0:
            utils.clip_grad_norm_(params, self.clip_norm)
        optimizer.step()
        optimizer.zero_grad()
        return loss_sum, ntokens

    def inner_loop_batches(self, dataset) -> List[np.ndarray]:
        """The training set cut into batches as fairseq cuts it (--max-tokens,
        --batch-size), once per dataset; the inner loop draws from these."""
        if self._batches is None or self._batches[0] is not dataset:
            with data_utils.numpy_seed(self.seed):
                indices = dataset.ordered_indices()
            batches = dataset.batch_by_size(
                indices,
                max_tokens=self.max_tokens,
                max_sentences=self.batch_size,
                required_batch_size_multiple=self.required_batch_size_multiple,
            )
            self._batches = (dataset, batches)
        return self._batches[1]

    def begin_valid_epoch(self):
        self._mi_checked = False

    def mid_epoch(self) -> bool:
        """Whether the training epoch in progress has batches left (False when no
        training iterator is known)."""
        return self.train_iterator is not None and not self.train_iterator.end_of_epoch()

    def post_validate(self, model, stats, agg):
        """After each validation subset, on every rank with the same (all-reduced)
        metrics: at an epoch's end, the first subset's MI decides whether aggressive
        mode goes on (He et al. decide once per epoch; validations within an epoch,
        from --save-interval-updates or --validate-interval-updates, do not). Adds
        ``aggressive`` (1 on, 0 off) to the logged stats."""
        if self._mi_checked:
            return
        self._mi_checked = True
        state = unwrap_model(model).aggressive_state  # [phase, previous valid MI]
        if state[0] == ON and self.mid_epoch():
            logger.info("aggressive training goes on: mid-epoch validation (the MI is "
                        "checked at epoch ends)")
        elif state[0] == ON:
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
