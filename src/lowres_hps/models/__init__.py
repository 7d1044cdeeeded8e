"""Models: backbones, heads and keypoint codecs (targets <-> keypoints) for 2D pose."""
