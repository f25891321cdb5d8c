"""CLIP byte-level BPE tokenizer in plain Python (no torch).

Reads the same ``bpe_simple_vocab_16e6.txt.gz`` merges file as open_clip and follows its
``SimpleTokenizer`` with the default "lower" cleaning, so token ids agree exactly (a test
compares them). Output is an int64 numpy array ready for the text graph.
"""

from __future__ import annotations

import gzip
import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import regex

try:  # ftfy repairs mojibake exactly as open_clip does; plain text is unchanged without it
    import ftfy

    _fix_text = ftfy.fix_text
except ImportError:  # pragma: no cover - ftfy is a declared dependency
    import unicodedata

    def _fix_text(text: str, config: Any = None, **kwargs: Any) -> str:
        return unicodedata.normalize("NFC", text)


# CLIP keeps the first 48,894 merges (vocab 49,408 = 256 bytes * 2 + merges + 2 specials).
_N_MERGES = 49152 - 256 - 2
SOT = "<start_of_text>"
EOT = "<end_of_text>"


@lru_cache
def _bytes_to_unicode() -> dict[int, str]:
    """Reversible map from bytes to printable unicode characters (as in GPT-2 / CLIP)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _clean(text: str) -> str:
    text = html.unescape(html.unescape(_fix_text(text))).strip()
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """``tokenizer(["a red bird"])`` -> int64 array (N, context_length)."""

    def __init__(self, vocab_file: str | Path, context_length: int = 77) -> None:
        lines = gzip.open(vocab_file).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
        byte_chars = list(_bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges]
        vocab += [SOT, EOT]
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.ranks: dict[tuple[str, ...], int] = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = _bytes_to_unicode()
        self.sot_id = self.encoder[SOT]
        self.eot_id = self.encoder[EOT]
        self.context_length = int(context_length)
        self._cache: dict[str, list[str]] = {}
        self._pattern = regex.compile(
            r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    def _bpe(self, token: str) -> list[str]:
        if token in (SOT, EOT):
            return [token]
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            # merge the lowest-ranked adjacent pair everywhere it occurs, as CLIP does
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == best[0] and word[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in self._pattern.findall(_clean(text)):
            chars = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self._bpe(chars))
        return ids

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        out = np.zeros((len(texts), self.context_length), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = [self.sot_id, *self.encode(text), self.eot_id]
            if len(ids) > self.context_length:  # truncate but keep the end token, like open_clip
                ids = ids[: self.context_length]
                ids[-1] = self.eot_id
            out[row, : len(ids)] = ids
        return out
