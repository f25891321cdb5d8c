"""onnx plugin for ceir-sdk."""
