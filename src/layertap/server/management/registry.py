"""The one registry of what serves: the AVAILABLE versions of each model, and their version labels.

The lifecycle publishes a version here once it is AVAILABLE, withdraws it before unloading it, and
keeps the labels here (nowhere else); requests only ever read this table. A request holds its
servable (`Servable.in_use`) until it is done, so an unload waits for it instead of failing it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from layertap.proto import serving_pb2 as pb
from layertap.server.runtime.servable import Servable
from layertap.server.status import InvalidArgument, NotFound

__all__ = ["Registry"]


class Registry:
    """Thread-safe map from (model, version or label) to the servable that answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[str, dict[int, Servable]] = {}
        self._labels: dict[str, dict[str, int]] = {}

    def publish(self, servable: Servable) -> None:
        """`servable` is AVAILABLE: requests may use it from now on."""
        with self._lock:
            self._serving.setdefault(servable.name, {})[servable.version] = servable

    def withdraw(self, name: str, version: int) -> Servable | None:
        """No new request gets this version; returns its servable (to close) if it was published."""
        with self._lock:
            versions = self._serving.get(name, {})
            servable = versions.pop(version, None)
            if not versions:
                self._serving.pop(name, None)
            return servable

    def set_labels(self, labels: Mapping[str, Mapping[str, int]]) -> None:
        """Replace every model's version labels (label -> version)."""
        with self._lock:
            self._labels = {name: dict(by_label) for name, by_label in labels.items()}

    def labels(self, name: str) -> dict[str, int]:
        """The labels of one model."""
        with self._lock:
            return dict(self._labels.get(name, {}))

    @contextmanager
    def servable(self, spec: pb.ModelSpec) -> Iterator[Servable]:
        """The servable a request's ModelSpec names, held for the duration of the request.

        Raises:
            InvalidArgument: no name, or an unknown label.
            NotFound: the model or version is not AVAILABLE (TF Serving's `Servable not found for
                request: Latest(m)` / `Specific(m, 3)`).
        """
        if not spec.name:
            raise InvalidArgument("ModelSpec has no name specified.")
        choice = spec.WhichOneof("version_choice")
        with self._lock:
            if choice == "version_label":
                version: int | None = self._labels.get(spec.name, {}).get(spec.version_label)
                if version is None:
                    raise InvalidArgument(f"Unrecognized servable version label: {spec.version_label}")
                wanted = f"Specific({spec.name}, {version})"
            elif choice == "version":
                version = spec.version.value
                wanted = f"Specific({spec.name}, {version})"
            else:
                version = None
                wanted = f"Latest({spec.name})"
            versions = self._serving.get(spec.name, {})
            if version is None and versions:
                version = max(versions)
            chosen = versions.get(version) if version is not None else None
            if chosen is None:
                raise NotFound(f"Servable not found for request: {wanted}")
            # Entered under the lock, so a withdraw-then-close cannot slip in between.
            holder = chosen.in_use()
            held = holder.__enter__()
        try:
            yield held
        finally:
            holder.__exit__(None, None, None)
