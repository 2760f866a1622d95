"""Aggressive inference-network training, the parts that do not touch fairseq.

He, Spokoyny, Neubig & Berg-Kirkpatrick (2019), "Lagging Inference Networks and
Posterior Collapse in Variational Autoencoders": before each decoder update the
encoder alone is updated on fresh minibatches until its objective stops improving,
and aggressive mode ends for good once the validation mutual information I(x; z)
stops rising. The task ``seqvae_language_modeling`` (``--aggressive``) wires these
into fairseq's train step and validation.
"""

import math
from typing import Callable, Tuple

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
    validation's (He et al. compare with the previous value, which starts at 0)."""
    if phase == ON and valid_mi < previous_mi:
        return OFF
    return phase
