#!/usr/bin/python3
"""Chat-template oracle for tests/jinja_test.cpp: renders Jinja2 chat templates the way transformers'
apply_chat_template does (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the
{% generation %} tag, tojson with ensure_ascii=False, raise_exception, strftime_now) with Debian's jinja2.
strftime_now uses a fixed time (2024-07-26 10:30:00) so output is deterministic.

stdin:  {"templates": {"name": "template text", ...}, "cases": [{"template": "name", "context": {...}}, ...]}
stdout: [{"ok": true, "out": "..."} | {"ok": false, "type": "UndefinedError", "error": "message"}, ...]
"""
import json
import sys
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime(2024, 7, 26, 10, 30, 0)


class AssistantTracker(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return FIXED_NOW.strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    req = json.load(sys.stdin)
    env = make_env()
    compiled = {}
    for name, text in req["templates"].items():
        try:
            compiled[name] = env.from_string(text)
        except Exception as e:  # noqa: BLE001
            compiled[name] = e
    results = []
    for case in req["cases"]:
        t = compiled[case["template"]]
        try:
            if isinstance(t, Exception):
                raise t
            results.append({"ok": True, "out": t.render(**case["context"])})
        except Exception as e:  # noqa: BLE001
            results.append({"ok": False, "type": type(e).__name__, "error": str(e)})
    json.dump(results, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
