"""The HTTP profile service for INCAR: onnxruntime + numpy, no training stack (serving issue)."""
