"""Named models: which ``.safetensors`` file a model name means (``resolve_model_path``).

Named models live in ``src/lowres_hps/weights/<name>.safetensors`` (shipped with the package) or in
``$LOWRES_HPS_WEIGHTS_DIR``. What a file holds (its model card) and how it is loaded is the business of
:mod:`lowres_hps.apis.registry`; this module only finds files, so that training tasks may start from a named
model (e.g. RSC-Net's trunk from ``cal_r18_64x48``) without the registry.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "WEIGHTS_DIR_ENV",
    "PACKAGE_WEIGHTS_DIR",
    "UnknownModelError",
    "weights_dirs",
    "register_model",
    "registered_names",
    "installed_models",
    "not_installed",
    "resolve_model_path",
    "load_network_weights",
]

WEIGHTS_DIR_ENV = "LOWRES_HPS_WEIGHTS_DIR"
"""Environment variable: an extra folder of named ``<name>.safetensors`` models, searched first."""
PACKAGE_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
"""The shipped models' folder."""

# Models that ship with the package: name -> file name in a weights folder. Files found in the
# weights folders are known by their stem as well; a registered name lets a missing file be reported
# as "not installed" rather than "unknown".
_REGISTERED: dict[str, str] = {
    # CAL 2D keypoint models trained here (scripts/register_kp2d_model.py; see benchmarks/README.md).
    "cal_r18_64x48": "cal_r18_64x48.safetensors",
    "cal_r18_128x96": "cal_r18_128x96.safetensors",
    "cal_mnv3s_64x48": "cal_mnv3s_64x48.safetensors",  # MobileNetV3-Small: the fast one
    # Low-resolution students of MoveNet Lightning, fine-tuned with CAL's losses on real people degraded to
    # 12-128 px (configs/kp2d/lrmove_l_*.yaml); lrmove_l_128 is the default of `predict`.
    "lrmove_l_128": "lrmove_l_128.safetensors",
    "lrmove_l_128x96": "lrmove_l_128x96.safetensors",
    # RSC-Net 3D body models: on the 2D default's MoveNet trunk (configs/hps3d/rsc_move_c128.yaml), fine-tuned
    # further six times (configs/hps3d/rsc_move_c128_ft.yaml, _ft2.yaml, _ft3.yaml, _ft4.yaml, _ft5.yaml, then
    # _eft.yaml: EFT pseudo-labels and the camera-scale floor, the 3D default of `predict`, with the flip test on;
    # each config starts from the one before), and the first one,
    # ResNet-18 from a synthetic-only 2D trunk (configs/hps3d/rsc_r18_c64.yaml).
    "rsc_move_c128": "rsc_move_c128.safetensors",
    "rsc_move_c128_ft": "rsc_move_c128_ft.safetensors",
    "rsc_move_c128_ft2": "rsc_move_c128_ft2.safetensors",
    "rsc_move_c128_ft3": "rsc_move_c128_ft3.safetensors",
    "rsc_move_c128_ft4": "rsc_move_c128_ft4.safetensors",
    "rsc_move_c128_ft5": "rsc_move_c128_ft5.safetensors",
    "rsc_move_c128_eft": "rsc_move_c128_eft.safetensors",
    # The adversarial auto-encoder pose prior of silhouette adaptation (scripts/train_pose_prior.py).
    "anny_pose_prior": "anny_pose_prior.safetensors",
    "rsc_r18_c64": "rsc_r18_c64.safetensors",
    # MILI on MoveNet MultiPose's trunk (configs/mili/mili_multipose_slowtrunk.yaml): the detector of
    # `predict --detector mili` (boxes, and masks with --masks).
    "mili_multipose": "mili_multipose.safetensors",
}


class UnknownModelError(KeyError):
    """A model name that is neither registered nor installed (the message lists the known names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def weights_dirs() -> list[Path]:
    """Folders searched for named models: ``$LOWRES_HPS_WEIGHTS_DIR`` (if set), then the package's."""
    dirs = [Path(os.environ[WEIGHTS_DIR_ENV])] if os.environ.get(WEIGHTS_DIR_ENV) else []
    return dirs + [PACKAGE_WEIGHTS_DIR]


def register_model(name: str, filename: str | None = None) -> None:
    """Declare a named model whose file is ``filename`` (default ``<name>.safetensors``) in a weights folder."""
    if not name or "/" in name or os.sep in name:
        raise ValueError(f"model names are plain words without path separators, got {name!r}")
    _REGISTERED[name] = filename or f"{name}.safetensors"


def installed_models() -> dict[str, Path]:
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


def not_installed() -> dict[str, str]:
    """Registered names whose weights file is in no weights folder -> that file's name."""
    installed = installed_models()
    return {name: filename for name, filename in sorted(_REGISTERED.items()) if name not in installed}


def registered_names() -> list[str]:
    """Every known model name: registered ones and those with a file in a weights folder."""
    return sorted(set(_REGISTERED) | set(installed_models()))


def _looks_like_path(text: str) -> bool:
    return text.endswith((".safetensors", ".onnx")) or "/" in text or os.sep in text or Path(text).exists()


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file of a model name or path; clear ``FileNotFoundError``/``KeyError`` otherwise."""
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or _looks_like_path(text):
        path = Path(text)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    installed = installed_models()
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


def load_network_weights(network, path: str | os.PathLike) -> int:
    """Load every weight of ``network`` (a ``torch.nn.Module``) from a checkpoint of the same architecture (a
    registered name, e.g. ``rsc_move_c128``, or a ``.safetensors`` path such as a run's ``model.safetensors``),
    cast to the network's dtypes: the start of a fine-tuning run. Returns the number of tensors loaded; raises
    ``ValueError`` naming the file when the checkpoint does not fit."""
    import safetensors.torch

    resolved = resolve_model_path(path)
    state = safetensors.torch.load_file(str(resolved))
    target = network.state_dict()
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    wrong = [k for k in set(target) & set(state) if state[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        config = getattr(network, "config", None)
        described = (f"this {type(network).__name__}" + (f" ({config.backbone})" if hasattr(config, "backbone") else ""))
        raise ValueError(f"{resolved} does not fit {described}: {len(missing)} tensors missing (e.g. {missing[:2]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}), {len(wrong)} of another shape "
                         f"(e.g. {sorted(wrong)[:2]})")
    network.load_state_dict({k: v.to(target[k].dtype) for k, v in state.items()}, strict=True)
    return len(state)
