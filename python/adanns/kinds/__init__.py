"""The index kinds, one module each (a shared base for the float-vector kinds in base.py), and the table
that `load()`, the service and `adanns bench` read (registry.py). Each module registers its kind when
imported, in the order below: the order the service and `adanns bench` list them, and the order kinds
sharing a native class are asked to read a file (a binarized index before a plain code index)."""

# isort: off
from . import flat, ivf, opq, ivfopq, binarized, codes, graph  # noqa: F401  (registration, in this order)
# isort: on
from .binarized import BinarizedIndex
from .flat import FlatIndex
from .graph import GraphIndex
from .ivf import IVFIndex
from .ivfopq import IVFOPQIndex
from .opq import OPQIndex
from .registry import Kind, Param, get, kind_of, kinds, load, resolve, servable
from .result import SearchResult

__all__ = ["BinarizedIndex", "FlatIndex", "GraphIndex", "IVFIndex", "IVFOPQIndex", "Kind", "OPQIndex", "Param",
           "SearchResult", "get", "kind_of", "kinds", "load", "resolve", "servable"]
