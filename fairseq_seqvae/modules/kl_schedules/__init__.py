"""KL weight (beta) schedules: pure functions of the optimizer update count.

A schedule is ``fn(num_updates, params: KLScheduleParams) -> beta``. It keeps no
state, so a resumed run (fairseq restores the update count) gets exactly the same
beta. Register one with ``@register_kl_schedule("name")`` in a new file of this folder.
"""

from dataclasses import dataclass

from fairseq_seqvae.modules.registry import import_folder, make_registry


@dataclass(frozen=True)
class KLScheduleParams:
    start: float = 1.0  # beta at update 0 (and at the start of each cycle)
    max: float = 1.0  # beta after warm-up (and at the end of each cycle's ramp)
    warmup_updates: int = 0  # linear: updates from start to max
    hold_updates: int = 0  # linear: updates at start before the warm-up begins
    cycle_updates: int = 10000  # cyclical: updates per cycle
    cycle_ratio: float = 0.5  # cyclical: fraction of a cycle spent ramping up
    num_cycles: int = 0  # cyclical: cycles before beta stays at max (0: forever)


KL_SCHEDULES, register_kl_schedule = make_registry("KL schedule")

import_folder(__file__, __name__)
