"""ceir-onnx: export CEIR models to ONNX bundles and run them without torch.

``ceir_onnx.runtime`` needs only numpy, pillow, safetensors and one inference backend:
onnxruntime, or OpenVINO alone (imported on first use, so either suffices); the export side
(``ceir_onnx.export``) imports torch and onnx lazily.
"""

__version__ = "0.1.0"
