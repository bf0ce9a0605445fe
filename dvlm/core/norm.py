"""RMSNorm as LLaDA (OLMo), Dream (Qwen2) and HF Llama compute it.

The statistic is taken in fp32 and the normalised activations are cast back to the input dtype
*before* the weight multiplies them (``weight * x.to(dtype)``), which is what makes bf16 outputs
match the references bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """``[..., D] -> [..., D]``: ``weight * (x * rsqrt(mean(x^2) + eps))``, no bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)
