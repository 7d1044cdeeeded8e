"""Model registry: checkpoint round trip with the card, names vs paths, clear errors, `lowres-hps models`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import safetensors.torch
import torch

from lowres_hps.apis import registry
from lowres_hps.models import weights as named_weights
from lowres_hps.apis.registry import (
    CARD_METADATA_KEY,
    ModelCard,
    UnknownModelError,
    list_models,
    load_model,
    read_card,
    register_model,
    registered_names,
    save_checkpoint,
)
from lowres_hps.cli import main as cli_main
from lowres_hps.models.pose2d import Pose2DConfig, TopDownEstimator, build_pose_model


@pytest.fixture(scope="module")
def tiny_model():
    cfg = Pose2DConfig(backbone="mobilenet_v3_small", backbone_params={"width_mult": 0.25, "neck_channels": 8},
                       input_size=(64, 48), codec="cal", codec_params={"sigma": 1.5}, flip_test=False)
    torch.manual_seed(0)
    model = build_pose_model(cfg).eval()
    with torch.no_grad():
        model.head.conv.weight.mul_(1000.0)  # well separated heatmap maxima
        for m in model.modules():  # non-trivial running statistics, so that they must round-trip too
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def card(tiny_model):
    return ModelCard.from_config(
        "tiny_cal_64x48", tiny_model.config, training_data=["synthlr_train"], licence="Apache-2.0",
        metrics={"synthlr_test_ap@64x48": 0.123}, notes="test model",
    )


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(folder))
    return folder


def crops(batch=3, seed=0):
    return torch.randint(0, 256, (batch, 3, 64, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_round_trip_gives_identical_outputs_and_card(tiny_model, card, tmp_path):
    path = save_checkpoint(tiny_model, card, tmp_path / "model.safetensors")
    estimator = load_model(path)
    assert isinstance(estimator, TopDownEstimator)
    assert estimator.card == card
    assert estimator.config == tiny_model.config
    x = crops()
    with torch.no_grad():
        expected, got = tiny_model(x), estimator.model(x)
    assert torch.equal(expected["heatmaps"], got["heatmaps"])
    assert torch.equal(expected["offsets"], got["offsets"])
    keypoints, scores = estimator(x)
    ref_keypoints, ref_scores = TopDownEstimator(tiny_model)(x)
    assert torch.equal(keypoints, ref_keypoints) and torch.equal(scores, ref_scores)
    assert not estimator.model.training


def test_card_is_readable_without_torch(tiny_model, card, tmp_path):
    path = save_checkpoint(tiny_model, card, tmp_path / "model.safetensors")
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = None  # any torch import now fails\n"
        "from safetensors import safe_open\n"
        f"with safe_open({str(path)!r}, framework='numpy') as f:\n"
        f"    print(f.metadata()[{CARD_METADATA_KEY!r}])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["name"] == "tiny_cal_64x48" and data["task"] == "kp2d"
    assert data["input_size"] == [64, 48] and data["codec"] == "cal"
    assert data["metrics"] == {"synthlr_test_ap@64x48": 0.123}
    assert data["architecture"]["codec_params"] == {"sigma": 1.5}
    assert read_card(path) == card


def test_card_json_keeps_unknown_fields(card):
    data = json.loads(card.to_json())
    data["dataset_hash"] = "abc"
    again = ModelCard.from_json(json.dumps(data))
    assert again.extra == {"dataset_hash": "abc"}
    assert json.loads(again.to_json())["dataset_hash"] == "abc"
    del data["architecture"]
    with pytest.raises(ValueError, match="missing \\['architecture'\\]"):
        ModelCard.from_json(json.dumps(data))


def test_card_must_match_the_model(tiny_model, card, tmp_path):
    other = Pose2DConfig(backbone="resnet18", input_size=(64, 48))
    with pytest.raises(ValueError, match="another architecture"):
        save_checkpoint(tiny_model, ModelCard.from_config("x", other), tmp_path / "x.safetensors")
    bad = ModelCard.from_json(card.to_json())
    bad.input_size = (128, 96)
    with pytest.raises(ValueError, match="disagrees with the architecture"):
        bad.model_config("kp2d")
    bad = ModelCard.from_json(card.to_json())
    bad.task = "kp3d"
    with pytest.raises(ValueError, match="not a 2D keypoint"):
        bad.model_config("kp2d")


def test_files_that_are_not_checkpoints(tiny_model, tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a safetensors checkpoint"):
        read_card(tmp_path / "junk.safetensors")
    safetensors.torch.save_file({"w": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="has no model card"):
        load_model(tmp_path / "plain.safetensors")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model(tmp_path / "missing.safetensors")


def test_weights_that_do_not_fit_the_card(tiny_model, card, tmp_path):
    path = tmp_path / "model.safetensors"
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    state.pop("head.conv.bias")
    safetensors.torch.save_file(state, str(path), metadata={CARD_METADATA_KEY: card.to_json()})
    with pytest.raises(ValueError, match="do not fit the architecture"):
        load_model(path)


def test_names_resolve_in_the_weights_folders(tiny_model, card, weights_dir):
    save_checkpoint(tiny_model, card, weights_dir / "tiny_cal_64x48.safetensors")
    assert "tiny_cal_64x48" in registered_names()
    estimator = load_model("tiny_cal_64x48")
    assert estimator.card.name == "tiny_cal_64x48"
    cards = {c.name: c for c in list_models()}
    assert cards["tiny_cal_64x48"] == card


def test_unknown_name_lists_known_names_and_how_to_pass_a_path(tiny_model, card, weights_dir):
    save_checkpoint(tiny_model, card, weights_dir / "tiny_cal_64x48.safetensors")
    with pytest.raises(UnknownModelError) as info:
        load_model("no_such_model")
    message = str(info.value)
    assert "unknown model 'no_such_model'" in message
    assert "tiny_cal_64x48" in message
    assert "checkpoint path" in message and ".safetensors" in message
    assert isinstance(info.value, KeyError)


def test_registered_name_without_its_file_is_reported(weights_dir, monkeypatch):
    monkeypatch.setattr(named_weights, "_REGISTERED", {})
    monkeypatch.setattr(named_weights, "PACKAGE_WEIGHTS_DIR", weights_dir / "package")  # not the shipped file
    register_model("cal_r18_64x48")
    assert "cal_r18_64x48" in registered_names()
    with pytest.raises(FileNotFoundError, match="registered but its weights file cal_r18_64x48.safetensors is not"):
        load_model("cal_r18_64x48")
    with pytest.raises(ValueError, match="plain words"):
        register_model("a/b")


def test_models_command(tiny_model, card, weights_dir, capsys, monkeypatch):
    monkeypatch.setattr(named_weights, "_REGISTERED", {})
    monkeypatch.setattr(named_weights, "PACKAGE_WEIGHTS_DIR", weights_dir / "package")
    assert cli_main(["models"]) == 0
    assert "no models installed" in capsys.readouterr().out
    save_checkpoint(tiny_model, card, weights_dir / "tiny_cal_64x48.safetensors")
    register_model("not_here")
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "| tiny_cal_64x48 | kp2d | 64x48 | mobilenet_v3_small | cal | coco17 | synthlr_train |" in out
    assert "synthlr_test_ap@64x48=0.123" in out
    assert "registered but not installed: not_here" in out
    assert cli_main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["models"]] == ["tiny_cal_64x48"]
    assert data["not_installed"] == ["not_here"]


# ---------------------------------------------------------------------------------------------
# 3D body models (task "hps3d")


@pytest.fixture(scope="module")
def tiny_body_net():
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

    torch.manual_seed(0)
    return build_body3d_model(Body3DConfig(canvas=64), pretrained=False).eval()


@pytest.fixture
def body_card(tiny_body_net):
    return ModelCard.from_config("tiny_rsc_c64", tiny_body_net.config, training_data=["synthlr_train"],
                                 metrics={"synthlr_test_mpjpe_mm@32": 250.0}, notes="test 3D model")


def test_body3d_card_fields(tiny_body_net, body_card):
    assert body_card.task == "hps3d" and body_card.input_size == (64, 64)
    assert body_card.codec == "" and body_card.codec_params == {}
    assert body_card.convention == "coco17" and body_card.scale_factor == 1.25
    assert body_card.architecture["body_model"] == "anny" and body_card.architecture["canvas"] == 64
    assert body_card.model_config("hps3d") == tiny_body_net.config
    assert body_card.model_config() == tiny_body_net.config
    with pytest.raises(ValueError, match="not a 2D keypoint"):
        body_card.model_config("kp2d")
    bad = ModelCard.from_json(body_card.to_json())
    bad.input_size = (128, 128)
    with pytest.raises(ValueError, match="disagrees with the architecture"):
        bad.model_config("hps3d")
    bad.task = "seg"
    with pytest.raises(ValueError, match="task 'seg'"):
        bad.model_config()


def test_body3d_round_trip_gives_a_body_estimator(tiny_body_net, body_card, tmp_path):
    from lowres_hps.models.body3d import Body3DEstimator

    path = save_checkpoint(tiny_body_net, body_card, tmp_path / "rsc.safetensors")
    assert read_card(path) == body_card
    estimator = load_model(path)
    assert isinstance(estimator, Body3DEstimator)
    assert estimator.card == body_card and estimator.config == tiny_body_net.config
    assert estimator.body.name == "anny" and not estimator.model.training
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ranges = torch.tensor([0, 4])
    with torch.no_grad():
        expected, got = tiny_body_net(x, ranges), estimator.model(x, ranges)
    assert torch.equal(expected["pose_vector"], got["pose_vector"]) and torch.equal(expected["camera"], got["camera"])
    # An estimator saves like its network.
    again = save_checkpoint(estimator, body_card, tmp_path / "again.safetensors")
    assert torch.equal(load_model(again).model(x, ranges)["camera"], got["camera"])
    # The card's flip test setting (off here), overridden at load time.
    assert estimator.flip_test is False and load_model(path, flip_test=True).flip_test is True
    with pytest.raises(ValueError, match="no codec setting"):
        Body3DEstimator.from_network(tiny_body_net, card=body_card, codec="cal")


def test_card_task_must_match_the_model_kind(tiny_model, card, tiny_body_net, body_card, tmp_path):
    with pytest.raises(ValueError, match="hps3d card but the model is a TopDownPoseModel"):
        save_checkpoint(tiny_model, body_card, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="kp2d card but the model is a Body3DNet"):
        save_checkpoint(tiny_body_net, card, tmp_path / "x.safetensors")


def test_default_3d_model_is_registered_and_reported_when_missing(weights_dir, monkeypatch):
    monkeypatch.setattr(named_weights, "PACKAGE_WEIGHTS_DIR", weights_dir / "package")  # whatever is installed
    assert "rsc_r18_c64" in registered_names()
    with pytest.raises(FileNotFoundError, match="'rsc_r18_c64' is registered but its weights file "
                                                "rsc_r18_c64.safetensors is not installed"):
        load_model("rsc_r18_c64")


def test_models_command_lists_3d_models(tiny_body_net, body_card, weights_dir, capsys, monkeypatch):
    monkeypatch.setattr(named_weights, "_REGISTERED", {})
    monkeypatch.setattr(named_weights, "PACKAGE_WEIGHTS_DIR", weights_dir / "package")
    save_checkpoint(tiny_body_net, body_card, weights_dir / "tiny_rsc_c64.safetensors")
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "| tiny_rsc_c64 | hps3d | 64x64 | resnet18 RA | anny body | coco17 | synthlr_train |" in out
    assert "synthlr_test_mpjpe_mm@32=250" in out
    # A card that turns the flip test on says so.
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model

    network = build_body3d_model(Body3DConfig(canvas=64, flip_test=True), pretrained=False)
    flipped = ModelCard.from_config("tiny_rsc_flip", network.config, training_data=["synthlr_train"])
    save_checkpoint(network, flipped, weights_dir / "tiny_rsc_flip.safetensors")
    assert cli_main(["models"]) == 0
    assert "| tiny_rsc_flip | hps3d | 64x64 | resnet18 RA, flip test | anny body |" in capsys.readouterr().out
