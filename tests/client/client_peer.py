"""An independent TF Serving peer for the client tests (the fixtures are in conftest.py).

A real SavedModel (a tf.Module with layer, group, multi-input, fixed-shape, multi-tensor and
per-dtype echo signatures) is served by a servicer built on the official `tensorflow_serving.apis`
stubs, on 127.0.0.1 over real gRPC. The servicer answers like TF Serving (the status codes and messages
tests/server/test_tf_serving_parity.py pins), in typed fields or `tensor_content`, and can inject faults
and delays.
"""

from __future__ import annotations

import copy
import datetime
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

MODEL = "toy"
W1 = np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-1.0, 0.0, 1.0], [2.0, 1.0, 0.0]], dtype=np.float32)
B1 = np.array([0.1, -0.2, 0.3], dtype=np.float32)
W2 = np.array([[1.0, 0.0], [-1.0, 1.0], [0.5, 2.0]], dtype=np.float32)
ECHO_DTYPES = [
    "float32",
    "float64",
    "float16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
    "complex64",
    "complex128",
    "string",
]


def dense_1(x: np.ndarray) -> np.ndarray:
    """The model's first layer, computed with numpy for exact comparisons."""
    return np.maximum(x.astype(np.float32) @ W1 + B1, 0).astype(np.float32)


def dense_2(x: np.ndarray) -> np.ndarray:
    return (dense_1(x) @ W2).astype(np.float32)


def scores(x: np.ndarray) -> np.ndarray:
    logits = dense_2(x).astype(np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def build_saved_model(path: Path) -> Path:
    """The toy SavedModel, written to `path` (its version directory)."""
    import tensorflow as tf

    class Toy(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = tf.Variable(W1)
            self.b1 = tf.Variable(B1)
            self.w2 = tf.Variable(W2)

        def d1(self, image: tf.Tensor) -> tf.Tensor:
            return tf.nn.relu(tf.matmul(image, self.w1) + self.b1)

        def d2(self, image: tf.Tensor) -> tf.Tensor:
            return tf.matmul(self.d1(image), self.w2)

    toy = Toy()
    image = tf.TensorSpec([None, 4], tf.float32, name="image")
    signatures: dict[str, Any] = {
        "dense_1": tf.function(lambda image: {"dense_1": toy.d1(image)}, input_signature=[image]),
        "dense_2": tf.function(lambda image: {"dense_2": toy.d2(image)}, input_signature=[image]),
        "serving_default": tf.function(lambda image: {"dense_2": toy.d2(image)}, input_signature=[image]),
        "features": tf.function(
            lambda image: {"dense_1": toy.d1(image), "dense_2": toy.d2(image)}, input_signature=[image]
        ),
        "heads": tf.function(
            lambda image: {
                "dense_1": toy.d1(image),
                "scores": tf.nn.softmax(tf.cast(toy.d2(image), tf.float64)),
            },
            input_signature=[image],
        ),
        # A layer with two output tensors: the exporter names them "<layer>:0" and "<layer>:1".
        "split": tf.function(
            lambda image: {"split:0": toy.d1(image), "split:1": toy.d2(image)}, input_signature=[image]
        ),
        "pair": tf.function(
            lambda a, b: {"pair": a + b},
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None, 2], tf.float32, name="b"),
            ],
        ),
        "fixed": tf.function(
            lambda image: {"fixed": toy.d1(image)},
            input_signature=[tf.TensorSpec([2, 4], tf.float32, name="image")],
        ),
    }
    for name in ECHO_DTYPES:
        spec = tf.TensorSpec(None, tf.dtypes.as_dtype(name), name="x")
        signatures[f"echo_{name}"] = tf.function(
            lambda x, key=f"echo_{name}": {key: tf.identity(x)}, input_signature=[spec]
        )
    tf.saved_model.save(toy, str(path), signatures=signatures)
    return path


@dataclass
class Fault:
    code: grpc.StatusCode
    message: str
    remaining: int
    methods: tuple[str, ...]


@dataclass
class PeerSettings:
    """What the peer does; tests change it, the `peer` fixture resets it."""

    tensor_content: bool = False
    compress_constants: bool = False
    delay: float = 0.0
    loading_polls: int = 0
    faults: list[Fault] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    requests: list[Any] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0


class Peer:
    """The servicer: TF Serving's PredictionService and ModelService for one model, version 1."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.loaded = tf.saved_model.load(str(path))
        saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = saved.meta_graphs[0].signature_def
        self.settings = PeerSettings()
        self.lock = threading.Lock()

    def twin(self) -> Peer:
        """Another servicer over the same loaded model, with its own settings and counters."""
        other = copy.copy(self)
        other.settings = PeerSettings()
        other.lock = threading.Lock()
        return other

    def fail_next(
        self, code: grpc.StatusCode, message: str, times: int = 1, methods: tuple[str, ...] = ("Predict",)
    ) -> None:
        self.settings.faults.append(Fault(code, message, times, methods))

    def count(self, method: str) -> int:
        return self.settings.calls.get(method, 0)

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.settings.calls[method] = self.settings.calls.get(method, 0) + 1
            for fault in self.settings.faults:
                if fault.remaining > 0 and method in fault.methods:
                    fault.remaining -= 1
                    context.abort(fault.code, fault.message)

    def _version(self, spec: Any, context: grpc.ServicerContext) -> int:
        if not spec.name:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label" and spec.version_label != "stable":
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {spec.version_label}"
            )
        wanted = spec.version.value if choice == "version" else None
        if spec.name != MODEL or wanted not in (None, 1):
            request = f"Specific({spec.name}, {wanted})" if wanted is not None else f"Latest({spec.name})"
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}")
        return 1

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 (gRPC's name)
        self._enter("Predict", context)
        self.settings.requests.append(request)
        self.settings.metadata.append({key: str(value) for key, value in context.invocation_metadata()})
        settings = self.settings
        with self.lock:
            settings.in_flight += 1
            settings.most_in_flight = max(settings.most_in_flight, settings.in_flight)
        try:
            if settings.delay:
                time.sleep(settings.delay)
            return self._predict(request, context)
        finally:
            with self.lock:
                settings.in_flight -= 1

    def _predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        version = self._version(request.model_spec, context)
        key = request.model_spec.signature_name or "serving_default"
        if key not in self.signature_defs or key.startswith("__"):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        definition = self.signature_defs[key]
        sent, expected = set(request.inputs), set(definition.inputs)
        if sent != expected:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(expected)} len({sorted(sent)}) != "
                f"len({sorted(expected)}). Sent extra: {sorted(sent - expected)}. Missing but required: "
                f"{sorted(expected - sent)}.",
            )
        seen: set[str] = set()
        for alias in request.output_filter:
            if alias not in definition.outputs:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(definition.outputs))}}}.",
                )
            if alias in seen:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        try:
            arrays = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
            outputs = self.loaded.signatures[key](**{alias: tf.constant(a) for alias, a in arrays.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0][:1024])
        response = predict_pb2.PredictResponse()
        response.model_spec.name = MODEL
        response.model_spec.version.value = version
        response.model_spec.signature_name = key
        for alias, tensor in outputs.items():
            if request.output_filter and alias not in request.output_filter:
                continue
            response.outputs[alias].CopyFrom(self.encode(tensor.numpy()))
        return response

    def encode(self, array: np.ndarray) -> Any:
        """An official TensorProto: TF Serving's typed fields by default, else tensor_content."""
        import tensorflow as tf

        if self.settings.tensor_content:
            return tf.make_tensor_proto(array)
        proto = tf.make_tensor_proto(np.zeros((), dtype=array.dtype) if array.dtype != object else b"")
        proto.Clear()
        proto.dtype = tf.dtypes.as_dtype(array.dtype).as_datatype_enum
        for size in array.shape:
            proto.tensor_shape.dim.add(size=size)
        flat = array.reshape(-1)
        if self.settings.compress_constants and flat.size > 1 and (flat == flat[0]).all():
            flat = flat[:1]  # TF's rule: one value fills every element
        kind = array.dtype
        if kind == np.float32:
            proto.float_val.extend(flat.tolist())
        elif kind == np.float64:
            proto.double_val.extend(flat.tolist())
        elif kind == np.float16:
            proto.half_val.extend(flat.view(np.uint16).tolist())
        elif kind in (np.int8, np.int16, np.int32, np.uint8, np.uint16):
            proto.int_val.extend(flat.tolist())
        elif kind == np.int64:
            proto.int64_val.extend(flat.tolist())
        elif kind == np.uint32:
            proto.uint32_val.extend(flat.tolist())
        elif kind == np.uint64:
            proto.uint64_val.extend(flat.tolist())
        elif kind == np.bool_:
            proto.bool_val.extend(flat.tolist())
        elif kind == np.complex64:
            proto.scomplex_val.extend(flat.view(np.float32).tolist())
        elif kind == np.complex128:
            proto.dcomplex_val.extend(flat.view(np.float64).tolist())
        else:
            proto.string_val.extend(flat.tolist())
        return proto

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        from tensorflow_serving.apis import get_model_metadata_pb2

        self._enter("GetModelMetadata", context)
        version = self._version(request.model_spec, context)
        if "signature_def" not in request.metadata_field:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = MODEL
        response.model_spec.version.value = version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(definition)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        from tensorflow_serving.apis import get_model_status_pb2

        self._enter("GetModelStatus", context)
        spec = request.model_spec
        if spec.name != MODEL:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}")
        if spec.HasField("version") and spec.version.value != 1:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"Could not find version {spec.version.value} of model {MODEL}"
            )
        response = get_model_status_pb2.GetModelStatusResponse()
        entry = response.model_version_status.add(version=1)
        with self.lock:
            loading = self.settings.loading_polls > 0
            self.settings.loading_polls -= 1
        entry.state = (
            get_model_status_pb2.ModelVersionStatus.LOADING
            if loading
            else get_model_status_pb2.ModelVersionStatus.AVAILABLE
        )
        return response

    def _unimplemented(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served by the test peer")

    Classify = Regress = MultiInference = HandleReloadConfigRequest = _unimplemented


def start_server(peer: Peer, port: int = 0, credentials: Any = None) -> tuple[grpc.Server, int]:
    """A real gRPC server for the peer on 127.0.0.1; returns it and its port."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(peer, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(peer, server)
    address = f"127.0.0.1:{port}"
    bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    server.start()
    return server, bound


@dataclass
class Certificates:
    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes


def make_certificates() -> Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def issue(
        name: str, issuer_key: Any, issuer: Any, key: Any, *, ca: bool, usage: Any = None, sans: Any = None
    ) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if sans is not None:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    import ipaddress

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = issue("layertap test CA", ca_key, None, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = issue(
        "localhost",
        ca_key,
        ca_cert.subject,
        server_key,
        ca=False,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = issue(
        "client", ca_key, ca_cert.subject, client_key, ca=False, usage=ExtendedKeyUsageOID.CLIENT_AUTH
    )
    pem = serialization.Encoding.PEM
    return Certificates(
        ca=ca_cert.public_bytes(pem),
        server_cert=server_cert.public_bytes(pem),
        server_key=key_pem(server_key),
        client_cert=client_cert.public_bytes(pem),
        client_key=key_pem(client_key),
    )
