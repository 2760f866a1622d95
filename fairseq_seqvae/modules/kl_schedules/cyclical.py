"""Cyclical KL annealing (Fu et al. 2019): in each cycle beta ramps linearly from
start to max during the first ``cycle_ratio`` of the cycle, then stays at max."""

from fairseq_seqvae.modules.kl_schedules import KLScheduleParams, register_kl_schedule


@register_kl_schedule("cyclical")
def cyclical(num_updates: int, p: KLScheduleParams) -> float:
    if p.num_cycles > 0 and num_updates >= p.num_cycles * p.cycle_updates:
        return p.max
    tau = (num_updates % p.cycle_updates) / p.cycle_updates
    frac = min(1.0, tau / p.cycle_ratio) if p.cycle_ratio > 0 else 1.0
    return p.start + (p.max - p.start) * frac
