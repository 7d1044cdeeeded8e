"""Test-time adaptation and fitting: update a copy of a trained model from unlabelled inputs.

The :class:`~lowres_hps.engine.trainer.Trainer` fits a model to a labelled training set. An :class:`Adapter`
starts from a trained model (e.g. a shipped one, ``load_model("cal_r18_64x48").model``) and updates a *copy*
of it on the inputs at hand by minimising a loss that needs no labels: agreement between a crop and its
mirror image or between resolutions, with a silhouette, with a body prior... The loss belongs to the method
(``lowres_hps/methods/``); the loop is here, the same for all of them::

    adapter = Adapter(my_loss, AdaptConfig(steps=100, optim=OptimConfig(name="adam", lr=1e-5)))
    adapted = adapter.adapt_estimator(estimator, batches)   # estimator untouched
    save_checkpoint(adapted, estimator.card.adapted("cal_r18_64x48_site3", {"loss": "flip", "steps": 100}), path)

``loss(model, batch) -> (scalar loss, {name: value})`` has the signature of a training task's loss
(:class:`~lowres_hps.engine.trainer.Task`). Fitting per image (optimising the parameters of each person
rather than a network's weights) is the same loop over a module that holds those parameters.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from lowres_hps.engine.config import OptimConfig
from lowres_hps.engine.trainer import batch_to_device, build_optimizer

__all__ = ["AdaptConfig", "Adapter", "norm_parameters"]

_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d, nn.InstanceNorm2d,
                nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)


@dataclass
class AdaptConfig:
    """How an :class:`Adapter` updates its copy.

    Attributes:
        steps: optimizer steps; the batches are gone through again until then (see :meth:`Adapter.adapt`).
        optim: optimizer and learning rate (its ``schedule`` fields are not used: the rate is constant).
        parameters: ``"all"`` updates every parameter; ``"norm"`` only the affine parameters of the
            normalisation layers (TENT, Wang et al. 2021), which moves a model least.
        train_mode: run the copy in training mode (BatchNorm statistics follow the new inputs, dropout on);
            False keeps the trained statistics and a deterministic forward.
        grad_clip: max global gradient norm, or None.
        seed: seeds torch before the first step (dropout, random augmentations in the loss).
    """

    steps: int = 50
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-5))
    parameters: Literal["all", "norm"] = "all"
    train_mode: bool = False
    grad_clip: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.parameters not in ("all", "norm"):
            raise ValueError(f"parameters must be 'all' or 'norm', got {self.parameters!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip}")


def norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The affine parameters (weight, bias) of the model's BatchNorm, GroupNorm and LayerNorm layers."""
    return [p for m in model.modules() if isinstance(m, _NORM_LAYERS) for p in m.parameters(recurse=False)]


class Adapter:
    """Minimises ``loss`` on unlabelled batches, on a copy of a model.

    Args:
        loss: ``loss(model, batch) -> (scalar tensor, {name: float or 0-d tensor})``; ``batch`` is already on
            the model's device.
        config: steps, optimizer, which parameters move.

    After :meth:`adapt`, :attr:`history` holds one ``{"step", "loss", ...logs}`` row per step.
    """

    def __init__(self, loss: Callable[[nn.Module, Any], tuple[torch.Tensor, Mapping[str, Any]]],
                 config: AdaptConfig | None = None) -> None:
        self.loss = loss
        self.config = config if config is not None else AdaptConfig()
        self.history: list[dict[str, float]] = []

    def adapt(self, model: nn.Module, batches: Iterable[Any]) -> nn.Module:
        """An adapted copy of ``model`` (in eval mode); ``model`` itself is not changed.

        Args:
            model: the trained network.
            batches: unlabelled batches. A list or a ``DataLoader`` is gone through again and again until
                ``config.steps``; a one-pass iterator ends the adaptation when it runs out.

        Raises:
            ValueError: the loss is not a scalar tensor, or there is no batch.
            FloatingPointError: the loss is not finite.
        """
        cfg = self.config
        adapted = copy.deepcopy(model)
        selected = norm_parameters(adapted) if cfg.parameters == "norm" else list(adapted.parameters())
        if not selected:
            raise ValueError(f"the model has no parameters to adapt (parameters={cfg.parameters!r})")
        chosen = {id(p) for p in selected}
        for parameter in adapted.parameters():
            parameter.requires_grad_(id(parameter) in chosen)
        optimizer = build_optimizer(selected, cfg.optim)
        device = next(adapted.parameters()).device
        adapted.train(cfg.train_mode)
        torch.manual_seed(cfg.seed)
        self.history = []
        while len(self.history) < cfg.steps:
            before = len(self.history)
            for batch in batches:
                self._step(adapted, optimizer, selected, batch_to_device(batch, device))
                if len(self.history) == cfg.steps:
                    break
            if len(self.history) == before:  # empty, or a one-pass iterator that ran out
                break
        if not self.history:
            raise ValueError("no batch to adapt on")
        for parameter in adapted.parameters():
            parameter.requires_grad_(True)
        return adapted.eval()

    def _step(self, model: nn.Module, optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter],
              batch: Any) -> None:
        loss, logs = self.loss(model, batch)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError(f"the adaptation loss must be a scalar tensor, got {type(loss).__name__} "
                             f"of shape {tuple(getattr(loss, 'shape', ()))}")
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the adaptation loss is {value} at step {len(self.history)}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
        optimizer.step()
        self.history.append({"step": len(self.history), "loss": value,
                             **{k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                                for k, v in logs.items()}})

    def adapt_estimator(self, estimator: Any, batches: Iterable[Any]) -> Any:
        """A copy of an estimator (anything holding its network as ``.model``, e.g. from ``load_model``) whose
        network is adapted; the estimator and its network are not changed, the rest (codec, body model, card)
        is shared."""
        adapted = copy.copy(estimator)
        adapted.model = self.adapt(estimator.model, batches)
        return adapted
