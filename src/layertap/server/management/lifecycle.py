"""The lifecycle of the model versions `layertap serve` holds, with TF Serving's rules.

Each version moves START -> LOADING -> AVAILABLE -> UNLOADING -> END (or LOADING -> END with the load
error). The poller compares each model's base path with its version policy: aspired versions are
loaded (newest first, warmup included, retried `--max_num_load_retries` times) before versions that are
no longer aspired are unloaded, and a version is only unloaded when another one is AVAILABLE, so a swap
never leaves the model unservable and a broken new version leaves the previous one serving. A config
(re)load replaces the whole model set; version labels are checked against what is AVAILABLE at that
moment, before new models load. What is AVAILABLE, and the labels, are published to the `Registry`,
which requests read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from layertap.config.models import describe_policy
from layertap.config.repository import aspired_versions
from layertap.errors import ConfigError, LayertapError, ServerError
from layertap.proto import serving_pb2 as pb
from layertap.server.dataplane import metrics
from layertap.server.filesystem import BasePathError, Location, version_paths
from layertap.server.flags import ServerOptions
from layertap.server.management.loader import Loader, saved_model_loader
from layertap.server.management.problems import PollProblems
from layertap.server.management.registry import Registry
from layertap.server.runtime.servable import Servable, import_tensorflow
from layertap.server.runtime.session import serving_error_from_tf
from layertap.server.status import FailedPrecondition, InvalidArgument, NotFound, StatusError

__all__ = ["Lifecycle", "StoppedWhileLoadingError", "VersionRecord", "single_model_config"]

logger = logging.getLogger(__name__)

State = pb.ModelVersionStatus.State


@dataclass
class VersionRecord:
    """What the server knows about one version of one model."""

    version: int
    path: Location
    state: int = pb.ModelVersionStatus.START
    error: StatusError | None = None
    servable: Servable | None = None


@dataclass
class _Model:
    config: pb.ModelConfig
    versions: dict[int, VersionRecord] = field(default_factory=dict)
    removed: bool = False


def single_model_config(name: str, base_path: str) -> pb.ModelServerConfig:
    """The config `--model_name` + `--model_base_path` stand for: one model, latest version."""
    config = pb.ModelServerConfig()
    entry = config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
    entry.model_version_policy.latest.num_versions = 1
    return config


class StoppedWhileLoadingError(ServerError):
    """The server was asked to stop (SIGTERM, SIGINT) before every model had a version serving."""


class Lifecycle:
    """Loads and unloads model versions as the config and the base paths say; thread-safe.

    Args:
        options: the server's flags (poll intervals, retries, label rules).
        registry: where AVAILABLE versions and labels are published for requests (labels live only there).
        loader: how one version is loaded (`saved_model_loader` by default); tests count or fail loads.
        stopping: set when the server is asked to stop; loading, retrying and polling watch it.
    """

    def __init__(
        self,
        options: ServerOptions,
        registry: Registry,
        loader: Loader | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self._options = options
        self._registry = registry
        self._loader = loader or saved_model_loader(options)
        self._models: dict[str, _Model] = {}
        self._config: pb.ModelServerConfig | None = None
        # _lock guards the maps and is held only briefly; _work serialises polls and reloads, which
        # load models and so take long.
        self._lock = threading.RLock()
        self._work = threading.Lock()
        self._stop = stopping or threading.Event()
        self._threads: list[threading.Thread] = []
        self._problems = PollProblems(logger)

    # ------------------------------------------------------------------ configuration

    def start(self, config: pb.ModelServerConfig) -> None:
        """Apply the first config and block until every model has a version AVAILABLE.

        As TF Serving does, waits (polling) while a base path holds no version yet, and fails when a
        model's every aspired version failed to load.

        Raises:
            ServerError: the config was refused, or a model could not be loaded.
            StoppedWhileLoadingError: the stop was requested before every model served.
        """
        seconds = import_tensorflow()
        if seconds:
            logger.info("Imported TensorFlow in %.1f s", seconds)
        try:
            self.reload(config, wait=False)
        except StatusError as error:
            raise ServerError(f"could not apply the model config: {error.message}") from None
        while not self._stop.is_set():
            self.poll()
            if self._stop.is_set():
                # A load that the stop cut short is not a load failure.
                break
            waiting = self._models_without_version()
            if not waiting:
                break
            if self._options.file_system_poll_wait_seconds < 0:
                raise ServerError(f"no version found for {', '.join(waiting)} and polling is disabled")
            self._stop.wait(max(1, self._options.file_system_poll_wait_seconds))
        if self._stop.is_set():
            raise StoppedWhileLoadingError("stopped while loading models, before serving")
        if self._options.file_system_poll_wait_seconds > 0:
            self._spawn("version-poller", self._poll_loop)

    def watch_config_file(self, path: str, read: Callable[[str], pb.ModelServerConfig]) -> None:
        """Re-read the config file every `--model_config_file_poll_wait_seconds` and apply changes."""
        interval = self._options.model_config_file_poll_wait_seconds
        if interval <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload(read(path))
                except (LayertapError, OSError) as error:
                    logger.error("not applying %s: %s", path, error)

        self._spawn("config-poller", loop)

    def reload(self, config: pb.ModelServerConfig, *, wait: bool = True) -> None:
        """Replace the whole model set with `config` (HandleReloadConfigRequest, config file polls).

        Models left out are unloaded; new ones are loaded before this returns when `wait`. Labels are
        checked against what is AVAILABLE now.

        Raises:
            InvalidArgument: the config is invalid.
            FailedPrecondition: a label names a version that is not AVAILABLE.
        """
        if config.WhichOneof("config") != "model_config_list":
            raise InvalidArgument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        self._validate(config)
        with self._work:
            if config == self._config:
                # TF Serving accepts an identical config as a no-op.
                return
            labels = self._checked_labels(config)
            entries = {entry.name: entry for entry in config.model_config_list.config}
            with self._lock:
                for name, model in self._models.items():
                    model.removed = name not in entries
                for name, entry in entries.items():
                    current = self._models.get(name)
                    if current is None or current.removed:
                        logger.info(
                            "Adding model %s from %s with version policy %s",
                            name,
                            entry.base_path,
                            describe_policy(entry.model_version_policy),
                        )
                        self._models[name] = _Model(config=entry)
                    else:
                        current.config = entry
                self._registry.set_labels(labels)
                self._config = pb.ModelServerConfig()
                self._config.CopyFrom(config)
            for name in [name for name, model in self._models.items() if model.removed]:
                self._unload_all(name)
        if wait:
            self.poll()

    def _validate(self, config: pb.ModelServerConfig) -> None:
        from layertap.config.models import format_model_server_config

        try:
            format_model_server_config(config)
        except ConfigError as error:
            raise InvalidArgument(str(error)) from None

    def _checked_labels(self, config: pb.ModelServerConfig) -> dict[str, dict[str, int]]:
        labels: dict[str, dict[str, int]] = {}
        for entry in config.model_config_list.config:
            for label, version in sorted(entry.version_labels.items()):
                allowed = False
                if self._options.allow_version_labels_for_unavailable_models:
                    # Only a new label may name an unavailable version; moving one may not.
                    existing = self._registry.labels(entry.name).get(label)
                    allowed = existing is None or existing == version
                if not allowed and self._state(entry.name, version) != pb.ModelVersionStatus.AVAILABLE:
                    raise FailedPrecondition(
                        f"Request to assign label to version {version} of model {entry.name}, "
                        "which is not currently available for inference"
                    )
                labels.setdefault(entry.name, {})[label] = version
        return labels

    # ------------------------------------------------------------------ version lifecycle

    def poll(self) -> None:
        """Look at every model's base path once: load aspired versions, then unload replaced ones."""
        with self._work:
            with self._lock:
                models = [(name, model.config) for name, model in self._models.items() if not model.removed]
            for name, entry in models:
                if self._stop.is_set():
                    return
                self._poll_model(name, entry)

    def _poll_model(self, name: str, entry: pb.ModelConfig) -> None:
        try:
            on_disk = version_paths(entry.base_path, name=name)
        except BasePathError as error:
            # TF Serving's poll fails as a whole and changes nothing: what serves keeps serving.
            self._problems.say(
                name, f"FileSystemStoragePathSource encountered a filesystem access error: {error}"
            )
            return
        if on_disk:
            self._problems.clear(name)
        else:
            self._problems.no_versions(name, entry.base_path)
        aspired = set(aspired_versions(entry.model_version_policy, on_disk))
        with self._lock:
            model = self._models[name]
            # A version that failed is retried only once it has left the disk and come back.
            for version, record in list(model.versions.items()):
                if record.state == pb.ModelVersionStatus.END and version not in on_disk:
                    del model.versions[version]
            to_load = [
                version
                for version in sorted(aspired, reverse=True)
                if version not in model.versions
                or (
                    model.versions[version].state == pb.ModelVersionStatus.END
                    and model.versions[version].error is None
                )
            ]
            for version in to_load:
                model.versions[version] = VersionRecord(version, on_disk[version])
        for version in to_load:
            if self._stop.is_set():
                return
            self._load(name, model.versions[version])
        self._unload_replaced(name, aspired)

    def _load(self, name: str, record: VersionRecord) -> None:
        with self._lock:
            record.state = pb.ModelVersionStatus.LOADING
        attempts = 1 + max(0, self._options.max_num_load_retries)
        for attempt in range(1, attempts + 1):
            logger.info(
                "Loading servable { name: %s version: %d } from %s", name, record.version, record.path
            )
            started = time.monotonic()
            try:
                servable = self._loader(name, record.version, record.path)
            except StatusError as error:
                failure: StatusError = error
            except Exception as error:
                failure = serving_error_from_tf(error)
            else:
                metrics.record_load(str(record.path), ok=True)
                with self._lock:
                    record.servable, record.state, record.error = (
                        servable,
                        pb.ModelVersionStatus.AVAILABLE,
                        None,
                    )
                    self._registry.publish(servable)
                logger.info(
                    "Successfully loaded servable version { name: %s version: %d } from %s in %.2f s; "
                    "signatures: %s",
                    name,
                    record.version,
                    record.path,
                    time.monotonic() - started,
                    ", ".join(sorted(servable.signatures)),
                )
                return
            metrics.record_load(str(record.path), ok=False)
            if self._stop.is_set():
                logger.info(
                    "Loading servable { name: %s version: %d } stopped: the server is stopping",
                    name,
                    record.version,
                )
                break
            logger.error(
                "Loading servable { name: %s version: %d } failed (attempt %d of %d): %s",
                name,
                record.version,
                attempt,
                attempts,
                failure.message,
            )
            if attempt < attempts and self._stop.wait(max(0, self._options.load_retry_interval_micros) / 1e6):
                break
        with self._lock:
            record.state, record.error = pb.ModelVersionStatus.END, failure

    def _unload_replaced(self, name: str, aspired: set[int]) -> None:
        with self._lock:
            versions = self._models[name].versions
            serving = sorted(v for v, r in versions.items() if r.state == pb.ModelVersionStatus.AVAILABLE)
            unaspired = [v for v in serving if v not in aspired]
            if not any(v in aspired for v in serving):
                # Availability first: keep the newest unaspired version while no aspired one serves.
                unaspired = unaspired[:-1]
        for version in unaspired:
            self._unload(name, versions[version])

    def _unload(self, name: str, record: VersionRecord) -> None:
        with self._lock:
            self._registry.withdraw(name, record.version)
            servable, record.servable = record.servable, None
            record.state = pb.ModelVersionStatus.UNLOADING
        logger.info("Unloading servable version { name: %s version: %d }", name, record.version)
        if servable is not None:
            servable.close()
        with self._lock:
            record.state = pb.ModelVersionStatus.END
        logger.info("Done unloading servable version { name: %s version: %d }", name, record.version)

    def _unload_all(self, name: str) -> None:
        with self._lock:
            records = [
                r for r in self._models[name].versions.values() if r.state == pb.ModelVersionStatus.AVAILABLE
            ]
        for record in records:
            self._unload(name, record)

    # ------------------------------------------------------------------ status

    def status(self, spec: pb.ModelSpec) -> list[pb.ModelVersionStatus]:
        """GetModelStatus: the state of one version, or of every version newest first.

        Raises:
            NotFound: `Could not find version N of model M` / `Could not find any versions of model M`.
        """
        with self._lock:
            model = self._models.get(spec.name)
            records = dict(model.versions) if model is not None else {}
            if spec.WhichOneof("version_choice") == "version":
                record = records.get(spec.version.value)
                if record is None:
                    raise NotFound(f"Could not find version {spec.version.value} of model {spec.name}")
                chosen = [record]
            else:
                if not records:
                    raise NotFound(f"Could not find any versions of model {spec.name}")
                chosen = [records[v] for v in sorted(records, reverse=True)]
            return [self._status_proto(record) for record in chosen]

    @staticmethod
    def _status_proto(record: VersionRecord) -> pb.ModelVersionStatus:
        status = pb.ModelVersionStatus(version=record.version, state=record.state)  # type: ignore[arg-type]
        status.status.SetInParent()
        if record.error is not None:
            status.status.error_code = record.error.status.value[0]
            status.status.error_message = record.error.message
        return status

    def model_names(self) -> list[str]:
        """The configured models."""
        with self._lock:
            return sorted(name for name, model in self._models.items() if not model.removed)

    # ------------------------------------------------------------------ shutdown

    def stop(self) -> None:
        """Stop polling and unload every version (waiting for requests that hold one)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._work, self._lock:
            names = list(self._models)
        for name in names:
            self._unload_all(name)

    def _state(self, name: str, version: int) -> int | None:
        with self._lock:
            model = self._models.get(name)
            record = model.versions.get(version) if model is not None else None
            return record.state if record is not None else None

    def _models_without_version(self) -> list[str]:
        waiting = []
        with self._lock:
            for name, model in self._models.items():
                if model.removed or any(
                    r.state == pb.ModelVersionStatus.AVAILABLE for r in model.versions.values()
                ):
                    continue
                failures = [r for r in model.versions.values() if r.error is not None]
                if failures:
                    details = "; ".join(
                        f"version {r.version}: {r.error.message}" for r in failures if r.error
                    )
                    raise ServerError(
                        f"model {name} could not be loaded from {model.config.base_path}: {details}"
                    )
                waiting.append(name)
        return waiting

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._options.file_system_poll_wait_seconds):
            try:
                self.poll()
            except Exception:
                logger.exception("polling the model base paths failed")

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"layertap-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()
