#!/usr/bin/python3
# Oracle for tests/grammar_json_schema_test.cpp: Debian's python3-jsonschema (the draft the schema's $schema names,
# else 2020-12; format checking on).
# Input (the file named by argv[1]): {"cases": [{"schema": S, "candidates": [TEXT, ...]}, ...]}.
# Output (stdout): {"checked_formats": [...], "results": [[VERDICT, ...], ...]} where VERDICT is true/false for
# JSON text valid/invalid under S, or null when TEXT is not JSON at all (Python's NaN/Infinity extensions refused).
# checked_formats: the formats this installation really checks (some checkers need optional packages and pass
# everything without them). Without its optional rfc3339-validator, jsonschema does not check time and date-time;
# then this script checks them itself, strictly by RFC 3339's grammar (section 5.6) and the calendar, and lists
# them in fallback_formats.
import datetime
import json
import re
import sys

import jsonschema


def no_constants(name):
    raise ValueError("not JSON: " + name)


TIME = re.compile(r"(\d\d):(\d\d):(\d\d)(\.\d+)?([zZ]|[+-](\d\d):(\d\d))\Z", re.ASCII)
DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)\Z", re.ASCII)


def rfc3339_time(text):
    m = TIME.match(text)
    if not m:
        return False
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if m.group(6) is not None and (int(m.group(6)) > 23 or int(m.group(7)) > 59):
        return False
    return hour <= 23 and minute <= 59 and second <= 60


def rfc3339_date(text):
    m = DATE.match(text)
    if not m:
        return False
    try:
        datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return False
    return True


def add_fallbacks(checker):
    added = []
    if "time" not in checker.checkers:
        checker.checks("time")(lambda x: not isinstance(x, str) or rfc3339_time(x))
        added.append("time")
    if "date-time" not in checker.checkers:
        def date_time(x):
            if not isinstance(x, str):
                return True
            parts = re.split("[tT]", x)
            return len(parts) == 2 and rfc3339_date(parts[0]) and rfc3339_time(parts[1])
        checker.checks("date-time")(date_time)
        added.append("date-time")
    return added


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    fallbacks = add_fallbacks(checker)
    results = []
    for case in request["cases"]:
        # The draft the schema's $schema names (draft 4, 6, 7, 2019-09), else 2020-12, as jsonschema.validate does.
        cls = jsonschema.validators.validator_for(case["schema"], default=jsonschema.Draft202012Validator)
        validator = cls(case["schema"], format_checker=checker)
        verdicts = []
        for text in case["candidates"]:
            try:
                instance = json.loads(text, parse_constant=no_constants)
            except ValueError:
                verdicts.append(None)
                continue
            verdicts.append(validator.is_valid(instance))
        results.append(verdicts)
    json.dump({"checked_formats": sorted(checker.checkers), "fallback_formats": fallbacks, "results": results},
              sys.stdout)


if __name__ == "__main__":
    main()
