"""Concept-aware FAISS index (numpy, faiss and sqlite3 only; no torch at import).

    from ceir_sdk.index import ConceptIndex
    index = ConceptIndex.build(latents, activations, concepts, metadata=[{"path": p} for p in paths])
    index.search_concepts("+striped +water -grass", k=10, where={"split": "test"})
    index.search_like(42, add=["snow"], remove=["grass"], encoder=model)
    index.cluster(10).names
    index.save("my-index/"); ConceptIndex.load("my-index/")
"""

from ceir_sdk.index.concept_index import ConceptIndex, Hit, IndexClusters, Shard
from ceir_sdk.index.encoder import Encoder, FunctionEncoder, ModelEncoder, RuntimeEncoder, as_encoder, load_encoder
from ceir_sdk.index.encoder_ref import EncoderRef
from ceir_sdk.index.expression import ConceptQuery, Term, UnknownConceptError, parse_expression
from ceir_sdk.index.metadata import compile_filter
from ceir_sdk.index.vectors import choose_factory, faiss_gpu_available

__all__ = [
    "ConceptIndex",
    "ConceptQuery",
    "Encoder",
    "EncoderRef",
    "FunctionEncoder",
    "Hit",
    "IndexClusters",
    "ModelEncoder",
    "RuntimeEncoder",
    "Shard",
    "Term",
    "UnknownConceptError",
    "as_encoder",
    "choose_factory",
    "compile_filter",
    "faiss_gpu_available",
    "load_encoder",
    "parse_expression",
]
