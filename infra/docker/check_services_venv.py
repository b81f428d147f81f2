#!/usr/bin/env python3
"""Check the services' environment: every service module imports, with no TensorFlow runtime.

Run by ``build_services_venv.sh package`` with the environment's own interpreter,
so a lock that misses a package, or protos that pull in TensorFlow's runtime,
fail the image build instead of a pod. Prints one line per check; exit status 1
on the first failure.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

__all__ = ["FORBIDDEN", "MODULES", "main"]

#: What the image runs: the command line, each stage's service and sources, model push/pull.
MODULES = (
    "radiounet.cli.main",
    "radiounet.stream.classifier.service",
    "radiounet.stream.fetcher.http_source",
    "radiounet.stream.fetcher.mosaic_source",
    "radiounet.stream.fetcher.service",
    "radiounet.stream.fetcher.simulated_source",
    "radiounet.stream.kafka_io",
    "radiounet.stream.model_sync",
    "radiounet.stream.reassembler.service",
    "radiounet.stream.runner",
    "radiounet.stream.telemetry",
    "radiounet.stream.tiler.model_client",
    "radiounet.stream.tiler.service",
)
#: Module prefixes that must not be imported: the TF runtime, Keras, the simulator's and
#: the evaluation's heavy dependencies.
FORBIDDEN = ("tensorflow.python", "tensorflow.lite", "keras", "ducc0", "bdsf")


def main() -> int:
    with warnings.catch_warnings():
        # kafka-python 3.0 warns about a deprecated importlib.resources call at import.
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in MODULES:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                print(f"check_services_venv: cannot import {name}: {exc}", file=sys.stderr)
                return 1
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    bad = [m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    if bad:
        print(f"check_services_venv: imported {sorted(bad)[:5]}", file=sys.stderr)
        return 1
    import tensorflow

    package = Path(tensorflow.__file__).parent
    if (package / "python").exists() or (package / "__init__.py").read_text().strip():
        print(f"check_services_venv: {package} is TensorFlow itself", file=sys.stderr)
        return 1
    print(f"check_services_venv: {len(MODULES)} modules import; {len(loaded)} tensorflow modules")
    print("check_services_venv: all generated protobuf modules, no TensorFlow runtime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
