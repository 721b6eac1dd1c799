"""Version numbers claimed by a conditional create, held by a lease that a live publisher keeps renewing.

Layout under a model `<base>/<name>/` (TF Serving aspires only integer children, so `_layertap` is
invisible to it; tensorflow_serving/sources/storage_path/file_system_storage_path_source.cc):

    <name>/_layertap/claims/<N>         one small JSON object per version number ever claimed
    <name>/_layertap/staging/<N>/...    the version's files while they are uploaded (see publish.py)
    <name>/<N>/...                      the published version

A claim is created with GCS `ifGenerationMatch=0` / S3 `If-None-Match: *`, so of two publishers that pick
the same N only one succeeds; the other moves on to N+1. Claims are never deleted once anything was written
under `<N>/`, so a number TF Serving may have seen (and failed) is never handed out again: TF Serving does not
retry a version it failed to load while that version stays aspired (core/aspired_versions_manager.cc;
tensorflow/serving#1738).

Telling a dead publisher from a slow one: the claim is a lease. Its owner rewrites it every `lease/4` seconds
(guarded by the token it last wrote, so two writers cannot both believe they hold it). A claim whose state is
not final and whose object the store last wrote more than `lease_seconds` ago (by the store's clock,
compared with the repairer's: keep machine clocks within a few seconds, as NTP does) belongs to a dead
publisher. A repairer takes it over with the same guarded write before touching anything, so a publisher
that was only paused finds its next renewal refused and stops; it cannot overwrite the repair.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from layertap.errors import PublishError, StorageConflictError, StorageError
from layertap.storage.store import ObjectStore

__all__ = [
    "CLAIMS",
    "CONTROL",
    "DEFAULT_LEASE_SECONDS",
    "FINAL_STATES",
    "STAGING",
    "Claim",
    "Lease",
    "new_owner",
    "read_claims",
]

logger = logging.getLogger(__name__)

CONTROL = "_layertap"
CLAIMS = f"{CONTROL}/claims/"
STAGING = f"{CONTROL}/staging/"
DEFAULT_LEASE_SECONDS = 60.0
#: A claim in one of these states is settled: nobody holds a lease on it.
FINAL_STATES = ("published", "abandoned")


def new_owner() -> str:
    """An identity for one publisher: host, process and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Claim:
    """One claim object as read from the store."""

    version: int
    body: dict[str, Any]
    token: str
    updated: datetime

    @property
    def state(self) -> str:
        return str(self.body.get("state", "claimed"))

    @property
    def owner(self) -> str:
        return str(self.body.get("owner", ""))

    def stale(self, now: float | None = None) -> bool:
        """True when the owner stopped renewing: not final, last written more than a lease ago."""
        if self.state in FINAL_STATES:
            return False
        lease = float(self.body.get("lease_seconds", DEFAULT_LEASE_SECONDS))
        now = time.time() if now is None else now
        # S3 reports modification times truncated to the second.
        return now - self.updated.timestamp() > lease + 1


def claim_key(model_prefix: str, version: int) -> str:
    return f"{model_prefix}{CLAIMS}{version}"


def read_claims(store: ObjectStore, model_prefix: str) -> dict[int, Claim]:
    """Every claim of the model, by version (unreadable or vanished ones skipped)."""
    claims: dict[int, Claim] = {}
    for info in store.list_objects(model_prefix + CLAIMS):
        name = info.key[len(model_prefix + CLAIMS) :]
        if not name.isdigit():
            continue
        claim = read_claim(store, model_prefix, int(name))
        if claim is not None:
            claims[claim.version] = claim
    return claims


def read_claim(store: ObjectStore, model_prefix: str, version: int) -> Claim | None:
    key = claim_key(model_prefix, version)
    found = store.read(key)
    if found is None:
        return None
    data, token = found
    try:
        body = json.loads(data)
    except ValueError:
        body = {"state": "claimed", "lease_seconds": DEFAULT_LEASE_SECONDS}
    info = store.stat(key)
    if info is None or info.token != token:  # rewritten between the two requests: read it again later
        return None
    return Claim(version=version, body=body, token=token, updated=info.updated)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True).encode()


@dataclass
class Lease:
    """The claim on one version, held by this process and renewed by a background thread.

    Every write of the claim (renewal, recorded file list, final state) is guarded by the token of the last
    write, under one lock, so renewals and state changes never race each other.
    """

    store: ObjectStore
    model_prefix: str
    version: int
    body: dict[str, Any]
    token: str
    lost: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls, store: ObjectStore, model_prefix: str, version: int, owner: str, lease_seconds: float
    ) -> Lease | None:
        """Claim `version` with a conditional create; None if someone else holds it.

        A create whose response was lost and then retried answers "exists" although it succeeded: the claim's
        owner field tells the two apart.
        """
        body = {
            "version": version,
            "owner": owner,
            "state": "claimed",
            "lease_seconds": lease_seconds,
            "claimed_at": datetime.now(UTC).isoformat(),
        }
        try:
            token = store.create(claim_key(model_prefix, version), _encode(body))
        except StorageConflictError:
            existing = read_claim(store, model_prefix, version)
            if existing is None or existing.owner != owner:
                return None
            token = existing.token
        return cls(store=store, model_prefix=model_prefix, version=version, body=body, token=token)

    @classmethod
    def take_over(cls, store: ObjectStore, model_prefix: str, claim: Claim, owner: str) -> Lease | None:
        """Take a stale claim for repair (guarded by the token read); None if its owner renewed meanwhile."""
        body = {**claim.body, "state": "repairing", "owner": owner, "previous_owner": claim.owner}
        try:
            token = store.replace(claim_key(model_prefix, claim.version), _encode(body), claim.token)
        except StorageConflictError:
            return None
        return cls(store=store, model_prefix=model_prefix, version=claim.version, body=body, token=token)

    def start(self) -> None:
        """Renew the claim every lease/4 seconds until `stop()` or until the claim is taken from us."""
        interval = float(self.body["lease_seconds"]) / 4
        self._thread = threading.Thread(
            target=self._renew, args=(interval,), name="layertap-lease", daemon=True
        )
        self._thread.start()

    def _renew(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.update()
            except PublishError:
                logger.warning("lost the claim on version %d: another process took it over", self.version)
                return
            except StorageError as error:  # a transient outage: the next renewal may get through
                logger.warning("could not renew the claim on version %d: %s", self.version, error)

    def update(self, **fields: Any) -> None:
        """Rewrite the claim (with `fields` changed), guarded by the last token.

        Raises:
            PublishError: the claim was taken over (by a repair that judged this publisher dead).
        """
        with self._lock:
            self.check()
            body = {**self.body, **fields, "renewed_at": datetime.now(UTC).isoformat()}
            try:
                self.token = self.store.replace(
                    claim_key(self.model_prefix, self.version), _encode(body), self.token
                )
            except StorageConflictError as error:
                self.lost.set()
                raise self._taken_over() from error
            self.body = body

    def check(self) -> None:
        """Raise if the claim was taken over (by a repair that judged this publisher dead)."""
        if self.lost.is_set():
            raise self._taken_over()

    def _taken_over(self) -> PublishError:
        return PublishError(
            f"version {self.version}: the claim was taken over by another process (a repair judged this "
            f"publisher dead after {self.body['lease_seconds']} s without renewal); stopping"
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def finish(self, state: str, **fields: Any) -> None:
        """Stop renewing and write the final state."""
        self.stop()
        self.update(state=state, **fields)

    def release(self) -> None:
        """Give the number back: only when nothing was ever written under `<N>/`."""
        self.stop()
        with self._lock:
            self.store.delete(claim_key(self.model_prefix, self.version), self.token)
