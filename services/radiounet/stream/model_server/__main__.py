"""``python -m radiounet.stream.model_server``: run the TF Serving stand-in (see ``--help``)."""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
