"""A STAND-IN for TensorFlow Serving: its gRPC API over the same model repository.

Production runs the ``tensorflow/serving`` image. Where its binary cannot be
installed (development machines, CI, this repository's tests), this package
serves the same API from Python, so the tiler's
:class:`~radiounet.stream.tiler.model_client.ModelClient` works against either
without a code change:

- ``tensorflow.serving.PredictionService``: Predict, GetModelMetadata;
- ``tensorflow.serving.ModelService``: GetModelStatus, HandleReloadConfigRequest;
- ``grpc.health.v1.Health``;
- ``models.config`` (``ModelServerConfig`` text proto) with version policies
  (``latest``/``all``/``specific``) and version labels, or one model by
  ``--model_name``/``--model_base_path``; new version folders are picked up
  while running;
- server-side batching of concurrent requests (``--enable_batching``, on by default);
- TF Serving's Prometheus metric names over HTTP (:mod:`.metrics`).

Modules: :mod:`.config` (configuration), :mod:`.versions` (version policy),
:mod:`.servable` (one loaded SavedModel), :mod:`.batching` (request merging),
:mod:`.manager` (loading, states, lookups), :mod:`.servicer` (gRPC methods),
:mod:`.metrics` and :mod:`.rest` (HTTP), :mod:`.server` (``serve``, ``main``).
Run it with ``python -m radiounet.stream.model_server --help``.
"""
