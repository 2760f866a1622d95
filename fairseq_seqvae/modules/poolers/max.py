"""Masked max over time of all encoder states (Long et al. 2019, the best pooler there)."""

import torch

from fairseq_seqvae.modules.poolers import register_pooler


@register_pooler("max")
def max_pool(states: torch.Tensor, padding_mask: torch.Tensor, final: torch.Tensor):
    # B x T x C -> B x C; pads can never win the max
    return states.masked_fill(padding_mask.unsqueeze(-1), float("-inf")).amax(dim=1)
