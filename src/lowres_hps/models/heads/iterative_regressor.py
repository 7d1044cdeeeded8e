"""HMR's iterative error feedback regressor (Kanazawa et al. 2018; also SPIN and RSC-Net).

Starting from the mean parameters, ``iterations`` times: ``theta <- theta + MLP([phi, theta])``.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["IterativeRegressor"]


class IterativeRegressor(nn.Module):
    """Feature vector -> parameter vector by iterative error feedback.

    Args:
        feature_dim: size of the image feature ``phi``.
        param_dim: size of the regressed vector (body pose vector + camera).
        iterations: refinement steps (3 in HMR, SPIN and RSC-Net).
        hidden: width of the two hidden layers (1024 in HMR).
        dropout: dropout after each hidden layer (0.5 in HMR/SPIN).

    The starting point is the buffer ``mean_params`` (D,), saved with the weights; set it from the
    training data's mean with :meth:`set_mean_params`.
    """

    def __init__(self, feature_dim: int, param_dim: int, iterations: int = 3, hidden: int = 1024,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        self.iterations = int(iterations)
        self.mlp = nn.Sequential(
            nn.Linear(feature_dim + param_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, param_dim),
        )
        # Small first updates: the regression starts near the mean (SPIN's xavier gain 0.01).
        nn.init.xavier_uniform_(self.mlp[-1].weight, gain=0.01)
        nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("mean_params", torch.zeros(param_dim))

    def set_mean_params(self, mean: torch.Tensor) -> None:
        """Replace the starting point, a (D,) vector."""
        mean = torch.as_tensor(mean, dtype=self.mean_params.dtype)
        if mean.shape != self.mean_params.shape:
            raise ValueError(f"mean params must be {tuple(self.mean_params.shape)}, got {tuple(mean.shape)}")
        self.mean_params.copy_(mean)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) -> (B, D)."""
        if features.ndim != 2:
            raise ValueError(f"features must be (B, F), got {tuple(features.shape)}")
        params = self.mean_params.to(features.dtype).expand(features.shape[0], -1)
        for _ in range(self.iterations):
            params = params + self.mlp(torch.cat([features, params], dim=1))
        return params
