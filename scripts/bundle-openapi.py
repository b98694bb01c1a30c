#!/usr/bin/env python3
"""Bundles a multi-file OpenAPI document (YAML, relative `$ref`s across
files, as ethereum/beacon-APIs writes it) into one JSON document whose only
`$ref`s point into its own `#/components/...`, for the test nodes' checker
(crates/testnode/src/openapi.rs). Run once to pin a document; the output
and its source are recorded in the fixture's SOURCES.md.

    scripts/bundle-openapi.py ROOT.yaml > bundled.json

Needs PyYAML. Nothing here is run by the tests.
"""
import json
import os
import sys

import yaml

ROOT = os.path.abspath(sys.argv[1])
cache = {}


def load(path):
    if path not in cache:
        with open(path) as f:
            cache[path] = yaml.safe_load(f)
    return cache[path]


def pointer(doc, ptr):
    node = doc
    for part in [p for p in ptr.lstrip("/").split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def resolve(node, here, stack):
    """`node` from file `here`: refs into the root's components stay refs;
    every other ref is inlined (resolved in its own file)."""
    if isinstance(node, list):
        return [resolve(x, here, stack) for x in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        file, _, ptr = ref.partition("#")
        target = os.path.abspath(os.path.join(os.path.dirname(here), file)) if file else here
        if target == ROOT and ptr.startswith("/components/"):
            return {"$ref": "#" + ptr}
        key = (target, ptr)
        if key in stack:
            raise SystemExit(f"cyclic $ref {ref} in {here}")
        return resolve(pointer(load(target), ptr), target, stack | {key})
    return {k: resolve(v, here, stack) for k, v in node.items()}


doc = load(ROOT)
out = resolve(doc, ROOT, frozenset())
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
