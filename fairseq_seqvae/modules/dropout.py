"""Dropout whose mask is drawn faster on CPU.

``nn.Dropout`` draws its CPU mask with ``bernoulli_``, which takes about 12 ns per element
on the development CPU: about 6% of a PTB-size training step under ``--bf16-autocast``
(scripts/profile_train.py). Comparing uniform draws with p gives the same distribution
3x faster. Elsewhere (CUDA, evaluation, p = 0) this is ``nn.Dropout``.
"""

import torch
from torch import Tensor, nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` (zero each element with probability p, scale the rest by
    1 / (1 - p)); on CPU in training the mask comes from ``torch.rand``."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        if self.p == 1:
            return x * 0.0
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))
