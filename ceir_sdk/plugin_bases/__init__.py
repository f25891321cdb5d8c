"""Base classes a plugin author subclasses: the easy way to meet the contracts in
:mod:`ceir_sdk.contracts` (which stay the contract; a plugin may implement them directly).

- :class:`BackboneBase`: write ``encode_batch``, ``encode_text_batch``, ``preprocess_config``
  and ``spec``; get ``encode``/``encode_images`` (skip/fail, pixel limits, batching, worker
  threads, progress, feature cache), ``encode_texts`` and a checked ``preprocess_config``.
- :class:`ConceptSourceBase`: write ``concepts_for(class_name)``; get ``generate`` with merging,
  retries, a cache and provenance.

docs/plugins.md walks through both, from an empty folder to an exported bundle.
"""

from __future__ import annotations

from ceir_sdk.plugin_bases.backbone import BackboneBase
from ceir_sdk.plugin_bases.concept_source import ConceptSourceBase, merge_phrases
from ceir_sdk.plugin_bases.preprocess import PREPROCESS_KEYS, check_preprocess_config

__all__ = ["PREPROCESS_KEYS", "BackboneBase", "ConceptSourceBase", "check_preprocess_config", "merge_phrases"]
