"""Protobuf messages of the service, built at import from descriptors matching ``aisle_serving.proto``.

No ``protoc`` is needed: the file descriptor is assembled with ``descriptor_pb2`` and the
classes come from the runtime's message factory.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["PROTO_MEDIA_TYPE", "BatchRecommendationsPB", "RecommendRequestPB", "RecommendationsPB", "ScoredItemPB"]

#: The media type of protobuf bodies.
PROTO_MEDIA_TYPE = "application/x-protobuf"

_F = descriptor_pb2.FieldDescriptorProto


def _field(msg: Any, name: str, number: int, ftype: int, *, repeated: bool = False, type_name: str = "",
           optional: bool = False) -> None:
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if optional:  # proto3 `optional`: a synthetic oneof
        f.proto3_optional = True
        f.oneof_index = len(msg.oneof_decl)
        msg.oneof_decl.add(name=f"_{name}")


def _build() -> descriptor_pool.DescriptorPool:
    fd = descriptor_pb2.FileDescriptorProto(name="aisle_serving.proto", package="aisle.serving.v1", syntax="proto3")
    item = fd.message_type.add(name="ScoredItem")
    _field(item, "item_id", 1, _F.TYPE_STRING)
    _field(item, "score", 2, _F.TYPE_DOUBLE)
    _field(item, "source", 3, _F.TYPE_STRING)
    _field(item, "position", 4, _F.TYPE_INT32)
    req = fd.message_type.add(name="RecommendRequest")
    for i, name in enumerate(("user_id", None, "page", "category", "device", "segment", "filter_category"), start=1):
        if name is None:
            _field(req, "k", 2, _F.TYPE_INT32)
        else:
            _field(req, name, i, _F.TYPE_STRING)
    _field(req, "min_price", 8, _F.TYPE_DOUBLE, optional=True)
    _field(req, "max_price", 9, _F.TYPE_DOUBLE, optional=True)
    _field(req, "exclude_items", 10, _F.TYPE_STRING, repeated=True)
    recs = fd.message_type.add(name="Recommendations")
    _field(recs, "request_id", 1, _F.TYPE_STRING)
    _field(recs, "user_id", 2, _F.TYPE_STRING)
    _field(recs, "model_version", 3, _F.TYPE_STRING)
    _field(recs, "items", 4, _F.TYPE_MESSAGE, repeated=True, type_name=".aisle.serving.v1.ScoredItem")
    _field(recs, "fallback", 5, _F.TYPE_STRING)
    _field(recs, "mode", 6, _F.TYPE_STRING)
    _field(recs, "cache", 7, _F.TYPE_STRING)
    batch = fd.message_type.add(name="BatchRecommendations")
    _field(batch, "results", 1, _F.TYPE_MESSAGE, repeated=True, type_name=".aisle.serving.v1.Recommendations")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return pool


_POOL = _build()


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"aisle.serving.v1.{name}"))


ScoredItemPB: Any = _cls("ScoredItem")
RecommendRequestPB: Any = _cls("RecommendRequest")
RecommendationsPB: Any = _cls("Recommendations")
BatchRecommendationsPB: Any = _cls("BatchRecommendations")
