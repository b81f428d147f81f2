#!/usr/bin/env python3
"""Copy TensorFlow's generated protobuf modules out of a tensorflow wheel or install.

``tensorflow_serving.apis.*_pb2`` import ``tensorflow.core.framework.*_pb2`` and a
few more generated modules, which ship only inside the TensorFlow wheel (hundreds
of MB of runtime). This script writes just those modules, and the ones they
import in turn, into ``TARGET/tensorflow/...`` with an empty ``__init__.py`` in
every package folder: a ``tensorflow`` package that holds message classes and
nothing else, so the services can talk to TF Serving without the TF runtime.

Usage::

    extract_tf_protos.py SOURCE TARGET [--roots DIR ...] [--module NAME ...]

SOURCE is a ``tensorflow`` / ``tensorflow-cpu`` wheel (``.whl``) or an installed
``tensorflow`` package folder (``.../site-packages/tensorflow``). TARGET is the
folder that gets ``tensorflow/`` (a venv's site-packages). The modules wanted
are every ``tensorflow.*`` module imported by the ``*_pb2*.py`` files under the
``--roots`` folders (default: the installed ``tensorflow_serving`` package of
the interpreter running this script, found without importing it) and every
``--module``, followed transitively. Only generated modules (``*_pb2``) are
taken: an import of anything else is an error, so a TensorFlow release whose
protos started to import its runtime is caught here, not in production.

Standard library only: it runs in the image's builder stage before anything
else is installed.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ProtoSource", "extract", "imported_modules", "main", "roots_from"]

#: Top-level packages whose modules are copied; other imports (google.protobuf...) must
#: be installed separately.
FOLLOWED = ("tensorflow",)


def imported_modules(source: str, *, origin: str = "<source>") -> set[str]:
    """Dotted names of the modules ``source`` imports, within :data:`FOLLOWED` packages.

    ``from a.b import c`` counts as ``a.b.c`` when ``c`` ends in ``_pb2`` (a
    generated module is imported as a submodule), otherwise as ``a.b``.

    >>> sorted(imported_modules("from tensorflow.core.framework import types_pb2 as t"))
    ['tensorflow.core.framework.types_pb2']
    >>> sorted(imported_modules("from tensorflow.x.y_pb2 import *\\nimport google.protobuf"))
    ['tensorflow.x.y_pb2']
    """
    try:
        tree = ast.parse(source, filename=origin)
    except SyntaxError as exc:
        raise ValueError(f"{origin}: not Python ({exc})") from None
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if alias.name.endswith("_pb2"):
                    found.add(f"{node.module}.{alias.name}")
                else:
                    found.add(node.module)
    return {name for name in found if name.split(".")[0] in FOLLOWED}


class ProtoSource:
    """Read modules by dotted name from a wheel (zip) or an installed ``tensorflow`` folder.

    Parameters
    ----------
    path : path
        A ``.whl`` file, or an installed ``tensorflow`` package folder.

    Raises
    ------
    ValueError
        If ``path`` is neither a readable wheel nor a folder named ``tensorflow``
        holding ``core/``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_file():
            if self.path.suffix != ".whl":
                raise ValueError(f"SOURCE must be a .whl file or a folder, got {str(path)!r}")
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as exc:
                raise ValueError(f"{self.path}: not a wheel ({exc})") from None
            self._names = set(self._zip.namelist())
            self._root = Path()
        elif self.path.is_dir():
            if self.path.name != "tensorflow" or not (self.path / "core").is_dir():
                raise ValueError(
                    f"SOURCE folder must be an installed 'tensorflow' package (with core/), "
                    f"got {str(path)!r}"
                )
            self._root = self.path.parent
        else:
            raise ValueError(f"SOURCE {str(path)!r} does not exist")

    def read(self, module: str) -> str | None:
        """The source of ``module`` (``a.b.c_pb2`` -> ``a/b/c_pb2.py``), or None if absent."""
        relative = module.replace(".", "/") + ".py"
        if self._zip is not None:
            if relative not in self._names:
                return None
            return self._zip.read(relative).decode("utf-8")
        file = self._root / relative
        return file.read_text(encoding="utf-8") if file.is_file() else None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> ProtoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def roots_from(folders: Iterable[Path]) -> set[str]:
    """The :data:`FOLLOWED` modules imported by the ``*_pb2*.py`` files under ``folders``.

    Raises
    ------
    ValueError
        If a folder does not exist or holds no generated module.
    """
    wanted: set[str] = set()
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"--roots folder {str(folder)!r} does not exist")
        files = sorted(p for p in folder.rglob("*_pb2*.py") if "__pycache__" not in p.parts)
        if not files:
            raise ValueError(f"--roots folder {str(folder)!r} holds no *_pb2*.py module")
        for file in files:
            wanted |= imported_modules(file.read_text(encoding="utf-8"), origin=str(file))
    return wanted


def _default_roots() -> list[Path]:
    spec = importlib.util.find_spec("tensorflow_serving")  # finds it; does not import it
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "tensorflow_serving is not installed for this interpreter; "
            "install tensorflow-serving-api (--no-deps) first, or give --roots"
        )
    return [Path(p) for p in spec.submodule_search_locations]


def extract(source: ProtoSource, target: Path, modules: Iterable[str]) -> list[str]:
    """Write ``modules`` and what they import (transitively) under ``target``.

    Returns the dotted names written, sorted. Every package folder on the way
    gets an empty ``__init__.py``.

    Raises
    ------
    ValueError
        If a wanted module is not a generated ``*_pb2`` module or is not in ``source``.
    """
    pending = sorted(set(modules))
    wanted_by = dict.fromkeys(pending, "the roots")
    done: dict[str, str] = {}
    while pending:
        module = pending.pop()
        if module in done:
            continue
        if not module.endswith("_pb2"):
            raise ValueError(
                f"{module} (imported by {wanted_by[module]}) is not a generated *_pb2 module; "
                "the TensorFlow runtime would be needed"
            )
        text = source.read(module)
        if text is None:
            raise ValueError(f"{module} (imported by {wanted_by[module]}) is not in {source.path}")
        done[module] = text
        for dependency in sorted(imported_modules(text, origin=module)):
            if dependency not in done:
                wanted_by.setdefault(dependency, module)
                pending.append(dependency)
    for module, text in done.items():
        parts = module.split(".")
        folder = target.joinpath(*parts[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        for depth in range(1, len(parts)):
            init = target.joinpath(*parts[:depth], "__init__.py")
            if not init.exists():
                init.write_text("")
        (folder / f"{parts[-1]}.py").write_text(text, encoding="utf-8")
    return sorted(done)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="extract_tf_protos.py",
        description="Copy TensorFlow's generated *_pb2 modules (those TF Serving's API "
        "imports) out of a tensorflow wheel or install, without the TF runtime.",
    )
    parser.add_argument("source", type=Path, help="tensorflow wheel, or installed tensorflow/")
    parser.add_argument("target", type=Path, help="folder that gets tensorflow/ (site-packages)")
    parser.add_argument(
        "--roots",
        type=Path,
        action="append",
        default=None,
        metavar="DIR",
        help="folders of *_pb2*.py modules whose tensorflow.* imports are wanted "
        "(default: the installed tensorflow_serving package)",
    )
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="also this module, e.g. tensorflow.core.framework.tensor_pb2 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        if (args.target / "tensorflow" / "python").exists():
            raise ValueError(f"{args.target} already holds the full TensorFlow; use another TARGET")
        wanted = roots_from(args.roots if args.roots else _default_roots()) | set(args.module)
        if not wanted:
            raise ValueError("no tensorflow.* module wanted (check --roots / --module)")
        args.target.mkdir(parents=True, exist_ok=True)
        with ProtoSource(args.source) as source:
            written = extract(source, args.target, wanted)
    except (ValueError, OSError) as exc:
        print(f"extract_tf_protos.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"extract_tf_protos.py: {len(written)} modules from {args.source} -> {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
