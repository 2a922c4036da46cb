"""jepa_pilot.perception: frame preprocessing, model bundles, ONNX Runtime inference."""
