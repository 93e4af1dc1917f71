#!/usr/bin/env python3
"""Builds the expression lists of engine/tests/suite/jsonata_diff.rs (standard library only).

    tests/jsonata/extract.py conformance
        every `{% ... %}` expression of the JSONata states of tests/conformance/cases/
        -> tests/jsonata/conformance-exprs.jsonl
    tests/jsonata/extract.py suite DIR [EVERY]
        every EVERY-th case (default 3) of a copy of jsonata-js's test suite at DIR (the
        folder holding `groups/` and `datasets/`) -> tests/jsonata/suite-sample.jsonl

One JSON object per line: `id`, `expr`, optionally `input` (absent: `$` is undefined) and
`bindings` (variables by name; `states` is `$states`). Run again after the conformance
cases change; the sample is deterministic for a given suite copy.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
EXPR = re.compile(r"^\{%(.*)%\}$", re.S)


def pointer_escape(key):
    return str(key).replace("~", "~0").replace("/", "~1")


def strings(value, pointer):
    """(pointer, string) for every string in a JSON value, at any depth."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from strings(item, f"{pointer}/{i}")
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from strings(item, f"{pointer}/{pointer_escape(k)}")


def jsonata_states(states, inherited, pointer):
    """(pointer, state) for each state whose query language is JSONata, nested ones too."""
    for name, state in states.items():
        here = f"{pointer}/{pointer_escape(name)}"
        lang = state.get("QueryLanguage", inherited)
        if lang == "JSONata":
            yield here, state
        for i, branch in enumerate(state.get("Branches", [])):
            yield from jsonata_states(branch.get("States", {}), lang, f"{here}/Branches/{i}/States")
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from jsonata_states(state[key].get("States", {}), lang, f"{here}/{key}/States")


def context(case, state_name, case_input):
    """A context object shaped like AWS's (values fixed; only shape matters here)."""
    return {
        "Execution": {
            "Id": "arn:aws:states:us-east-1:111111111111:execution:Machine:exec",
            "Input": case_input,
            "Name": "exec",
            "RoleArn": "arn:aws:iam::111111111111:role/Role",
            "StartTime": "2024-01-01T00:00:00.000Z",
            "RedriveCount": 0,
        },
        "StateMachine": {"Id": "arn:aws:states:us-east-1:111111111111:stateMachine:Machine", "Name": "Machine"},
        "State": {"Name": state_name, "EnteredTime": "2024-01-01T00:00:00.000Z"},
    }


def conformance():
    cases_dir = os.path.join(ROOT, "tests", "conformance", "cases")
    out = []
    for file in sorted(os.listdir(cases_dir)):
        with open(os.path.join(cases_dir, file)) as f:
            case = json.load(f)
        definition = case["definition"]
        top = definition.get("QueryLanguage", "JSONPath")
        case_input = case.get("input", {})
        seen = set()
        for state_ptr, state in jsonata_states(definition.get("States", {}), top, "/States"):
            state_name = state_ptr.rsplit("/", 1)[1]
            for ptr, text in strings(state, state_ptr):
                m = EXPR.match(text)
                if not m or m.group(1).strip() in seen:
                    continue
                expr = m.group(1).strip()
                seen.add(expr)
                states = {
                    "input": case_input,
                    "context": context(case, state_name, case_input),
                    "errorOutput": {"Error": "States.TaskFailed", "Cause": "a cause"},
                }
                out.append({"id": f"conformance/{case['name']}{ptr}", "expr": expr, "input": case_input,
                            "bindings": {"states": states}})
    write(os.path.join(HERE, "conformance-exprs.jsonl"), out)


# Groups that are not jsonata-js's, or whose results depend on the clock or a random source.
SKIP_GROUPS = {"function-uuid", "function-millis", "function-now", "function-random", "function-shuffle"}


def suite(directory, every):
    cases = []
    for kind in ("groups", "skip"):
        base = os.path.join(directory, kind)
        if not os.path.isdir(base):
            continue
        for group in sorted(os.listdir(base)):
            if group in SKIP_GROUPS:
                continue
            for file in sorted(os.listdir(os.path.join(base, group))):
                if file.endswith(".json"):
                    cases.append((group, file, os.path.join(base, group, file)))
    cases.sort()
    datasets = os.path.join(directory, "datasets")
    out = []
    for n, (group, file, path) in enumerate(cases):
        if n % every:
            continue
        with open(path) as f:
            loaded = json.load(f)
        for i, case in enumerate(loaded if isinstance(loaded, list) else [loaded]):
            if "timelimit" in case or "depth" in case:
                continue
            expr = case.get("expr")
            if expr is None and "expr-file" in case:
                with open(os.path.join(os.path.dirname(path), case["expr-file"])) as f:
                    expr = f.read()
            if expr is None or re.search(r"\$(now|millis|random|shuffle|uuid)\b", expr):
                continue
            entry = {"id": f"suite/{group}/{file[:-5]}" + (f"/{i}" if isinstance(loaded, list) else ""), "expr": expr}
            if "data" in case:
                entry["input"] = case["data"]
            elif case.get("dataset"):
                with open(os.path.join(datasets, case["dataset"] + ".json")) as f:
                    entry["input"] = json.load(f)
            if case.get("bindings"):
                entry["bindings"] = case["bindings"]
            out.append(entry)
    write(os.path.join(HERE, "suite-sample.jsonl"), out)


def write(path, entries):
    with open(path, "w") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {len(entries)} expressions to {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["conformance"]:
        conformance()
    elif sys.argv[1:2] == ["suite"] and len(sys.argv) >= 3:
        suite(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
    else:
        sys.exit(__doc__)
