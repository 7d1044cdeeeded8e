"""An open registry of model kinds: what the ``task`` of a model card means to the tools.

A kind is registered where its model is defined, as timm registers models, by decorating the estimator
class that runs it::

    @register_kind("kp2d", "2D keypoint", config=Pose2DConfig, build=build_pose_model,
                   export=pose2d_onnx_graph, card_fields=pose2d_card_fields)
    class TopDownEstimator: ...

The model registry (:mod:`lowres_hps.apis.registry`: cards, ``load_model``, ``save_checkpoint``), the ONNX
export and the CLI handle every registered kind alike, through these fields; none of them switches on a
kind's name. Built-in kinds: ``kp2d`` (:mod:`lowres_hps.models.pose2d`), ``hps3d``
(:mod:`lowres_hps.models.body3d`) and ``mili`` (:mod:`lowres_hps.models.mili`, whole images). A new kind (e.g. a multi-person model taking whole images, see
:class:`~lowres_hps.models.estimator.MultiPersonEstimator`) registers itself in its own module, and is known
once that module is imported (built-in modules are imported on first use). An adapted model
(:class:`~lowres_hps.engine.adapter.Adapter`) keeps the kind of the model it was adapted from; its card
says where it comes from.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelKind", "OnnxGraph", "register_kind", "get_kind", "kind_of", "registered_kinds", "card_fields"]

_BUILTIN_MODULES = ("lowres_hps.models.pose2d", "lowres_hps.models.body3d", "lowres_hps.models.mili")
_KINDS: dict[str, ModelKind] = {}


@dataclass(frozen=True)
class OnnxGraph:
    """What a kind's exporter gives :func:`lowres_hps.apis.export.export_onnx` to trace and document.

    Attributes:
        module: the network with tuple outputs (ONNX has no dict outputs and no None), in eval mode.
        sample_inputs: ``sample_inputs(batch, generator) -> {input name: tensor}``, random valid inputs in
            ``module.forward``'s order (used to trace, and to compare ONNX Runtime with PyTorch).
        output_names: names of the outputs, in order.
        doc: the graph's doc string; ``{name}`` in it becomes the model's name (quoted).
        metadata: ``metadata_props`` documenting preprocessing, crop protocol and outputs (the card is added).
        summary: one line for ``lowres-hps export``.
        dynamic_axes: axes besides the batch that may vary, per input or output name (e.g. a whole-image
            detector's height and width: ``{"images": {2: "height", 3: "width"}}``).
    """

    module: Any
    sample_inputs: Callable[[int, Any], dict[str, Any]]
    output_names: list[str]
    doc: str
    metadata: dict[str, str]
    summary: str
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


def card_fields(config: Any) -> dict[str, Any]:
    """The summary fields of a model card every kind has, from its config: ``input_size``, ``mean``, ``std``,
    ``convention``, ``scale_factor``; ``codec`` and ``codec_params`` empty (kinds with a codec fill them)."""
    return {
        "input_size": tuple(config.input_size),
        "mean": tuple(config.mean),
        "std": tuple(config.std),
        "convention": config.convention,
        "scale_factor": float(config.scale_factor),
        "codec": "",
        "codec_params": {},
    }


@dataclass(frozen=True)
class ModelKind:
    """One kind of model.

    Attributes:
        task: the name in model cards (``"kp2d"``, ``"hps3d"``).
        description: a few words for messages (``"2D keypoint"``, ``"3D body"``).
        config: the config dataclass; ``card.architecture`` is it as a dict (:func:`lowres_hps.core.config`).
        build: ``build(config, pretrained=False) -> network`` (an ``nn.Module`` whose ``config`` is ``config``).
        estimator: the class that runs the network; ``estimator.from_network(network, card=None, device=None,
            **options)`` makes one (e.g. ``flip_test=True`` for kp2d; unknown options are a ``ValueError``).
        export: ``export(network) -> OnnxGraph``, or None when the kind cannot be exported.
        card_fields: ``card_fields(config) -> dict`` of the card's summary fields (see :func:`card_fields`).
    """

    task: str
    description: str
    config: type
    build: Callable[..., Any]
    estimator: type
    export: Callable[[Any], OnnxGraph] | None = None
    card_fields: Callable[[Any], dict[str, Any]] = card_fields


def register_kind(task: str, description: str, *, config: type, build: Callable[..., Any],
                  export: Callable[[Any], OnnxGraph] | None = None,
                  card_fields: Callable[[Any], dict[str, Any]] = card_fields) -> Callable[[type], type]:
    """Class decorator of a kind's estimator class: registers the kind under ``task`` (see :class:`ModelKind`)."""
    if not task or not task.isidentifier():
        raise ValueError(f"a kind's task is a plain word, got {task!r}")

    def decorator(estimator: type) -> type:
        existing = _KINDS.get(task)
        if existing is not None and existing.estimator.__qualname__ != estimator.__qualname__:
            raise ValueError(f"model kind {task!r} is already registered by {existing.estimator.__qualname__}")
        if not callable(getattr(estimator, "from_network", None)):
            raise TypeError(f"{estimator.__name__} needs a from_network(network, card=None, device=None, **options) "
                            f"class method to be a model kind's estimator")
        _KINDS[task] = ModelKind(task, description, config, build, estimator, export, card_fields)
        return estimator

    return decorator


def _import_builtin() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def registered_kinds() -> dict[str, ModelKind]:
    """task -> kind, the built-in ones included."""
    _import_builtin()
    return dict(_KINDS)


def get_kind(task: str) -> ModelKind:
    """The kind of a card's ``task``; ``ValueError`` naming the known kinds when there is none."""
    if task not in _KINDS:
        _import_builtin()
    if task not in _KINDS:
        raise ValueError(f"no model kind {task!r}; this version knows {', '.join(sorted(_KINDS))}")
    return _KINDS[task]


def kind_of(config: Any) -> ModelKind:
    """The kind whose config class ``config`` is."""
    _import_builtin()
    for kind in _KINDS.values():
        if type(config) is kind.config:
            return kind
    raise ValueError(f"{type(config).__name__} is the config of no registered model kind "
                     f"(known: {', '.join(f'{k.task}: {k.config.__name__}' for k in _KINDS.values())})")
