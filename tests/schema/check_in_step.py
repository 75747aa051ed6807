#!/usr/bin/python3
"""docs/openapi.yaml and docs/API.md describe the same endpoints: every `METHOD /path` of API.md's
tables is an operation of the description and every operation is in API.md (the web page under
/app/ is out of the description's scope). Also checks the error codes of both lists agree.

Usage: check_in_step.py <docs dir>
"""
import re
import sys

import yaml


def main():
    docs = sys.argv[1]
    with open(f"{docs}/API.md", encoding="utf-8") as file:
        api_md = file.read()
    with open(f"{docs}/openapi.yaml", encoding="utf-8") as file:
        description = yaml.safe_load(file)

    # Table rows start with | `METHOD /path...`; a row may name several paths (`GET /app/`, `/app/p/{id}`).
    documented = set()
    for row in re.findall(r"^\| `(GET|POST|PUT|DELETE|PATCH) ([^`?]+)[^`]*`", api_md, re.MULTILINE):
        method, path = row
        if not path.startswith("/app/"):
            documented.add((method.lower(), path))
    described = {(method, path) for path, item in description["paths"].items()
                 for method in item if method in ("get", "post", "put", "delete", "patch")}
    problems = []
    for method, path in sorted(documented - described):
        problems.append(f"{method.upper()} {path} is in API.md but not in openapi.yaml")
    for method, path in sorted(described - documented):
        problems.append(f"{method.upper()} {path} is in openapi.yaml but not in API.md")

    codes_md = set(re.findall(r"`([a-z_]+)`\s+\d{3}", api_md.split("## Service")[0]))
    codes_yaml = set(description["components"]["schemas"]["ErrorCode"]["enum"])
    if codes_md != codes_yaml:
        problems.append(f"error codes differ: API.md {sorted(codes_md)} vs openapi.yaml {sorted(codes_yaml)}")

    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"in step: {len(described)} operations, {len(codes_yaml)} error codes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
