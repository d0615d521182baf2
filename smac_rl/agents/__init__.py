"""RL training, MLflow tracking and ONNX export; filled by the thin-path and agents issues."""
