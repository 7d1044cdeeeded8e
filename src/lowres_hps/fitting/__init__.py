"""Optimisation of body models against image evidence, after (or inside) a network.

* :mod:`~lowres_hps.fitting.keypoints2d`: a regressed body fitted to 2D keypoints (EFT/SMPLify-style, the
  network's output as start and prior).

A layer of its own: it uses the body models and cameras below it, and serves the models, methods and the
predictor above.
"""
from lowres_hps.fitting.keypoints2d import KeypointFit, KeypointFitConfig, fit_body_to_keypoints, gmof

__all__ = ["KeypointFit", "KeypointFitConfig", "fit_body_to_keypoints", "gmof"]
