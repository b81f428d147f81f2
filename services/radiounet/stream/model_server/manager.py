"""Which model versions are loaded, their states, and finding the one a request names.

One pass of :meth:`ModelManager.reconcile` does what TF Serving's file-system
source and manager do on each poll: list the version folders, apply the
version policy, load new versions, then unload versions the policy dropped,
but only once a wanted version is available, so a model is never left with
nothing to serve (TF Serving's availability-preserving policy). States are the
ones GetModelStatus reports: START, LOADING, AVAILABLE, UNLOADING, END (a
failed load ends in END with the error).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ._protos import get_model_status_pb2
from .batching import BatchingOptions
from .config import validate_model_config
from .metrics import ServingMetrics
from .servable import Servable
from .status import ServingError
from .versions import aspired_versions, list_versions, policy_description, resolve_label

__all__ = ["ModelManager", "VersionStatus"]

_log = logging.getLogger(__name__)
_State = get_model_status_pb2.ModelVersionStatus


@dataclass(frozen=True)
class VersionStatus:
    """The state of one version, as GetModelStatus reports it."""

    version: int
    state: int  # ModelVersionStatus.State
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""

    @property
    def state_name(self) -> str:
        return str(_State.State.Name(self.state))


class _Model:
    def __init__(self, config: Any) -> None:
        self.config = config
        self.servables: dict[int, Servable] = {}
        self.statuses: dict[int, VersionStatus] = {}
        self.warned: set[str] = set()


class ModelManager:
    """Load, serve and retire the versions a ``ModelServerConfig`` asks for.

    Parameters
    ----------
    config : ModelServerConfig
        Models with resolved ``base_path``s (see :mod:`.config`).
    batching : BatchingOptions or None
        Passed to every loaded :class:`~.servable.Servable`.
    metrics : ServingMetrics or None
        Where loads are counted.
    loader : callable
        ``loader(name, version, path)`` -> Servable; tests may swap it.
    """

    def __init__(
        self,
        config: Any,
        *,
        batching: BatchingOptions | None = None,
        metrics: ServingMetrics | None = None,
        loader: Callable[[str, int, Path], Servable] | None = None,
    ) -> None:
        validate_model_config(config)
        self._batching = batching
        self._metrics = metrics
        self._loader = loader or self._load_servable
        self._lock = threading.RLock()
        self._reconcile_lock = threading.Lock()  # one pass at a time (poller, reload)
        self._models = {c.name: _Model(c) for c in config.model_config_list.config}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # -- loading -------------------------------------------------------------

    def reconcile(self) -> None:
        """One poll: bring every model's loaded versions in line with its policy."""
        with self._reconcile_lock:
            with self._lock:
                models = list(self._models.values())
            for model in models:
                self._reconcile_model(model)

    def load_initial(self) -> None:
        """First poll; fail unless every model has a version available, as TF Serving does.

        Raises
        ------
        ValueError
            Naming each model that has no available version and why.
        """
        self.reconcile()
        problems = []
        with self._lock:
            for name, model in self._models.items():
                if not model.servables:
                    errors = [s.error_message for s in model.statuses.values() if s.error_message]
                    base = model.config.base_path
                    why = "; ".join(errors) or f"no version folders under {base}"
                    problems.append(f"model {name!r}: {why}")
        if problems:
            raise ValueError("no servable version: " + " | ".join(problems))

    def start_polling(self, interval_s: float) -> None:
        """Re-run :meth:`reconcile` every ``interval_s`` seconds (0: never), in a thread."""
        if interval_s <= 0 or self._poller is not None:
            return

        def poll() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.reconcile()
                except Exception:  # a bad poll must not end polling
                    _log.exception("model version poll failed")

        self._poller = threading.Thread(target=poll, name="model-version-poller", daemon=True)
        self._poller.start()

    def reload(self, config: Any) -> None:
        """Serve a new ``ModelServerConfig``: add, change and drop models, then reconcile."""
        validate_model_config(config)
        wanted = {c.name: c for c in config.model_config_list.config}
        with self._reconcile_lock:
            with self._lock:
                dropped = [m for n, m in self._models.items() if n not in wanted]
                for name, model_config in wanted.items():
                    if name in self._models:
                        self._models[name].config = model_config
                    else:
                        self._models[name] = _Model(model_config)
                for model in dropped:
                    del self._models[model.config.name]
            for model in dropped:
                self._unload(model, list(model.servables))
        self.reconcile()

    def close(self) -> None:
        """Stop polling and unload everything (queued requests finish first)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        with self._lock:
            models = list(self._models.values())
        for model in models:
            self._unload(model, list(model.servables))

    def _reconcile_model(self, model: _Model) -> None:
        config = model.config
        on_disk = list_versions(config.base_path)
        aspired = aspired_versions(config.model_version_policy, on_disk)
        if not on_disk:
            self._warn_once(
                model,
                f"No versions of servable {config.name} found under base path {config.base_path}",
            )
        missing = set(config.model_version_policy.specific.versions) - set(on_disk)
        if config.model_version_policy.WhichOneof("policy_choice") == "specific" and missing:
            self._warn_once(model, f"{config.name}: versions {sorted(missing)} not found on disk")
        with self._lock:
            # A version whose folder went away forgets a failed load; it may come back fixed.
            for version in [v for v in model.statuses if v not in on_disk]:
                if version not in model.servables:
                    del model.statuses[version]
            # Not a version that failed to load (it stays END with its error until its
            # folder goes away); a version unloaded earlier may be wanted again.
            to_load = [
                v
                for v in aspired
                if v not in model.servables
                and (v not in model.statuses or model.statuses[v] == VersionStatus(v, _State.END))
            ]
            for version in to_load:
                model.statuses[version] = VersionStatus(version, _State.START)
        for version in to_load:
            self._load(model, version)
        with self._lock:
            available = [v for v in aspired if v in model.servables]
            retire = [v for v in model.servables if v not in aspired]
        if retire and not available:
            self._warn_once(
                model,
                f"{config.name}: keeping versions {retire} until a version wanted by "
                f"policy {policy_description(config.model_version_policy)} is available",
            )
            return
        self._unload(model, retire)

    def _load(self, model: _Model, version: int) -> None:
        name = model.config.name
        path = Path(model.config.base_path) / str(version)
        with self._lock:
            model.statuses[version] = VersionStatus(version, _State.LOADING)
        _log.info("loading servable %s version %d from %s", name, version, path)
        started = time.monotonic()
        try:
            servable = self._loader(name, version, path)
        except Exception as exc:
            _log.error("loading servable %s version %d failed: %s", name, version, exc)
            if self._metrics is not None:
                self._metrics.load_attempt_count.inc(str(path), "fail")
            message = f"Loading servable: {{name: {name} version: {version}}} failed: {exc}"
            with self._lock:
                model.statuses[version] = VersionStatus(
                    version, _State.END, grpc.StatusCode.UNKNOWN, message
                )
            return
        if self._metrics is not None:
            self._metrics.load_attempt_count.inc(str(path), "success")
            self._metrics.load_latency.inc(str(path), by=int((time.monotonic() - started) * 1e6))
        with self._lock:
            model.servables[version] = servable
            model.statuses[version] = VersionStatus(version, _State.AVAILABLE)
        _log.info("servable %s version %d is available", name, version)

    def _unload(self, model: _Model, versions: list[int]) -> None:
        for version in versions:
            with self._lock:
                servable = model.servables.pop(version, None)
                if servable is None:
                    continue
                model.statuses[version] = VersionStatus(version, _State.UNLOADING)
            _log.info("unloading servable %s version %d", model.config.name, version)
            servable.unload()
            with self._lock:
                model.statuses[version] = VersionStatus(version, _State.END)

    def _load_servable(self, name: str, version: int, path: Path) -> Servable:
        return Servable(name, version, path, batching=self._batching, metrics=self._metrics)

    def _warn_once(self, model: _Model, message: str) -> None:
        if message not in model.warned:
            model.warned.add(message)
            _log.warning("%s", message)

    # -- lookups -------------------------------------------------------------

    def model_names(self) -> list[str]:
        """The configured model names, sorted."""
        with self._lock:
            return sorted(self._models)

    def all_available(self) -> bool:
        """Whether every configured model has at least one available version."""
        with self._lock:
            return all(m.servables for m in self._models.values())

    def servable(self, name: str, version: int | None = None, label: str = "") -> Servable:
        """The servable a request's model spec names (``version``/``label`` empty: latest).

        Raises
        ------
        ServingError
            NOT_FOUND for an unknown model or a version not available;
            INVALID_ARGUMENT for an unknown version label.
        """
        with self._lock:
            model = self._models.get(name)
            if label:
                if model is None:
                    raise ServingError.not_found(f"Servable not found for request: Latest({name})")
                version = self._label_version(model, label)
            if version is None:
                if model is None or not model.servables:
                    raise ServingError.not_found(f"Servable not found for request: Latest({name})")
                return model.servables[max(model.servables)]
            if model is None or version not in model.servables:
                raise ServingError.not_found(
                    f"Servable not found for request: Specific({name}, {version})"
                )
            return model.servables[version]

    def statuses(
        self, name: str, version: int | None = None, label: str = ""
    ) -> list[VersionStatus]:
        """Version states of a model, latest first (one version if ``version``/``label``).

        Raises
        ------
        ServingError
            NOT_FOUND when the model or version is unknown; INVALID_ARGUMENT
            for an unknown label.
        """
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.statuses:
                raise ServingError.not_found(f"Could not find any versions of model {name}")
            if label:
                version = self._label_version(model, label)
            if version is not None:
                if version not in model.statuses:
                    raise ServingError.not_found(
                        f"Could not find version {version} of model {name}"
                    )
                return [model.statuses[version]]
            return [model.statuses[v] for v in sorted(model.statuses, reverse=True)]

    @staticmethod
    def _label_version(model: _Model, label: str) -> int:
        try:
            return resolve_label(dict(model.config.version_labels), label)
        except KeyError as exc:
            raise ServingError.invalid_argument(exc.args[0]) from exc
