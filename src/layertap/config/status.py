"""A model's version states from TF Serving's REST status endpoint (`GET /v1/models/NAME`).

Used between the two steps of a label move: step 2 may only be pushed once the new version is AVAILABLE.
Standard library only (no TensorFlow, no gRPC), so it runs on any model-ops machine.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from layertap.errors import ModelNotFoundError, ServerUnavailableError, ServingError

__all__ = ["fetch_version_states"]


def fetch_version_states(rest_url: str, model: str, *, timeout: float = 5.0) -> dict[int, str]:
    """Version -> state (`START`, `LOADING`, `AVAILABLE`, `UNLOADING`, `END`) as the server reports them.

    Args:
        rest_url: the REST base URL, e.g. `http://serving:8501`.
        model: the model name.

    Raises:
        ModelNotFoundError: the server does not know the model (HTTP 404).
        ServerUnavailableError: the server cannot be reached.
        ServingError: any other answer.
    """
    url = f"{rest_url.rstrip('/')}/v1/models/{urllib.parse.quote(model, safe='')}"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ServingError(f"the REST URL must start with http:// or https://; got {rest_url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: Any = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", "replace")[:1024]
        if error.code == 404:
            raise ModelNotFoundError(
                f"the server at {rest_url} does not serve model {model!r}: {detail}",
                code="NOT_FOUND",
                details=detail,
            ) from error
        raise ServingError(f"GET {url} answered HTTP {error.code}: {detail}", details=detail) from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ServerUnavailableError(f"cannot reach {url}: {reason}", code="UNAVAILABLE") from error
    except json.JSONDecodeError as error:
        raise ServingError(f"GET {url} did not answer JSON: {error}") from error
    try:
        return {int(item["version"]): str(item["state"]) for item in body["model_version_status"]}
    except (KeyError, TypeError, ValueError) as error:
        raise ServingError(f"GET {url} answered an unexpected body: {str(body)[:300]}") from error
