"""Shared set-up of the dashboard tests."""

from __future__ import annotations

import warnings

# kafka-python 3.0 builds its protocol classes at import time with a deprecated
# importlib.resources call; under `filterwarnings = error` its first import (in
# the live test's submission) would fail, so import it once here, silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka  # noqa: F401
