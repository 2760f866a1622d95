"""ELBO criterion for sequence VAEs: reconstruction NLL + beta * KL(q(z|x) || N(0, I)),
with KL annealing (Bowman et al. 2016; Fu et al. 2019) and free bits (Kingma et al.
2016; Li et al. 2019), and the collapse diagnostics of He et al. 2019.

Logged metrics and their units (per sentence = divided by the number of sentences):

| metric     | unit                     | meaning                                                  |
|------------|--------------------------|----------------------------------------------------------|
| loss       | bits / sample_size       | the optimized objective, rec + beta * KL (free bits on)  |
| rec        | nats / sentence          | reconstruction NLL, -E_q[log p(x|z)], one sample of z    |
| kl         | nats / sentence          | KL(q(z|x) || N(0, I)), analytic, no free bits            |
| elbo       | nats / sentence          | negative ELBO = rec + kl (beta = 1, no free bits): an    |
|            |                          | upper bound on -log p(x); lower is better                |
| kl_weight  | -                        | beta at this update                                      |
| nll_loss   | bits / target token     | negative ELBO per token (words + EOS), base 2            |
| ppl        | -                        | 2 ** nll_loss: the ELBO's upper bound on perplexity      |
| mi         | nats                     | validation only: He et al. 2019 minibatch estimate of    |
|            |                          | I(x; z); at most log(batch size), so it depends on the   |
|            |                          | validation batch size (--batch-size-valid)               |
| au         | count                    | validation only: active units, latent dimensions whose   |
|            |                          | posterior mean has variance >= 0.01 over the whole       |
|            |                          | validation set                                           |

``sample_size`` is the number of target tokens (words + EOS), or of sentences with
``--sentence-avg``. For an LSTM LM (``--latent-dim 0``) kl is 0 and ppl is exact.
"""

import math
from dataclasses import dataclass, field

from fairseq import metrics, utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II

from fairseq_seqvae.modules.gaussian import (
    AU_THRESHOLD,
    active_units,
    gaussian_kl,
    mutual_information,
)
from fairseq_seqvae.modules.kl_schedules import KL_SCHEDULES, KLScheduleParams
from fairseq_seqvae.modules.softmax_nll import softmax_nll


@dataclass
class SeqVAEELBOConfig(FairseqDataclass):
    kl_schedule: ChoiceEnum(sorted(KL_SCHEDULES)) = field(
        default="constant",
        metadata={"help": "how beta (the KL weight) depends on the update count: "
                  "constant (= --kl-max), linear (--kl-start to --kl-max over "
                  "--kl-warmup-updates), cyclical (Fu et al. 2019). Default constant"},
    )
    kl_start: float = field(
        default=0.0,
        metadata={"help": "beta at update 0 and at the start of each cycle (default 0)"},
    )
    kl_max: float = field(
        default=1.0, metadata={"help": "beta after warm-up; constant beta (default 1)"}
    )
    kl_warmup_updates: int = field(
        default=10000,
        metadata={"help": "linear schedule: optimizer updates from --kl-start to "
                  "--kl-max (default 10000)"},
    )
    kl_hold_updates: int = field(
        default=0,
        metadata={"help": "linear schedule: optimizer updates at constant beta = "
                  "--kl-start before the warm-up begins (default 0)"},
    )
    kl_cycle_updates: int = field(
        default=10000,
        metadata={"help": "cyclical schedule: optimizer updates per cycle (default 10000)"},
    )
    kl_cycle_ratio: float = field(
        default=0.5,
        metadata={"help": "cyclical schedule: fraction of each cycle during which beta "
                  "ramps up; it stays at --kl-max for the rest (default 0.5)"},
    )
    kl_num_cycles: int = field(
        default=0,
        metadata={"help": "cyclical schedule: number of cycles after which beta stays "
                  "at --kl-max (default 0: cycle forever)"},
    )
    free_bits: float = field(
        default=0.0,
        metadata={"help": "free-bits target per latent dimension, in nats per sentence: "
                  "a dimension's KL (see --free-bits-mode) is not penalized below this "
                  "(Kingma et al. 2016; Li et al. 2019). Default 0 (off)"},
    )
    free_bits_mode: ChoiceEnum(["batch", "sentence"]) = field(
        default="batch",
        metadata={"help": "what --free-bits holds at its target: 'batch', each dimension's "
                  "KL averaged over the minibatch (Kingma et al. 2016); 'sentence', each "
                  "sentence's KL in each dimension, the rule of Li et al. 2019's code "
                  "(their total target / latent dim is --free-bits). Default batch"},
    )
    sentence_avg: bool = II("optimization.sentence_avg")


@register_criterion("seqvae_elbo", dataclass=SeqVAEELBOConfig)
class SeqVAEELBOCriterion(FairseqCriterion):
    def __init__(self, task, kl_schedule, kl_start, kl_max, kl_warmup_updates,
                 kl_hold_updates, kl_cycle_updates, kl_cycle_ratio, kl_num_cycles, free_bits,
                 sentence_avg, free_bits_mode="batch"):  # a default for older checkpoints
        super().__init__(task)
        if kl_schedule == "cyclical" and kl_cycle_updates < 1:
            raise ValueError("--kl-cycle-updates must be at least 1")
        if not 0.0 <= kl_cycle_ratio <= 1.0:
            raise ValueError("--kl-cycle-ratio must be in [0, 1]")
        if kl_hold_updates < 0:
            raise ValueError("--kl-hold-updates must be >= 0")
        if free_bits < 0:
            raise ValueError("--free-bits must be >= 0 (nats per latent dimension)")
        self.schedule = KL_SCHEDULES[kl_schedule]
        self.schedule_params = KLScheduleParams(
            start=kl_start,
            max=kl_max,
            warmup_updates=kl_warmup_updates,
            hold_updates=kl_hold_updates,
            cycle_updates=kl_cycle_updates,
            cycle_ratio=kl_cycle_ratio,
            num_cycles=kl_num_cycles,
        )
        self.free_bits = free_bits
        self.free_bits_mode = free_bits_mode
        self.sentence_avg = sentence_avg

    def kl_weight(self, num_updates: int) -> float:
        return self.schedule(num_updates, self.schedule_params)

    def forward(self, model, sample, reduce=True):
        features, extra = model(**sample["net_input"], features_only=True)
        target = sample["target"]
        real = target.ne(self.padding_idx)  # B x T
        # the output projection and softmax run on real target positions only
        logits = model.decoder.output_layer(features[real])  # N x V
        rec = softmax_nll(logits, target[real])

        mean, logvar = extra["mean"].float(), extra["logvar"].float()  # B x Z
        kl_per_dim = gaussian_kl(mean, logvar)
        kl = kl_per_dim.sum()
        if self.free_bits > 0 and self.free_bits_mode == "sentence":
            # Li et al. 2019's code: max(lambda, KL_bd) per sentence b and dimension d
            kl_objective = kl_per_dim.clamp(min=self.free_bits).sum()
        elif self.free_bits > 0:
            # Kingma et al. 2016: max(lambda, minibatch-mean KL_d) per dimension,
            # here as a sum over the B sentences
            bsz = mean.size(0)
            kl_objective = kl_per_dim.sum(0).clamp(min=self.free_bits * bsz).sum()
        else:
            kl_objective = kl
        beta = self.kl_weight(getattr(model, "num_updates", 0))
        loss = rec + beta * kl_objective

        nsentences = sample["nsentences"]
        ntokens = sample["ntokens"]
        sample_size = nsentences if self.sentence_avg else ntokens
        logging_output = {
            "loss": loss.data,
            "rec": rec.data,
            "kl": kl.data,
            "kl_weight": beta * nsentences,
            "ntokens": ntokens,
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        if not model.training and mean.size(1) > 0:
            mean64 = mean.double()
            logging_output.update({
                "mi": mutual_information(mean, logvar, extra["z"].float()).data * nsentences,
                "mean_sum": mean64.sum(0).data,
                "mean_sq_sum": mean64.pow(2).sum(0).data,
            })
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        loss, rec, kl = total("loss"), total("rec"), total("kl")
        ntokens, nsentences = total("ntokens"), total("nsentences")
        sample_size = total("sample_size")
        ln2 = math.log(2)
        metrics.log_scalar("loss", loss / sample_size / ln2, sample_size, round=3)
        metrics.log_scalar("nll_loss", (rec + kl) / ntokens / ln2, ntokens, round=3)
        metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        metrics.log_scalar("rec", rec / nsentences, nsentences, round=3)
        metrics.log_scalar("kl", kl / nsentences, nsentences, round=3)
        metrics.log_scalar("elbo", (rec + kl) / nsentences, nsentences, round=3)
        metrics.log_scalar("kl_weight", total("kl_weight") / nsentences, nsentences, round=4)

        if any("mi" in log for log in logging_outputs):
            metrics.log_scalar("mi", total("mi") / nsentences, nsentences, round=3)
            # active units need the whole validation set: keep running sums (hidden,
            # summed across batches) and derive the count from them at report time
            metrics.log_scalar_sum("_mean_sum", total("mean_sum"))
            metrics.log_scalar_sum("_mean_sq_sum", total("mean_sq_sum"))
            metrics.log_scalar_sum("_au_count", nsentences)
            metrics.log_derived(
                "au",
                lambda meters: active_units(
                    meters["_mean_sum"].sum,
                    meters["_mean_sq_sum"].sum,
                    meters["_au_count"].sum,
                    AU_THRESHOLD,
                ),
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
