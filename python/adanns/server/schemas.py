"""Request and response bodies (pydantic). Strict types: a string where a number belongs is a 422,
not a silent conversion."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from adanns import kinds as registry

Metric = Literal["ip", "l2", "cosine"]
Kind = Literal[tuple(k.name for k in registry.servable())]
Id = Annotated[StrictInt, Field(ge=0, lt=2**63)]
Vector = Annotated[list[float], Field(min_length=1)]
FieldType = Literal["keyword", "int", "float", "bool"]
FILTER_DOC = ("only vectors whose attributes match this filter (Qdrant's grammar): {\"must\": [...], \"should\": "
              "[...], \"must_not\": [...]} nested freely, of {\"key\": f, \"match\": {\"value\": v}}, "
              "{\"key\": f, \"match\": {\"any\": [...]}}, {\"key\": f, \"range\": {\"gte\": x, "
              "\"lt\": y}} (gt/gte/lt/lte) and {\"has_id\": [...]}; {} matches every vector. Unknown fields, "
              "values of the wrong type and malformed objects are a 422 naming the place")


def _default_metric(kind) -> str:
    try:
        return registry.get(kind).default_metric
    except KeyError:  # the kind itself is reported as invalid
        return "ip"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class IndexSpec(_Body):
    dim: Annotated[StrictInt, Field(ge=1, le=65536)]
    kind: Kind = "ivf"
    metric: Metric = Field(default_factory=lambda spec: _default_metric(spec.get("kind", "ivf")),
                           description="default: cosine where the kind supports it (" +
                                       ", ".join(k.name for k in registry.servable() if k.default_metric == "cosine") +
                                       "), else ip")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="; ".join(f"{k.name}: {', '.join(k.params) or 'none'}"
                                                         for k in registry.servable()))
    attributes: dict[str, FieldType] = Field(
        default_factory=dict, description="attribute fields declared now (name -> keyword, int, float or bool); "
                                          "fields not declared get their type from the first values written")


State = Literal["ready", "read-only", "failed"]


class IndexInfo(BaseModel):
    name: str
    state: State = Field(description="ready; read-only (writes answer 503 until a restart); failed (not "
                                     "loaded: every route but this one and DELETE answers 503, see reason)")
    reason: Optional[str] = Field(None, description="why the index is read-only or failed")
    dim: Optional[int] = None
    metric: Optional[str] = None
    kind: Optional[str] = None
    params: Optional[dict[str, Any]] = None
    count: Optional[int] = Field(None, description="vectors held (null for a failed index)")
    trained: Optional[bool] = None
    bytes: Optional[int] = None
    attributes: Optional[dict[str, str]] = Field(None, description="attribute fields and their types, declared "
                                                                   "or inferred (null: the kind stores none)")


class IndexState(BaseModel):
    state: State
    reason: Optional[str] = None


class IndexList(BaseModel):
    indexes: list[str]
    states: dict[str, IndexState] = Field(description="name -> state and reason, for every index")


class Upsert(_Body):
    ids: Optional[Annotated[list[Id], Field(min_length=1)]] = Field(
        None, description="default: consecutive ids after the largest id written so far (returned in the ack)")
    vectors: Annotated[list[Vector], Field(min_length=1)]
    attributes: Optional[dict[str, list[Any]]] = Field(
        None, description="attributes as columns: field -> a value per vector (null: none); keyword values are "
                          "a string or a list of strings. The upsert replaces the attributes of its ids")
    payload: Optional[list[Optional[dict[str, Any]]]] = Field(
        None, description="attributes per vector: an object of field -> value (or null), instead of 'attributes'")

    @model_validator(mode="after")
    def _one_form_of_attributes(self):
        if self.attributes is not None and self.payload is not None:
            raise ValueError("give the attributes either as 'attributes' (columns) or as 'payload' (per vector), "
                             "not both")
        return self


class Attributes(_Body):
    """What may follow the arrays of an application/x-npy upsert, as a JSON object."""
    attributes: Optional[dict[str, list[Any]]] = None
    payload: Optional[list[Optional[dict[str, Any]]]] = None

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.attributes is None) == (self.payload is None):
            raise ValueError("the JSON after the arrays must hold exactly one of 'attributes' or 'payload'")
        return self


class VectorPayload(BaseModel):
    id: int
    payload: Optional[dict[str, Any]] = Field(description="the vector's attributes (null: the kind stores none)")


class Removal(_Body):
    ids: Annotated[list[Id], Field(min_length=1)]


class WriteAck(BaseModel):
    count: int = Field(description="vectors written or removed by this request")
    total: int = Field(description="vectors in the index afterwards")
    ids: Optional[list[int]] = Field(None, description="the ids assigned, when an upsert gave none")


class SearchRequest(_Body):
    vector: Optional[Vector] = None
    vectors: Optional[Annotated[list[Vector], Field(min_length=1)]] = None
    k: Annotated[StrictInt, Field(ge=1, le=10_000)] = 10
    search_dim: Optional[Annotated[StrictInt, Field(ge=1)]] = None
    nprobe: Optional[Annotated[StrictInt, Field(ge=1)]] = None
    ef: Optional[Annotated[StrictInt, Field(ge=1, le=100_000)]] = Field(None, description="graph: beam width")
    rerank_dim: Optional[Annotated[StrictInt, Field(ge=1)]] = None
    rerank_k: Optional[Annotated[StrictInt, Field(ge=1, le=1_000_000)]] = None
    target_recall: Optional[Annotated[float, Field(gt=0, le=1)]] = Field(
        None, description="the cheapest tuned setting predicted to reach this recall@k (needs POST .../tune)")
    budget_mflops: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        None, description="the most accurate tuned setting costing at most this many MFLOPs per query")
    filter: Optional[dict[str, Any]] = Field(None, description=FILTER_DOC)
    with_payload: StrictBool = Field(False, description="return the attributes of every hit (in 'payloads')")

    @model_validator(mode="after")
    def _one_of_vector_or_vectors(self):
        if (self.vector is None) == (self.vectors is None):
            raise ValueError("give exactly one of 'vector' (one query) or 'vectors' (a batch)")
        if self.target_recall is not None and self.budget_mflops is not None:
            raise ValueError("give target_recall or budget_mflops, not both")
        if self.target_recall is not None or self.budget_mflops is not None:
            knobs = [n for n in ("search_dim", "nprobe", "ef", "rerank_dim", "rerank_k") if getattr(self, n) is not None]
            if knobs:
                raise ValueError(f"target_recall / budget_mflops choose the search settings; do not also give {knobs}")
        return self


class TuneRequest(_Body):
    vectors: Annotated[list[Vector], Field(min_length=1, description="sample queries (not the indexed vectors)")]
    k: Annotated[StrictInt, Field(ge=1, le=10_000)] = 10
    sample: Optional[Annotated[StrictInt, Field(ge=1)]] = None
    seed: Annotated[StrictInt, Field(ge=0)] = 0


class FrontierPoint(BaseModel):
    params: dict[str, Any]
    recall: float
    recall_lcb: float
    mflops: float


class TuneResponse(BaseModel):
    k: int
    queries: int
    points: list[FrontierPoint]


class Hits(BaseModel):
    ids: list[int]
    scores: list[Optional[float]] = Field(description="null where there is no hit (id -1)")
    payloads: Optional[list[Optional[dict[str, Any]]]] = Field(
        None, description="with_payload: the attributes of each hit (null where there is no hit)")


class SearchResponse(BaseModel):
    results: list[Hits]
    mflops: list[float]


class Error(BaseModel):
    detail: Any
