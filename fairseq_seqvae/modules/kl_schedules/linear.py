"""Linear KL annealing (Bowman et al. 2016): beta goes from start to max over warm-up,
optionally after a phase of constant beta = start (``hold_updates``)."""

from fairseq_seqvae.modules.kl_schedules import KLScheduleParams, register_kl_schedule


@register_kl_schedule("linear")
def linear(num_updates: int, p: KLScheduleParams) -> float:
    num_updates -= p.hold_updates
    if num_updates < 0:
        return p.start
    if p.warmup_updates <= 0:
        return p.max
    frac = min(1.0, num_updates / p.warmup_updates)
    return p.start + (p.max - p.start) * frac
