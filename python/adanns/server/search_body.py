"""Decoding search requests on the hot path: a JSON body, or an ``application/x-npy`` batch with its knobs
in the query string.

msgspec decodes and validates a body in C, several times faster than pydantic; `schemas.SearchRequest`
stays the documented schema (/docs), and tests/test_server_search_body.py checks that both accept and
refuse the same bodies.
"""

from __future__ import annotations

import math
import json
from typing import Annotated, Any, Optional
from urllib.parse import parse_qsl

import msgspec

from .errors import Invalid

Positive = Annotated[int, msgspec.Meta(ge=1)]
Vector = Annotated[list[float], msgspec.Meta(min_length=1)]
_KNOBS = ("search_dim", "nprobe", "ef", "rerank_dim", "rerank_k")


class SearchKnobs(msgspec.Struct, forbid_unknown_fields=True):
    k: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    search_dim: Optional[Positive] = None
    nprobe: Optional[Positive] = None
    ef: Optional[Annotated[int, msgspec.Meta(ge=1, le=100_000)]] = None
    rerank_dim: Optional[Positive] = None
    rerank_k: Optional[Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]] = None
    target_recall: Optional[Annotated[float, msgspec.Meta(gt=0, le=1)]] = None
    budget_mflops: Optional[Annotated[float, msgspec.Meta(gt=0)]] = None
    # Filtered searches skip the batcher (search_path.answer_search); the collection checks the grammar.
    filter: Optional[dict[str, Any]] = None
    with_payload: bool = False

    def check(self) -> "SearchKnobs":
        """The rules between fields (as SearchRequest's model validator)."""
        if self.budget_mflops is not None and not math.isfinite(self.budget_mflops):
            raise Invalid("budget_mflops: Input should be a finite number")
        if self.target_recall is not None and self.budget_mflops is not None:
            raise Invalid("give target_recall or budget_mflops, not both")
        if self.target_recall is not None or self.budget_mflops is not None:
            knobs = [n for n in _KNOBS if getattr(self, n) is not None]
            if knobs:
                raise Invalid(f"target_recall / budget_mflops choose the search settings; do not also give {knobs}")
        return self

    def knobs(self) -> dict:
        return {n: getattr(self, n) for n in (*_KNOBS, "target_recall", "budget_mflops")}


class SearchBody(SearchKnobs, forbid_unknown_fields=True):
    vector: Optional[Vector] = None
    vectors: Optional[Annotated[list[Vector], msgspec.Meta(min_length=1)]] = None


_decoder = msgspec.json.Decoder(SearchBody)


def decode_json(body: bytes) -> tuple[list[list[float]], SearchKnobs]:
    """(rows, knobs) of a JSON search body; Invalid (422) names the first problem."""
    try:
        req = _decoder.decode(body)
    except msgspec.ValidationError as e:
        raise Invalid(_where(str(e))) from None
    except msgspec.DecodeError as e:
        if b"NaN" in body or b"Infinity" in body:  # what Python's json.dumps writes for them
            raise Invalid("queries contain NaN or infinity (which JSON cannot carry)") from None
        raise Invalid(f"body is not valid JSON: {e}") from None
    if (req.vector is None) == (req.vectors is None):
        raise Invalid("give exactly one of 'vector' (one query) or 'vectors' (a batch)")
    req.check()
    return ([req.vector] if req.vector is not None else req.vectors), req


def decode_query_string(query_string: bytes) -> SearchKnobs:
    """The knobs of an x-npy search, from ``?k=10&nprobe=32...``; Invalid on unknown or bad values."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, strict_parsing=False)
    except ValueError as e:
        raise Invalid(f"bad query string: {e}") from None
    raw = {}
    for key, value in pairs:
        if key in raw:
            raise Invalid(f"query parameter {key!r} given twice")
        raw[key] = value
    if "filter" in raw:  # a JSON object in the query string (URL-encoded)
        try:
            raw["filter"] = json.loads(raw["filter"])
        except ValueError as e:
            raise Invalid(f"query parameters: filter is not JSON ({e})") from None
    try:
        return msgspec.convert(raw, SearchKnobs, strict=False).check()
    except msgspec.ValidationError as e:
        raise Invalid(f"query parameters: {_where(str(e))}") from None


def _where(message: str) -> str:
    """msgspec's ``... - at `$.vector[0]``` as ``vector.0: ...``, like the rest of the service's messages."""
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        return message
    path = path.rstrip("`").removeprefix("$").lstrip(".").replace("[", ".").replace("]", "")
    return f"{path}: {text}" if path else text
