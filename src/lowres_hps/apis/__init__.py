"""High-level entry points: the demo (and, as models ship, the predictor and model registry)."""
