"""gRPC server reflection for TF Serving's services, so `grpcurl list/describe` works.

layertap's messages live in package `layertap.serving` (wire-identical to TF Serving's), but its
services must be `tensorflow.serving.*`. A small descriptor file declares those services over
layertap's messages and is added to a private descriptor pool that reflection answers from.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

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


def service_pool() -> descriptor_pool.DescriptorPool:
    """A descriptor pool holding layertap's messages and TF Serving's service definitions over them."""
    pool = descriptor_pool.DescriptorPool()
    for file in (*pb.DESCRIPTOR.dependencies, pb.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
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


def enable_reflection(server: grpc.Server, extra_services: tuple[str, ...] = ()) -> None:
    """Serve grpc.reflection.v1alpha.ServerReflection listing TF Serving's services and `extra_services`."""
    from grpc_reflection.v1alpha import reflection

    names = (*_SERVICES, *extra_services, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server, pool=service_pool())
