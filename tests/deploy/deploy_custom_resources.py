"""Validation of custom resources (cert-manager, Prometheus Operator) against the vendored CRD
schemas in crd_schemas/, as strictly as kubernetes-validate treats built-in kinds: a field the
schema does not define is an error (the API server would silently prune it)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema

SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"


def _strict(node: object) -> object:
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def schema_key(doc: dict) -> str:
    group_version = doc.get("apiVersion", "")
    group, _, version = group_version.rpartition("/")
    return f"{group}_{version}_{doc.get('kind')}"


def is_custom(doc: dict) -> bool:
    return (SCHEMAS / f"{schema_key(doc)}.json").is_file()


@functools.cache
def _validator(key: str) -> jsonschema.Draft7Validator:
    schema = _strict(json.loads((SCHEMAS / f"{key}.json").read_text()))
    # the API server fills these; a manifest's metadata is checked by the built-in kinds' rules
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def custom_resource_errors(doc: dict) -> list[str]:
    where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    return [f"{where}: {'.'.join(str(p) for p in error.path)}: {error.message}"
            for error in _validator(schema_key(doc)).iter_errors(doc)]
