"""Server reflection, `grpc.reflection.v1` and `grpc.reflection.v1alpha`, so `buf curl` and
grpcurl work without proto files (DESIGN §2).

grpcio-reflection 1.85.1 ships only v1alpha (`grpc_reflection.v1alpha`). v1 is the same protocol:
grpc-proto's `grpc/reflection/v1/reflection.proto` declares the same messages with the same field
numbers under another package. So the v1 file is derived from the v1alpha one (for reflection to
describe itself), and the library's servicer answers both: the bytes on the wire are identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA = reflection.SERVICE_NAME
V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"
# A response repeats its request (`original_request`). Past this size the copy is left out: a
# request near the message limit would otherwise make a response over it.
MAX_ECHO_BYTES = 64 * 1024


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileContainingSymbol(V1)
        return  # a newer grpcio-reflection (or another library) already provides it
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = proto.package, "grpc.reflection.v1"
    proto.name, proto.package = _V1_FILE, new
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(f".{old}.", f".{new}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    pool.AddSerializedFile(proto.SerializeToString())


class _ReflectionServicer(reflection.aio.ReflectionServicer):
    async def ServerReflectionInfo(  # type: ignore[override]
        self, request_iterator: AsyncIterable[reflection_pb2.ServerReflectionRequest], context: Any
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        # The stubs declare the library's async generator as a coroutine.
        answers: AsyncIterator[reflection_pb2.ServerReflectionResponse] = super().ServerReflectionInfo(  # type: ignore[assignment]
            request_iterator, context
        )
        async for response in answers:
            if response.original_request.ByteSize() > MAX_ECHO_BYTES:
                response.ClearField("original_request")
            yield response


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serves reflection of `service_names`, health and reflection itself, over v1 and v1alpha."""
    _register_v1_descriptor()
    servicer = _ReflectionServicer([*service_names, V1, V1ALPHA])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(V1, {"ServerReflectionInfo": v1})])
