"""jepa_pilot.world_model: the JEPA encoder and predictor, their training and ONNX export."""
