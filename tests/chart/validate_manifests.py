"""Validate rendered Kubernetes manifests; run by the chart tools' interpreter, not by pytest.

``.tools/venv/bin/python tests/chart/validate_manifests.py --schemas DIR FILE...``
prints one JSON list with an entry per document of every FILE::

    {"file": ..., "index": 0, "apiVersion": ..., "kind": ..., "name": ...,
     "validator": "kubernetes 1.37" | "crd <schema file>" | "none", "errors": [...]}

Built-in kinds are checked by ``kubernetes_validate`` in strict mode (unknown fields
are errors); the custom resources whose ``(apiVersion, kind)`` a schema of ``DIR``
declares (``properties.apiVersion.const`` / ``properties.kind.const``) are checked
against that JSON schema, every error reported. A kind neither knows is an error.

``kubernetes_validate`` and ``jsonschema`` live in ``.tools/venv`` (``make tools``),
not in the project's environment, so they are imported inside :func:`main` only and
pytest can still import this module to collect its (absent) doctests.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _documents(path: Path) -> Iterator[tuple[int, Any]]:
    import yaml

    with path.open() as stream:
        for index, doc in enumerate(yaml.safe_load_all(stream)):
            if doc is not None:
                yield index, doc


def _crd_validators(schema_dir: Path) -> dict[tuple[str, str], tuple[str, Any]]:
    """``(apiVersion, kind)`` -> (schema file name, validator), from every schema of the folder."""
    import jsonschema
    from referencing import Registry, Resource

    resources = {}
    for path in sorted(schema_dir.glob("*.json")):
        contents = json.loads(path.read_text())
        resources[path.name] = (contents, Resource.from_contents(contents))
    registry: Registry = Registry().with_resources(
        (contents["$id"], resource) for contents, resource in resources.values()
    )
    validators = {}
    for name, (contents, _) in resources.items():
        props = contents.get("properties", {})
        if "const" not in props.get("kind", {}):
            continue  # shared definitions
        jsonschema.Draft202012Validator.check_schema(contents)
        key = (props["apiVersion"]["const"], props["kind"]["const"])
        validators[key] = (name, jsonschema.Draft202012Validator(contents, registry=registry))
    return validators


def _path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(document)"


def validate(doc: Any, crds: dict[tuple[str, str], tuple[str, Any]]) -> tuple[str, list[str]]:
    """Which validator checked ``doc`` and its errors ("path: message" each)."""
    import kubernetes_validate
    from kubernetes_validate import utils

    if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
        return "none", ["not a Kubernetes object (no apiVersion/kind)"]
    key = (doc["apiVersion"], doc["kind"])
    if key in crds:
        name, validator = crds[key]
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return f"crd {name}", [f"{_path(e)}: {e.message}" for e in errors]
    version = utils.latest_version()
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        known = ", ".join(f"{a} {k}" for a, k in sorted(crds))
        return "none", [
            f"unknown kind {doc['kind']} ({doc['apiVersion']}): neither a Kubernetes "
            f"{version} kind nor one of the CRD schemas ({known})"
        ]
    except kubernetes_validate.ValidationError as exc:
        return f"kubernetes {version}", [f"{_path(exc)}: {exc.message}"]
    return f"kubernetes {version}", []


def main(argv: Sequence[str] | None = None) -> int:
    """Validate the files; print the JSON report; 0 unless the report could not be made."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", type=Path, required=True, help="folder of CRD JSON schemas")
    parser.add_argument("files", nargs="+", type=Path, help="multi-document YAML manifests")
    args = parser.parse_args(argv)
    crds = _crd_validators(args.schemas)
    report = []
    for path in args.files:
        for index, doc in _documents(path):
            validator, errors = validate(doc, crds)
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            report.append(
                {
                    "file": str(path),
                    "index": index,
                    "apiVersion": doc.get("apiVersion") if isinstance(doc, dict) else None,
                    "kind": doc.get("kind") if isinstance(doc, dict) else None,
                    "name": meta.get("name") if isinstance(meta, dict) else None,
                    "validator": validator,
                    "errors": errors,
                }
            )
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
