"""Python entry points: the predictor, the people detector, the model registry, ONNX export, inputs of
``predict`` and accuracy with ground-truth boxes."""
