"""Constant beta (beta-VAE, Higgins et al. 2017; beta = 1 is the plain ELBO)."""

from fairseq_seqvae.modules.kl_schedules import KLScheduleParams, register_kl_schedule


@register_kl_schedule("constant")
def constant(num_updates: int, p: KLScheduleParams) -> float:
    return p.max
