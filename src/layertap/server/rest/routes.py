"""Which REST call a method and path name, read as TF Serving reads them (`http_rest_api_util.cc`).

TF Serving matches the raw path case-insensitively against two patterns, POST
`/v1/models/M[/versions/V|/labels/L]:(classify|regress|predict)` and GET
`/v1/models[/M][/versions/V|/labels/L][/metadata]`, percent-decodes the model name and label, and
reads the version as an int64. Anything else under `/v1/` is `Malformed request: METHOD PATH`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from layertap.proto import serving_pb2 as pb
from layertap.server.status import InvalidArgument

__all__ = ["Route", "route"]

_PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Route:
    """A REST call: `call` is "predict", "classify", "regress", "status" or "metadata"."""

    call: str
    spec: pb.ModelSpec

    @property
    def model(self) -> str:
        return self.spec.name


def route(method: str, path: str) -> Route:
    """The call `method path` names.

    Args:
        method: the HTTP method.
        path: the raw request path, without the query string.

    Raises:
        InvalidArgument: TF Serving's `Malformed request: ...`, `Failed to convert version: ... to
            numeric.` or `Missing model name in request.`
    """
    malformed = InvalidArgument(f"Malformed request: {method} {path}")
    pattern = _PREDICTION if method == "POST" else _STATUS if method == "GET" else None
    match = pattern.fullmatch(path) if pattern is not None else None
    if match is None:
        raise malformed
    name, version, label, call = match.groups()
    spec = pb.ModelSpec(name=_decoded(name or "", "model name"))
    if version is not None:
        number = int(version)
        if number > _INT64_MAX:
            raise InvalidArgument(f"Failed to convert version: {version} to numeric.")
        spec.version.value = number
    if label is not None:
        spec.version_label = _decoded(label, "model version label")
    if method == "POST":
        # The pattern is case-insensitive but the dispatch is not: ":Predict" is malformed.
        if call not in ("classify", "regress", "predict"):
            raise malformed
        return Route(call, spec)
    if not spec.name:
        raise InvalidArgument("Missing model name in request.")
    return Route("metadata" if call == "metadata" else "status", spec)


def _decoded(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"Failed to decode {what}:{text}") from None
