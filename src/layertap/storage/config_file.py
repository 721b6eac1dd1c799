"""A models.config that lives on gs://: read with its generation, written back only if nobody wrote meanwhile.

TF Serving reads `--model_config_file=gs://...` through its GCS filesystem and re-reads it every
`--model_config_file_poll_wait_seconds`, so a pipeline can keep the config beside the versions. Two editors
(two pipelines moving labels) must never lose each other's change: each edit reads the object and its
generation, applies the change to what it read, and writes the result with `ifGenerationMatch=<generation>`
(GCS) or `If-Match: <ETag>` (S3). The second writer's precondition fails; it is told so, with nothing written,
and running the command again applies its change to the new content. A new config is created with the
conditional create (`ifGenerationMatch=0`), so two editors cannot both create it either.
"""

from __future__ import annotations

from dataclasses import dataclass

from layertap.errors import StorageConflictError
from layertap.storage.store import ObjectStore, open_store
from layertap.storage.uri import ObjectLocation

__all__ = ["RemoteText"]


@dataclass
class RemoteText:
    """One text object (a models.config) read with its token, so that writing it back is guarded."""

    location: ObjectLocation
    store: ObjectStore
    text: str | None = None  # None: the object does not exist (yet)
    token: str | None = None

    @classmethod
    def read(cls, location: ObjectLocation, store: ObjectStore | None = None) -> RemoteText:
        store = store if store is not None else open_store(location)
        found = store.read(location.key)
        if found is None:
            return cls(location, store)
        data, token = found
        return cls(location, store, data.decode("utf-8"), token)

    def write(self, text: str) -> str:
        """Write `text` if the object is still what `read` saw (absent, or at the same generation).

        Raises:
            StorageConflictError: another editor wrote it meanwhile; nothing was written.
        """
        try:
            if self.token is None:
                token = self.store.create(self.location.key, text.encode("utf-8"))
            else:
                token = self.store.replace(self.location.key, text.encode("utf-8"), self.token)
        except StorageConflictError as error:
            raise StorageConflictError(
                f"{self.location} was changed by another editor after this command read it; nothing was "
                "written. Run the command again to apply the change to the new content"
            ) from error
        self.text, self.token = text, token
        return token
