"""gRPC server reflection for TF Serving's services, so `grpcurl list/describe` works.

layertap's messages live in package `layertap.serving` (wire-identical to TF Serving's), but its
services must be `tensorflow.serving.*`. A small descriptor file declares those services over
layertap's messages and is added to a private descriptor pool that reflection answers from.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from layertap.proto import methods
from layertap.proto import serving_pb2 as pb

__all__ = ["SERVICE_FILE", "enable_reflection", "service_pool"]

SERVICE_FILE = "layertap/proto/tensorflow_serving_services.proto"

_SERVICES: dict[str, list[tuple[str, str, str]]] = {
    methods.PREDICTION_SERVICE: [
        ("Predict", "PredictRequest", "PredictResponse"),
        ("GetModelMetadata", "GetModelMetadataRequest", "GetModelMetadataResponse"),
    ],
    methods.MODEL_SERVICE: [
        ("GetModelStatus", "GetModelStatusRequest", "GetModelStatusResponse"),
        ("HandleReloadConfigRequest", "ReloadConfigRequest", "ReloadConfigResponse"),
    ],
}


def _add_file(pool: descriptor_pool.DescriptorPool, file: FileDescriptor, added: set[str]) -> None:
    if file.name in added:
        return
    for dependency in file.dependencies:
        _add_file(pool, dependency, added)
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    pool.Add(proto)
    added.add(file.name)


def service_pool(extra_files: tuple[FileDescriptor, ...] = ()) -> descriptor_pool.DescriptorPool:
    """A descriptor pool holding layertap's messages, TF Serving's service definitions over them, and
    `extra_files` (e.g. the health service's)."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    for file in (pb.DESCRIPTOR, *extra_files):
        _add_file(pool, file, added)
    services = descriptor_pb2.FileDescriptorProto(
        name=SERVICE_FILE, package="tensorflow.serving", syntax="proto3", dependency=[pb.DESCRIPTOR.name]
    )
    for full_name, rpcs in _SERVICES.items():
        service = services.service.add(name=full_name.rsplit(".", 1)[1])
        for name, request, response in rpcs:
            service.method.add(
                name=name,
                input_type=f".{pb.DESCRIPTOR.package}.{request}",
                output_type=f".{pb.DESCRIPTOR.package}.{response}",
            )
    pool.Add(services)
    return pool


def enable_reflection(server: grpc.Server, *, health: bool) -> None:
    """Serve grpc.reflection.v1alpha.ServerReflection for TF Serving's services, itself, and health."""
    from grpc_reflection.v1alpha import reflection, reflection_pb2

    files: tuple[FileDescriptor, ...] = (reflection_pb2.DESCRIPTOR,)
    names: tuple[str, ...] = (*_SERVICES, reflection.SERVICE_NAME)
    if health:
        from grpc_health.v1 import health as health_module
        from grpc_health.v1 import health_pb2

        files += (health_pb2.DESCRIPTOR,)
        names += (health_module.SERVICE_NAME,)
    reflection.enable_server_reflection(names, server, pool=service_pool(files))
