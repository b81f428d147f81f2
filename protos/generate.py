"""Generate the Python message classes from ``protos/`` into ``radiounet.stream.proto``.

Run ``make protos`` after editing a ``.proto`` file; ``--check`` (used by the
tests) fails if the committed code is stale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent
TARGET = ROOT.parent / "services" / "radiounet" / "stream" / "proto"
PROTOS = ("radiounet/v1/pipeline.proto",)


def generate(out_dir: Path) -> list[Path]:
    """Compile every proto into ``out_dir`` (flat: ``pipeline_pb2.py`` and ``.pyi``)."""
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for proto in PROTOS:
            args = ["protoc", f"-I{ROOT}", f"--python_out={tmp}", f"--pyi_out={tmp}", proto]
            if protoc.main(args) != 0:
                raise SystemExit(f"protoc failed on {proto}")
            stem = Path(proto).with_suffix("")
            for suffix in ("_pb2.py", "_pb2.pyi"):
                src = Path(tmp) / f"{stem}{suffix}"
                dst = out_dir / src.name
                dst.write_bytes(src.read_bytes())
                written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare with the committed code")
    args = parser.parse_args(argv)
    if not args.check:
        for path in generate(TARGET):
            print(f"wrote {path.relative_to(ROOT.parent)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        stale = [
            p.name
            for p in generate(Path(tmp))
            if not (TARGET / p.name).exists() or (TARGET / p.name).read_bytes() != p.read_bytes()
        ]
    if stale:
        print(f"stale generated code: {', '.join(stale)}; run `make protos`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
