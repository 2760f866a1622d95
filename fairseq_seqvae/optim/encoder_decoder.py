"""``--optimizer encoder_decoder``: one update rule for the encoder, another for the
decoder, in one fairseq optimizer, so that checkpoints, resume, clipping and the lr
scheduler work as with any other.

Xu, Cheung & Cao (2020)'s code, by the pooling paper's authors, trains its pooled
encoder with Adam (lr 1e-3) and its decoder with SGD (lr 1.0) and halves only the
decoder's lr on plateaus: ``--optimizer encoder_decoder`` with its defaults.

fairseq's scheduler sets the decoder's lr (``--lr`` and ``--lr-scheduler``). The
encoder's lr is ``--encoder-lr``, constant, or with ``--encoder-lr-follows-schedule``
scaled by the same factor as the decoder's (current lr / ``--lr``). The model marks
each parameter's half with a ``param_group`` attribute ("encoder" or "decoder"),
which fairseq's fp16 wrapper keeps with ``--fp16-no-flatten-grads``.
"""

import ast
import math
from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq import utils
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from omegaconf import II

HALVES = ("encoder", "decoder")
RULES = ["adam", "sgd"]


@dataclass
class EncoderDecoderOptimizerConfig(FairseqDataclass):
    encoder_optimizer: ChoiceEnum(RULES) = field(
        default="adam",
        metadata={"help": "update rule of the encoder's parameters (default adam)"},
    )
    decoder_optimizer: ChoiceEnum(RULES) = field(
        default="sgd",
        metadata={"help": "update rule of the decoder's parameters (default sgd, "
                  "without momentum)"},
    )
    encoder_lr: float = field(
        default=0.001, metadata={"help": "the encoder's learning rate (default 0.001)"}
    )
    encoder_lr_follows_schedule: bool = field(
        default=False,
        metadata={"help": "scale the encoder's lr by the factor the lr scheduler applies "
                  "to the decoder's (--lr); default off: the encoder keeps --encoder-lr"},
    )
    adam_betas: Any = field(
        default=(0.9, 0.999), metadata={"help": "Adam's betas (default (0.9, 0.999))"}
    )
    adam_eps: float = field(default=1e-8, metadata={"help": "Adam's epsilon (default 1e-8)"})
    clip_norm_per_half: bool = field(
        default=False,
        metadata={"help": "clip the encoder's and the decoder's gradients each to --clip-norm, "
                  "not their joint norm (default off: the joint norm, as fairseq clips any "
                  "model), so that the encoder's gradient does not shrink the decoder's step "
                  "(scripts/grad_norms.py measures by how much); gnorm and clip in the log "
                  "stay those of the joint norm. With --bf16-autocast or --amp, not fairseq's "
                  "--fp16/--bf16 optimizer wrappers, which clip the joint norm themselves"},
    )
    lr: List[float] = II("optimization.lr")
    clip_norm: float = II("optimization.clip_norm")


class EncoderDecoderRules(torch.optim.Optimizer):
    """Param groups that each carry their own ``rule``: "sgd" (p -= lr * grad) or
    "adam" (torch.optim.Adam's update, no weight decay). Parameters without a
    gradient are skipped, as by torch's optimizers."""

    def __init__(self, param_groups, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(param_groups, dict(betas=tuple(betas), eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if group["rule"] == "sgd":
                for p in params:
                    p.add_(p.grad, alpha=-group["lr"])
                continue
            beta1, beta2 = group["betas"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                bias_correction1 = 1 - beta1 ** state["step"]
                bias_correction2 = 1 - beta2 ** state["step"]
                denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(group["eps"])
                p.addcdiv_(exp_avg, denom, value=-group["lr"] / bias_correction1)
        return loss


@register_optimizer("encoder_decoder", dataclass=EncoderDecoderOptimizerConfig)
class EncoderDecoderOptimizer(FairseqOptimizer):
    """``--encoder-optimizer`` for the encoder, ``--decoder-optimizer`` for the decoder."""

    def __init__(self, cfg: EncoderDecoderOptimizerConfig, params):
        super().__init__(cfg)
        params = list(params)
        halves = {half: [] for half in HALVES}
        for p in params:
            half = getattr(p, "param_group", None)
            if half not in halves:
                raise ValueError(
                    "--optimizer encoder_decoder needs a seqvae_lstm model, whose "
                    "parameters are marked encoder or decoder (with --fp16 also pass "
                    "--fp16-no-flatten-grads, which keeps the marks)"
                )
            halves[half].append(p)
        self.base_lr = cfg.lr[0]
        # plain strings: the groups are pickled into checkpoints
        rules = {"encoder": str(cfg.encoder_optimizer), "decoder": str(cfg.decoder_optimizer)}
        lrs = {"encoder": cfg.encoder_lr, "decoder": self.base_lr}
        groups = [
            {"params": ps, "half": half, "rule": rules[half], "lr": lrs[half]}
            for half, ps in halves.items()
            if ps
        ]
        betas = cfg.adam_betas
        if isinstance(betas, str):  # from the command line
            betas = ast.literal_eval(betas)
        self._optimizer = EncoderDecoderRules(groups, betas, cfg.adam_eps)

    @property
    def optimizer_config(self):
        return {"eps": self.cfg.adam_eps}

    def load_state_dict(self, state_dict, optimizer_overrides=None):
        """Refuses a checkpoint whose halves used other rules (their state would not
        fit); the lrs are then set by the scheduler, as for fairseq's optimizers."""
        saved = [(g["half"], g["rule"]) for g in state_dict["param_groups"]]
        mine = [(g["half"], g["rule"]) for g in self.param_groups]
        if saved != mine:
            raise ValueError(
                f"--optimizer encoder_decoder: the checkpoint's update rules {saved} differ "
                f"from this run's {mine}; keep --encoder-optimizer/--decoder-optimizer, "
                f"or start with --reset-optimizer"
            )
        super().load_state_dict(state_dict, optimizer_overrides)

    def clip_grad_norm(self, max_norm, aggregate_norm_fn=None):
        """fairseq's clipping of the joint norm, or with --clip-norm-per-half each half's
        gradient clipped to ``max_norm`` on its own. Returns the joint norm (logged as
        gnorm)."""
        if not self.cfg.clip_norm_per_half:
            return super().clip_grad_norm(max_norm, aggregate_norm_fn)
        if max_norm == 0 and self.cfg.clip_norm > 0:  # a wrapper that clips by itself
            raise ValueError(
                "--clip-norm-per-half does not work with fairseq's --fp16/--bf16 optimizer "
                "wrappers, which clip the joint norm themselves: use --amp (or on CPU "
                "--bf16-autocast), or drop --clip-norm-per-half"
            )
        norms = [utils.clip_grad_norm_(group["params"], max_norm, aggregate_norm_fn)
                 for group in self.param_groups]
        return torch.stack([n.float() for n in norms]).norm()

    def get_lr(self):
        """The decoder's lr: the one fairseq's scheduler sets and logs."""
        return next(g["lr"] for g in self.param_groups if g["half"] == "decoder")

    def set_lr(self, lr):
        for group in self.param_groups:
            if group["half"] == "decoder":
                group["lr"] = lr
            elif self.cfg.encoder_lr_follows_schedule:
                group["lr"] = self.cfg.encoder_lr * lr / self.base_lr
            else:
                group["lr"] = self.cfg.encoder_lr
