#!/usr/bin/python3
# Checks the JSON Schema corpus used by tests/grammar_corpus_test.cpp with Debian's python3-jsonschema:
# every NNN_name.json file is {"description": str, "schema": S, "valid": [instance, ...]} (1 to 3 instances),
# S is a valid Draft 2020-12 schema, and every instance validates under S with format checking on (time and
# date-time through tests/oracle/jsonschema_check.py's RFC 3339 fallbacks when jsonschema lacks their checkers).
# Usage: /usr/bin/python3 tests/data/json_schemas/check_corpus.py   (exits 1 listing the bad files)
import json
import os
import re
import sys

import jsonschema

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "oracle"))
import jsonschema_check  # noqa: E402  (the oracle's format fallbacks)


def patterns(node):
    """Every "pattern" string in the schema (check_schema does not compile them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from patterns(value)


def check_file(path, checker):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    problems = []
    if not isinstance(doc, dict) or set(doc) != {"description", "schema", "valid"}:
        return ["top level must be an object with exactly description, schema, valid"]
    if not isinstance(doc["description"], str) or not doc["description"] or "\n" in doc["description"]:
        problems.append("description must be one non-empty line")
    if not isinstance(doc["valid"], list) or not 1 <= len(doc["valid"]) <= 3:
        return problems + ["valid must be a list of 1 to 3 instances"]
    try:
        jsonschema.Draft202012Validator.check_schema(doc["schema"])
    except jsonschema.exceptions.SchemaError as e:
        return problems + ["schema is invalid: " + e.message]
    for p in patterns(doc["schema"]):
        try:
            re.compile(p)
        except re.error as e:
            problems.append("pattern %r does not compile in Python: %s" % (p, e))
    validator = jsonschema.Draft202012Validator(doc["schema"], format_checker=checker)
    for k, instance in enumerate(doc["valid"]):
        for err in validator.iter_errors(instance):
            problems.append("valid[%d] fails at %s: %s" % (k, "/".join(map(str, err.absolute_path)) or "(root)", err.message))
    return problems


def main():
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    jsonschema_check.add_fallbacks(checker)
    names = sorted(f for f in os.listdir(HERE) if f.endswith(".json"))
    bad = {}
    for k, name in enumerate(names, 1):
        if not re.fullmatch(r"%03d_[a-z0-9_]+\.json" % k, name):
            bad[name] = ["file name must be NNN_short_name.json, numbered without gaps (expected %03d_...)" % k]
            continue
        problems = check_file(os.path.join(HERE, name), checker)
        if problems:
            bad[name] = problems
    for name, problems in bad.items():
        for p in problems:
            print("%s: %s" % (name, p), file=sys.stderr)
    print("%d files, %d bad" % (len(names), len(bad)))
    return 1 if bad or len(names) < 200 else 0


if __name__ == "__main__":
    sys.exit(main())
