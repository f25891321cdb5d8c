"""ceir-onnx: export CEIR models to ONNX bundles and run them without torch.

``ceir_onnx.runtime`` needs only numpy, pillow, onnxruntime (and safetensors); the export
side (``ceir_onnx.export``) imports torch and onnx lazily.
"""

__version__ = "0.1.0"
