"""The registry of model kinds: built-in kinds registered where they are defined, clear errors, one owner per kind."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from lowres_hps.models.body3d import Body3DConfig, Body3DEstimator, build_body3d_model
from lowres_hps.models.kinds import card_fields, get_kind, kind_of, register_kind, registered_kinds
from lowres_hps.models.pose2d import Pose2DConfig, TopDownEstimator, build_pose_model


def test_builtin_kinds_are_registered_by_their_modules():
    kinds = registered_kinds()
    assert {"kp2d", "hps3d"} <= set(kinds)
    kp2d, hps3d = kinds["kp2d"], kinds["hps3d"]
    assert (kp2d.config, kp2d.build, kp2d.estimator) == (Pose2DConfig, build_pose_model, TopDownEstimator)
    assert (hps3d.config, hps3d.build, hps3d.estimator) == (Body3DConfig, build_body3d_model, Body3DEstimator)
    assert kp2d.export is not None and hps3d.export is not None
    assert kind_of(Pose2DConfig()) is kp2d and kind_of(Body3DConfig()) is hps3d


def test_card_fields_of_the_builtin_kinds():
    pose = Pose2DConfig(codec="udp", codec_params={"sigma": 2.0})
    assert get_kind("kp2d").card_fields(pose) == {**card_fields(pose), "codec": "udp", "codec_params": {"sigma": 2.0}}
    body = get_kind("hps3d").card_fields(Body3DConfig(canvas=64))
    assert body["input_size"] == (64, 64) and body["codec"] == "" and body["codec_params"] == {}


def test_unknown_kinds_and_configs_are_clear_errors():
    with pytest.raises(ValueError, match="no model kind 'seg'; this version knows .*hps3d.*kp2d"):
        get_kind("seg")

    @dataclass
    class Orphan:
        size: int = 1

    with pytest.raises(ValueError, match="Orphan is the config of no registered model kind"):
        kind_of(Orphan())


def test_a_kind_has_one_estimator_class_with_from_network():
    with pytest.raises(ValueError, match="'kp2d' is already registered by TopDownEstimator"):
        @register_kind("kp2d", "another", config=Pose2DConfig, build=build_pose_model)
        class Impostor:
            @classmethod
            def from_network(cls, network, card=None, device=None):
                return cls()

    with pytest.raises(TypeError, match="from_network"):
        register_kind("no_loader_test", "test", config=Pose2DConfig, build=build_pose_model)(type("Bare", (), {}))
    with pytest.raises(ValueError, match="plain word"):
        register_kind("two words", "test", config=Pose2DConfig, build=build_pose_model)
    assert get_kind("kp2d").estimator is TopDownEstimator


def test_onnx_graph_of_a_kind_runs_its_network():
    torch.manual_seed(0)
    network = build_body3d_model(Body3DConfig(canvas=64, hidden=32), pretrained=False).eval()
    graph = get_kind("hps3d").export(network)
    inputs = graph.sample_inputs(2, torch.Generator().manual_seed(0))
    assert list(inputs) == ["images", "range_index"] and inputs["images"].dtype == torch.uint8
    with torch.no_grad():
        outputs = graph.module(*inputs.values())
        expected = network(*inputs.values())
    assert graph.output_names == ["pose_vector", "camera", "features"]
    for name, value in zip(graph.output_names, outputs):
        assert torch.equal(value, expected[name])
    assert "range_index" in graph.metadata and "uint8 + range_index" in graph.summary
