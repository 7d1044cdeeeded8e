"""lowres-hps: 2D keypoints and 3D body pose and shape from low-resolution images of people."""
__version__ = "0.1.0"
