"""The plain code index (BinaryIndex, binary.py: packed codes, Hamming search) as a loadable kind. It holds
codes, not float vectors, so the service cannot serve it: the service's kind "binary" learns its own
binarizer (binarized.py)."""

from __future__ import annotations

from .. import _core
from ..binary import BinaryIndex
from .registry import Kind, register

register(Kind(
    name="codes", cls=BinaryIndex, default_metric="ip", native=_core.BinaryIndex, from_native=BinaryIndex._wrap, servable=False,
    not_servable_reason="a BinaryIndex file holds codes only and cannot be served (the service takes float "
                        "vectors): create a kind 'binary' index over REST, which learns its own binarizer",
))
