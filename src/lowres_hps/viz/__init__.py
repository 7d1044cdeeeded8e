"""Drawing: keypoint skeletons, contact sheets and quick mesh previews."""
