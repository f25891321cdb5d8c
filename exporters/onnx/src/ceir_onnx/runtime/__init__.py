"""Run an exported CEIR bundle with onnxruntime or OpenVINO: no torch, open_clip or training code.

    from ceir_onnx.runtime import Runtime
    rt = Runtime("bundle/", providers="auto", precision="fp32", threads=4, batch_size=32)
    rt = Runtime("bundle/")          # backend/precision "auto": the `ceir tune` choice for this machine
    print(rt.describe()["summary"])  # what runs and why
    latents = rt.embed("photos/")                    # (N, L) latent means
    for batch in rt.embed_batches("photos/"):       # a batch at a time: batch.latent, batch.kept
        ...
    concepts, latents = rt.encode_texts(["a striped cat"])   # text through the concept head
    latents = rt.concept_vector(edited_concepts)     # z-scored concepts (N, C) -> latents
    for e in rt.explain("photos/cat.jpg"): print(e.top)
    index = rt.index("photos/")                      # exact search over latents
    scores, rows = rt.search(index, "query.jpg", k=5)

The class is in :mod:`ceir_onnx.runtime.runtime`; its parts in ``sessions``, ``images`` and ``text``;
the backends in ``backends``, and choosing one by measurement in ``tune``.
"""

from ceir_onnx.runtime.images import Embeddings
from ceir_onnx.runtime.providers import ProviderWarning
from ceir_onnx.runtime.runtime import Explanation, Runtime
from ceir_onnx.runtime.search import ExactIndex

__all__ = ["Embeddings", "ExactIndex", "Explanation", "ProviderWarning", "Runtime"]
