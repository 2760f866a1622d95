"""Masked mean over time of all encoder states (Long et al. 2019)."""

import torch

from fairseq_seqvae.modules.poolers import register_pooler


@register_pooler("mean")
def mean_pool(states: torch.Tensor, padding_mask: torch.Tensor, final: torch.Tensor):
    keep = (~padding_mask).unsqueeze(-1).type_as(states)  # B x T x 1
    return (states * keep).sum(dim=1) / keep.sum(dim=1)
