"""The hard-concrete distribution of L0 gates (Louizos et al., 2018), as used by CoFi.

A gate z in [0, 1] is a stretched and clipped binary-concrete sample:

    s = sigmoid((log u - log(1 - u) + log_alpha) / temperature),  u ~ U(0, 1)
    z = clip(s * (right - left) + left, 0, 1)

The stretch (left, right) = (-0.1, 1.1) puts probability mass on exactly 0 and
exactly 1, so sampled gates switch structures off while `log_alpha` (one learned
score per structure) stays differentiable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

TEMPERATURE = 2.0 / 3.0
LEFT, RIGHT = -0.1, 1.1
# log(-left / right): the logit shift that makes P(z > 0) closed form.
_SHIFT = TEMPERATURE * math.log(-LEFT / RIGHT)
# Keeps log(u) and log(1 - u) finite.
_EPS = 1e-6


def sample(log_alpha: torch.Tensor) -> torch.Tensor:
    """One gate sample per entry of `log_alpha`, differentiable in `log_alpha`."""
    u = torch.empty_like(log_alpha).uniform_(_EPS, 1.0 - _EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / TEMPERATURE)
    return (s * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)


def prob_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(z > 0) = sigmoid(log_alpha - temperature * log(-left / right)), in closed form."""
    return torch.sigmoid(log_alpha - _SHIFT)


def log_prob_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """log P(z > 0), precise where the probability saturates near 0 or 1."""
    return F.logsigmoid(log_alpha - _SHIFT)


def point_estimate(log_alpha: torch.Tensor) -> torch.Tensor:
    """The noise-free gate value used at test time (Louizos et al.): the sample at u = 1/2
    without the temperature, clip(sigmoid(log_alpha) * (right - left) + left, 0, 1).
    Confident scores give exactly 0 or exactly 1."""
    return (torch.sigmoid(log_alpha) * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)
