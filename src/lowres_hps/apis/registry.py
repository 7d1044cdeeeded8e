"""Model registry: checkpoints that carry their model card, loaded by name or by path.

A checkpoint is one ``.safetensors`` file: the network weights, and a :class:`ModelCard` as JSON in the
file's metadata (readable with ``safetensors.safe_open`` alone, without torch). Named models live in
``src/lowres_hps/weights/<name>.safetensors`` (shipped with the package) or in ``$LOWRES_HPS_WEIGHTS_DIR``
(names are resolved by :mod:`lowres_hps.models.weights`, whose functions this module re-exports).

    save_checkpoint(model, ModelCard.from_config("cal_r18_64x48", cfg, training_data=["synthlr"]), path)
    estimator = load_model("cal_r18_64x48")        # or load_model("runs/x/model.safetensors")

The card's ``task`` names the model's kind (:mod:`lowres_hps.models.kinds`), which says how to build,
run and export it: ``"kp2d"`` (2D keypoints, loaded as a ``TopDownEstimator``), ``"hps3d"`` (3D body pose
and shape, loaded as a ``Body3DEstimator`` with its body model), or any kind registered by its module.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lowres_hps.models.weights import (
    PACKAGE_WEIGHTS_DIR,
    WEIGHTS_DIR_ENV,
    UnknownModelError,
    installed_models,
    not_installed,
    register_model,
    registered_names,
    resolve_model_path,
    weights_dirs,
)

__all__ = [
    "CARD_METADATA_KEY",
    "WEIGHTS_DIR_ENV",
    "PACKAGE_WEIGHTS_DIR",
    "ModelCard",
    "save_checkpoint",
    "read_card",
    "load_model",
    "load_run",
    "list_models",
    "register_model",
    "registered_names",
    "not_installed",
    "weights_dirs",
    "resolve_model_path",
    "UnknownModelError",
]

CARD_METADATA_KEY = "lowres_hps.model_card"
"""Key of the model card JSON in the safetensors metadata (and in ONNX ``metadata_props``)."""
@dataclass
class ModelCard:
    """What a checkpoint is, how to feed it and how good it is.

    Attributes:
        name: model name (the registry name for shipped models).
        task: the model kind (:mod:`lowres_hps.models.kinds`): ``"kp2d"`` for 2D keypoint models, ``"hps3d"``
            for 3D body models.
        architecture: the config of the kind (:class:`~lowres_hps.models.pose2d.Pose2DConfig`,
            :class:`~lowres_hps.models.body3d.Body3DConfig` ...) as a dict.
        input_size: network input ``(h, w)``; ``(canvas, canvas)`` for hps3d.
        mean, std: RGB normalisation for [0, 1] images, applied inside the network to 0..255 inputs.
        convention: keypoint convention of the outputs.
        codec: codec name; ``codec_params`` its parameters besides input size and stride (``""`` and
            ``{}`` for hps3d, whose outputs are body parameters).
        scale_factor: crop margin of the top-down protocol.
        training_data: datasets the weights were trained on (e.g. ``["synthlr_train", "coco_train2017"]``).
        licence: licence of the weights.
        metrics: name -> value, e.g. ``{"synthlr_test_ap@64x48": 0.61, "lspet_pck@0.2": 0.8}``.
        created: ISO date of the checkpoint.
        lowres_hps_version: package version that wrote it.
        notes: free text.
        extra: card fields written by another version of the package, kept as they are; an adapted model
            (:meth:`adapted`) says there what it was adapted from.
    """

    name: str
    task: str
    architecture: dict[str, Any]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    convention: str
    codec: str
    codec_params: dict[str, Any]
    scale_factor: float
    training_data: list[str] = field(default_factory=list)
    licence: str = "unspecified"
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = ""
    lowres_hps_version: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        name: str,
        config,
        *,
        training_data: list[str] | tuple[str, ...] = (),
        licence: str = "unspecified",
        metrics: dict[str, float] | None = None,
        notes: str = "",
    ) -> ModelCard:
        """Card of a model built from ``config`` (the config of a registered kind), dated today."""
        from lowres_hps import __version__
        from lowres_hps.core.config import dump_config
        from lowres_hps.models.kinds import kind_of

        kind = kind_of(config)
        return cls(
            name=name,
            task=kind.task,
            architecture=dump_config(config),
            **kind.card_fields(config),
            training_data=list(training_data),
            licence=licence,
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            created=datetime.date.today().isoformat(),
            lowres_hps_version=__version__,
            notes=notes,
        )

    def model_config(self, task: str | None = None):
        """The architecture config of the card's kind, checked against the card's summary fields.

        Args:
            task: the kind the caller needs (e.g. ``"kp2d"``); another kind is a ``ValueError``.
        """
        from lowres_hps.core.config import load_config
        from lowres_hps.models.kinds import get_kind

        if task is not None and self.task != task:
            raise ValueError(f"model {self.name!r} is a {self.task!r} model, not a {get_kind(task).description} "
                             f"({task}) model")
        try:
            kind = get_kind(self.task)
        except ValueError as exc:
            raise ValueError(f"model {self.name!r} has task {self.task!r}: {exc}") from None
        cfg = load_config(self.architecture, kind.config)
        for key, value in kind.card_fields(cfg).items():
            if getattr(self, key) != value:
                raise ValueError(f"model card {self.name!r}: {key}={getattr(self, key)!r} disagrees with the "
                                 f"architecture ({value!r})")
        return cfg

    def adapted(self, name: str, adaptation: dict[str, Any], notes: str = "") -> ModelCard:
        """The card of a copy of this model adapted to new data (:class:`~lowres_hps.engine.adapter.Adapter`):
        same kind and architecture, a new name and date, and ``extra`` saying ``adapted_from`` (this card's
        name) and how (``adaptation``, e.g. the loss, steps and data)."""
        from lowres_hps import __version__

        return dataclasses.replace(
            self, name=name, metrics={}, created=datetime.date.today().isoformat(), lowres_hps_version=__version__,
            notes=notes, extra={**self.extra, "adapted_from": self.name, "adaptation": dict(adaptation)})

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        extra = data.pop("extra")
        return json.dumps({**data, **extra}, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("invalid model card: not a JSON object")
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields} - {"extra"}
        required = [f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise ValueError(f"invalid model card: missing {missing}")
        known = {k: v for k, v in data.items() if k in names}
        for key in ("input_size", "mean", "std"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


# ---------------------------------------------------------------------------------------------
# Files


def save_checkpoint(model, card: ModelCard, path: str | os.PathLike) -> Path:
    """Write the weights of ``model`` and ``card`` to one ``.safetensors`` file (atomically).

    Args:
        model: a network of the card's kind (e.g. a :class:`~lowres_hps.models.pose2d.TopDownPoseModel` for a
            kp2d card), or an estimator holding one (``.model``).
        card: its card; ``card.architecture`` must be the model's config when the model knows it.
        path: output file (``.safetensors``).

    Returns:
        The path written.
    """
    import safetensors.torch

    from lowres_hps.core.io import atomic_write

    model = getattr(model, "model", model)  # an estimator -> its network
    config = getattr(model, "config", None)
    card_config = card.model_config()
    if config is not None and type(config) is not type(card_config):
        raise ValueError(f"model card {card.name!r} is a {card.task} card but the model is a "
                         f"{type(model).__name__} (config {type(config).__name__})")
    if config is not None and config != card_config:
        raise ValueError(f"model card {card.name!r} describes another architecture than the model's config")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    with atomic_write(path) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata={CARD_METADATA_KEY: card.to_json()})
    return path


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of a checkpoint, read from its metadata only (no weights, no torch)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for non-safetensors files
        raise ValueError(f"{path} is not a safetensors checkpoint: {exc}") from None
    if CARD_METADATA_KEY not in metadata:
        raise ValueError(
            f"{path} has no model card (metadata key {CARD_METADATA_KEY!r}); write checkpoints with "
            f"lowres_hps.apis.registry.save_checkpoint"
        )
    return ModelCard.from_json(metadata[CARD_METADATA_KEY])


def load_model(name_or_path: str | os.PathLike, device: str | None = None, flip_test: bool | None = None):
    """A ready estimator from a registered name or a checkpoint path, made by the kind of its card
    (:mod:`lowres_hps.models.kinds`): ``kp2d`` gives a :class:`~lowres_hps.models.pose2d.TopDownEstimator`,
    ``hps3d`` a :class:`~lowres_hps.models.body3d.Body3DEstimator` with its body model (on the same device).
    The estimator keeps the card (``.card``) and the network (``.model``).

    An ``.onnx`` file written by ``lowres-hps export`` from a 2D model (float32 or ``--int8``) gives an
    :class:`~lowres_hps.apis.export.OnnxEstimator` run by ONNX Runtime (the fast CPU path).

    Args:
        name_or_path: a model name (see :func:`list_models`), a ``.safetensors`` checkpoint path, or a 2D ``.onnx``
            export.
        device: where to put the network (default CPU; an ONNX model uses CUDA's execution provider on ``cuda``).
        flip_test: override the card's flip test setting (kp2d and hps3d models).
    """
    import safetensors.torch

    from lowres_hps.models.kinds import get_kind

    path = resolve_model_path(name_or_path)
    if path.suffix.lower() == ".onnx":
        return _load_onnx_model(path, device, flip_test)
    card = read_card(path)
    cfg = card.model_config()
    kind = get_kind(card.task)
    model = kind.build(cfg, pretrained=False)
    state = safetensors.torch.load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the architecture of its model card: {exc}") from None
    options = {} if flip_test is None else {"flip_test": flip_test}
    return kind.estimator.from_network(model, card=card, device=device if device is not None else "cpu", **options)


def _load_onnx_model(path: Path, device: str | None, flip_test: bool | None):
    """:class:`~lowres_hps.apis.export.OnnxEstimator` of a 2D export, or a
    :class:`~lowres_hps.models.body3d.Body3DEstimator` of a 3D export (the network in ONNX Runtime, the body model
    in PyTorch on the CPU); a clear error for anything else."""
    from lowres_hps.apis.export import OnnxBody3DNet, OnnxEstimator, read_onnx_card

    try:
        card = read_onnx_card(path)
    except Exception as exc:  # not an ONNX file, or one without our card
        raise ValueError(f"{path}: not a lowres-hps ONNX export ({exc})") from None
    cuda = device is not None and str(device).startswith("cuda")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else None
    if card.task == "hps3d":
        from lowres_hps.body import load_body_model
        from lowres_hps.models.body3d import Body3DEstimator

        network = OnnxBody3DNet(path, providers=providers)
        return Body3DEstimator(network, load_body_model(network.config.body_model), card=card, flip_test=flip_test)
    if card.task != "kp2d":
        raise ValueError(f"{path}: ONNX exports run here for 2D keypoint and 3D body models, this one is "
                         f"{card.task!r}; load its .safetensors checkpoint instead")
    return OnnxEstimator(path, flip_test=flip_test, providers=providers)


def load_run(run_dir: str | os.PathLike, device: str | None = None, config_changes: dict[str, Any] | None = None,
             **options):
    """A ready estimator from a training run folder (``config.yaml`` + ``model.safetensors``, see
    :class:`~lowres_hps.engine.Trainer`), made by the kind its task module declares (``MODEL_KIND``).

    Args:
        run_dir: the run folder.
        device: where to put the network (default CPU).
        config_changes: fields of the architecture config replaced after the weights are loaded, e.g.
            ``{"codec": "msra_dark"}`` to decode a CAL network's heatmaps with DARK.
        options: estimator options of the kind (e.g. ``flip_test`` for kp2d, ``body`` for hps3d).
    """
    import inspect

    import yaml

    from lowres_hps.core.config import dump_config, load_config
    from lowres_hps.engine.checkpoint import load_weights
    from lowres_hps.engine.trainer import import_object
    from lowres_hps.models.kinds import get_kind

    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"not a training run folder (no config.yaml): {run_dir}")
    run = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    task = run.get("task", "")
    task_kind = getattr(inspect.getmodule(import_object(task)), "MODEL_KIND", None) if task else None
    if task_kind is None:
        raise ValueError(f"{config_path}: the module of task {task!r} declares no MODEL_KIND, so the kind of its "
                         f"model is unknown")
    kind = get_kind(task_kind)
    cfg = load_config(run.get("task_args", {}).get("model", {}), kind.config)
    network = kind.build(cfg, pretrained=False)
    load_weights(network, run_dir / "model.safetensors")
    if config_changes:
        network.config = load_config({**dump_config(cfg), **config_changes}, kind.config)
    return kind.estimator.from_network(network, device=device if device is not None else "cpu", **options)


# ---------------------------------------------------------------------------------------------
# Names


def list_models() -> list[ModelCard]:
    """Cards of the installed named models (read from file metadata; weights are not loaded)."""
    cards = []
    for name, path in sorted(installed_models().items()):
        card = read_card(path)
        if card.name != name:  # the registry name wins: it is what load_model takes
            card = dataclasses.replace(card, name=name)
        cards.append(card)
    return cards
