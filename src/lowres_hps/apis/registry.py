"""Model registry: checkpoints that carry their model card, loaded by name or by path.

A checkpoint is one ``.safetensors`` file: the network weights, and a :class:`ModelCard` as JSON in the
file's metadata (readable with ``safetensors.safe_open`` alone, without torch). Named models live in
``src/lowres_hps/weights/<name>.safetensors`` (shipped with the package) or in ``$LOWRES_HPS_WEIGHTS_DIR``.

    save_checkpoint(model, ModelCard.from_config("cal_r18_64x48", cfg, training_data=["synthlr"]), path)
    estimator = load_model("cal_r18_64x48")        # or load_model("runs/x/model.safetensors")

Two tasks: ``"kp2d"`` (2D keypoints; :meth:`ModelCard.from_config`, loaded as a ``TopDownEstimator``) and
``"hps3d"`` (3D body pose and shape; :meth:`ModelCard.from_body3d_config`, loaded as a
``Body3DEstimator`` with its body model).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CARD_METADATA_KEY",
    "WEIGHTS_DIR_ENV",
    "TASKS",
    "ModelCard",
    "save_checkpoint",
    "read_card",
    "load_model",
    "list_models",
    "register_model",
    "registered_names",
    "weights_dirs",
    "resolve_model_path",
    "UnknownModelError",
    "main",
]

CARD_METADATA_KEY = "lowres_hps.model_card"
"""Key of the model card JSON in the safetensors metadata (and in ONNX ``metadata_props``)."""
WEIGHTS_DIR_ENV = "LOWRES_HPS_WEIGHTS_DIR"
"""Environment variable: an extra folder of named ``<name>.safetensors`` models, searched first."""
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

# Models that ship with the package: name -> file name in a weights folder. Files found in the
# weights folders are known by their stem as well; a registered name lets a missing file be reported
# as "not installed" rather than "unknown".
_REGISTERED: dict[str, str] = {
    # CAL 2D keypoint models trained here (scripts/register_kp2d_model.py; see benchmarks/README.md).
    "cal_r18_64x48": "cal_r18_64x48.safetensors",
    "cal_r18_128x96": "cal_r18_128x96.safetensors",
    "cal_mnv3s_64x48": "cal_mnv3s_64x48.safetensors",  # MobileNetV3-Small: the fast one
    # RSC-Net 3D body model (configs/hps3d/rsc_r18_c64.yaml).
    "rsc_r18_c64": "rsc_r18_c64.safetensors",
}
TASKS = ("kp2d", "hps3d")
"""Model card tasks: 2D keypoints, and 3D human pose and shape."""


class UnknownModelError(KeyError):
    """A model name that is neither registered nor installed (the message lists the known names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class ModelCard:
    """What a checkpoint is, how to feed it and how good it is.

    Attributes:
        name: model name (the registry name for shipped models).
        task: ``"kp2d"`` for 2D keypoint models, ``"hps3d"`` for 3D body models.
        architecture: the :class:`~lowres_hps.models.pose2d.Pose2DConfig` (kp2d) or the
            :class:`~lowres_hps.models.body3d.Body3DConfig` (hps3d) as a dict.
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
        extra: card fields written by another version of the package, kept as they are.
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
        """Card of a model built from ``config`` (a ``Pose2DConfig`` or a ``Body3DConfig``), dated today."""
        from lowres_hps import __version__

        is_2d = hasattr(config, "codec")  # Body3DConfig has no codec
        return cls(
            name=name,
            task="kp2d" if is_2d else "hps3d",
            architecture=config.to_dict(),
            input_size=tuple(config.input_size),
            mean=tuple(config.mean),
            std=tuple(config.std),
            convention=config.convention,
            codec=config.codec if is_2d else "",
            codec_params=dict(config.codec_params) if is_2d else {},
            scale_factor=float(config.scale_factor),
            training_data=list(training_data),
            licence=licence,
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            created=datetime.date.today().isoformat(),
            lowres_hps_version=__version__,
            notes=notes,
        )

    @classmethod
    def from_body3d_config(cls, name: str, config, **card_fields) -> ModelCard:
        """Card of a 3D body model built from ``config`` (a ``Body3DConfig``): :meth:`from_config`."""
        if hasattr(config, "codec"):
            raise ValueError("from_body3d_config takes a Body3DConfig; use from_config for 2D models")
        return cls.from_config(name, config, **card_fields)

    def _check_summary(self, cfg, summary: dict[str, Any]) -> None:
        for key, value in summary.items():
            if getattr(cfg, key) != value:
                raise ValueError(f"model card {self.name!r}: {key}={value!r} disagrees with the architecture "
                                 f"({getattr(cfg, key)!r})")

    def body3d_config(self):
        """The ``Body3DConfig`` of :attr:`architecture`, checked against the card's summary fields."""
        from lowres_hps.models.body3d import Body3DConfig

        if self.task != "hps3d":
            raise ValueError(f"model {self.name!r} is a {self.task!r} model, not a 3D body (hps3d) model")
        cfg = Body3DConfig.from_dict(self.architecture)
        self._check_summary(cfg, {"input_size": tuple(self.input_size), "convention": self.convention,
                                  "scale_factor": float(self.scale_factor)})
        return cfg

    def model_config(self):
        """The architecture config of the card's task: ``Pose2DConfig`` (kp2d) or ``Body3DConfig`` (hps3d)."""
        if self.task == "hps3d":
            return self.body3d_config()
        if self.task == "kp2d":
            return self.pose2d_config()
        raise ValueError(f"model {self.name!r} has task {self.task!r}; this version knows {', '.join(TASKS)}")

    def pose2d_config(self):
        """The ``Pose2DConfig`` of :attr:`architecture`, checked against the card's summary fields."""
        from lowres_hps.models.pose2d import Pose2DConfig

        if self.task != "kp2d":
            raise ValueError(f"model {self.name!r} is a {self.task!r} model, not a 2D keypoint (kp2d) model")
        cfg = Pose2DConfig.from_dict(self.architecture)
        self._check_summary(cfg, {"input_size": tuple(self.input_size), "convention": self.convention,
                                  "codec": self.codec})
        return cfg

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
        model: a :class:`~lowres_hps.models.pose2d.TopDownPoseModel` or a ``TopDownEstimator`` (kp2d card),
            a :class:`~lowres_hps.models.body3d.Body3DNet` or a ``Body3DEstimator`` (hps3d card).
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
    """A ready estimator from a registered name or a checkpoint path, by the task of its card.

    - ``kp2d``: a :class:`~lowres_hps.models.pose2d.TopDownEstimator`.
    - ``hps3d``: a :class:`~lowres_hps.models.body3d.Body3DEstimator` (``.model``, ``.card``) with its body
      model (``lowres_hps.body.load_body_model(cfg.body_model)``, on the same device).

    Args:
        name_or_path: a model name (see :func:`list_models`) or a ``.safetensors`` checkpoint path.
        device: where to put the network (default CPU).
        flip_test: override the card's flip test setting (2D models only).
    """
    import safetensors.torch

    path = resolve_model_path(name_or_path)
    card = read_card(path)
    cfg = card.model_config()
    if card.task == "hps3d":
        if flip_test is not None:
            raise ValueError(f"model {card.name!r} is a 3D body model: it has no flip test setting")
        from lowres_hps.models.body3d import build_body3d_model

        model = build_body3d_model(cfg, pretrained=False)
    else:
        from lowres_hps.models.pose2d import build_pose_model

        model = build_pose_model(cfg, pretrained=False)
    state = safetensors.torch.load_file(str(path), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the architecture of its model card: {exc}") from None
    device = device if device is not None else "cpu"
    model.to(device)
    if card.task == "hps3d":
        from lowres_hps.body import load_body_model
        from lowres_hps.models.body3d import Body3DEstimator

        return Body3DEstimator(model, load_body_model(cfg.body_model, device=device), card=card)
    from lowres_hps.models.pose2d import TopDownEstimator

    return TopDownEstimator(model, cfg, flip_test=flip_test, card=card)


# ---------------------------------------------------------------------------------------------
# Names


def weights_dirs() -> list[Path]:
    """Folders searched for named models: ``$LOWRES_HPS_WEIGHTS_DIR`` (if set), then the package's."""
    dirs = [Path(os.environ[WEIGHTS_DIR_ENV])] if os.environ.get(WEIGHTS_DIR_ENV) else []
    return dirs + [PACKAGE_WEIGHTS_DIR]


def register_model(name: str, filename: str | None = None) -> None:
    """Declare a named model whose file is ``filename`` (default ``<name>.safetensors``) in a weights folder."""
    if not name or "/" in name or os.sep in name:
        raise ValueError(f"model names are plain words without path separators, got {name!r}")
    _REGISTERED[name] = filename or f"{name}.safetensors"


def _installed() -> dict[str, Path]:
    """name -> file of every ``*.safetensors`` in the weights folders (earlier folders win)."""
    found: dict[str, Path] = {}
    for folder in reversed(weights_dirs()):
        if folder.is_dir():
            found.update({p.stem: p for p in sorted(folder.glob("*.safetensors"))})
    for name, filename in _REGISTERED.items():
        for folder in weights_dirs():
            if (folder / filename).is_file():
                found[name] = folder / filename
                break
    return found


def registered_names() -> list[str]:
    """Every known model name: registered ones and those with a file in a weights folder."""
    return sorted(set(_REGISTERED) | set(_installed()))


def _looks_like_path(text: str) -> bool:
    return text.endswith(".safetensors") or "/" in text or os.sep in text or Path(text).exists()


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file of a model name or path; clear ``FileNotFoundError``/``KeyError`` otherwise."""
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    installed = _installed()
    if text in installed:
        return installed[text]
    folders = ", ".join(str(d) for d in weights_dirs())
    if text in _REGISTERED:
        raise FileNotFoundError(
            f"model {text!r} is registered but its weights file {_REGISTERED[text]} is not installed in {folders}; "
            f"put the file there (or in ${WEIGHTS_DIR_ENV}) or pass a checkpoint path instead"
        )
    known = ", ".join(registered_names()) or "none installed yet"
    raise UnknownModelError(
        f"unknown model {text!r} (known models: {known}); pass a checkpoint path instead, e.g. "
        f"load_model('runs/cal/model.safetensors') or --model runs/cal/model.safetensors"
    )


def list_models() -> list[ModelCard]:
    """Cards of the installed named models (read from file metadata; weights are not loaded)."""
    cards = []
    for name, path in sorted(_installed().items()):
        card = read_card(path)
        if card.name != name:  # the registry name wins: it is what load_model takes
            card = dataclasses.replace(card, name=name)
        cards.append(card)
    return cards


# ---------------------------------------------------------------------------------------------
# CLI


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()) or "-"


def _backbone_text(card: ModelCard) -> str:
    backbone = str(card.architecture.get("backbone", "?"))
    if card.task == "hps3d":  # RSC-Net's resolution-aware trunk vs the plain baseline
        backbone += " RA" if card.architecture.get("resolution_aware") else " (baseline)"
    return backbone


def main(args: argparse.Namespace) -> int:
    """``lowres-hps models``: the installed named models (2D and 3D) as a markdown table (or JSON)."""
    cards = list_models()
    missing = sorted(set(_REGISTERED) - {c.name for c in cards})
    if args.json:
        print(json.dumps({"models": [json.loads(c.to_json()) for c in cards], "not_installed": missing}, indent=2))
        return 0
    if not cards:
        print(f"no models installed (searched {', '.join(str(d) for d in weights_dirs())}).")
        print("Pass a checkpoint path wherever a model name is asked (e.g. --model runs/cal/model.safetensors).")
    else:
        print("| name | task | input | backbone | codec / body model | keypoints | training data | metrics | licence |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c in cards:
            backbone, output = _backbone_text(c), c.codec or "-"
            if c.task == "hps3d":
                output = f"{c.architecture.get('body_model', '?')} body"
            print(f"| {c.name} | {c.task} | {c.input_size[0]}x{c.input_size[1]} | {backbone} | {output} | "
                  f"{c.convention} | {', '.join(c.training_data) or '-'} | {_metrics_text(c.metrics)} | {c.licence} |")
    for name in missing:
        print(f"registered but not installed: {name} ({_REGISTERED[name]})")
    return 0
