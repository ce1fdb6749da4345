"""Export of trained models: ONNX (export, metadata, simplification, checks, numeric validation)."""
