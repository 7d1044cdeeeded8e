"""Models: the estimator contracts, the registry of model kinds, named weights, and the networks (backbones,
heads, keypoint codecs, the 2D top-down model and the 3D body regressor)."""
