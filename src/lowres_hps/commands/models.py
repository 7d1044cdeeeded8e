"""``lowres-hps models``: the installed named models of every kind (their cards) as a table or JSON."""
from __future__ import annotations

import argparse
import json

from lowres_hps.apis.registry import ModelCard, list_models, not_installed, weights_dirs

__all__ = ["main"]


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()) or "-"


def _input_text(card: ModelCard) -> str:
    if "latent_size" in card.architecture:  # a pose prior: no image goes in
        return "pose vector"
    return "whole image" if tuple(card.input_size) == (0, 0) else f"{card.input_size[0]}x{card.input_size[1]}"


def _backbone_text(card: ModelCard) -> str:
    if "latent_size" in card.architecture:  # the adversarial auto-encoder pose prior
        return f"MLP auto-encoder, latent {card.architecture['latent_size']}"
    if "backbone" not in card.architecture and "width_mult" in card.architecture:  # MILI: MultiPose's trunk
        return f"mobilenet_v2 x{card.architecture['width_mult']:g} FPN"
    backbone = str(card.architecture.get("backbone", "?"))
    if "resolution_aware" in card.architecture:  # RSC-Net's resolution-aware trunk vs the plain baseline
        backbone += " RA" if card.architecture["resolution_aware"] else " (baseline)"
    if card.architecture.get("flip_test"):  # the card's inference setting: twice the network's cost
        backbone += ", flip test"
    return backbone


def _output_text(card: ModelCard) -> str:
    """What the network's outputs are decoded with: the codec, or the body model it regresses."""
    if card.codec:
        return card.codec
    body_model = card.architecture.get("body_model")
    return f"{body_model} body" if body_model else "-"


def main(args: argparse.Namespace) -> int:
    """The installed named models as a markdown table (or JSON), then the registered ones not installed."""
    cards = list_models()
    missing = not_installed()
    if args.json:
        print(json.dumps({"models": [json.loads(c.to_json()) for c in cards], "not_installed": sorted(missing)},
                         indent=2))
        return 0
    if not cards:
        print(f"no models installed (searched {', '.join(str(d) for d in weights_dirs())}).")
        print("Pass a checkpoint path wherever a model name is asked (e.g. --model runs/cal/model.safetensors).")
    else:
        print("| name | task | input | backbone | codec / body model | keypoints | training data | metrics | licence |")
        print("|---|---|---|---|---|---|---|---|---|")
        for c in cards:
            print(f"| {c.name} | {c.task} | {_input_text(c)} | {_backbone_text(c)} | "
                  f"{_output_text(c)} | {c.convention} | {', '.join(c.training_data) or '-'} | "
                  f"{_metrics_text(c.metrics)} | {c.licence} |")
    for name, filename in missing.items():
        print(f"registered but not installed: {name} ({filename})")
    return 0
