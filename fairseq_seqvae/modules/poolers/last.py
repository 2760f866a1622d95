"""The final non-pad encoder state: the standard sequence VAE (Bowman et al. 2016),
the baseline whose features barely vary across inputs (Long et al. 2019)."""

import torch

from fairseq_seqvae.modules.poolers import register_pooler


@register_pooler("last")
def last_state(states: torch.Tensor, padding_mask: torch.Tensor, final: torch.Tensor):
    return final
