#!/usr/bin/python3
"""Converts docs/openapi.yaml to JSON and writes it as a C++ source defining OpenApiJson().

Run by the build (src/http/assets/CMakeLists.txt):
    embed_openapi.py <openapi.yaml> <out.cc> [<out.json>].
Fails (exit 1) when the YAML does not parse or a local $ref points nowhere, so a broken
description breaks the build instead of being served.
"""
import json
import sys

import yaml

DELIMITER = "openapi"


def check_refs(node, document, where="#"):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/"):
                raise SystemExit(f"{where}: only local $refs are used here, got {ref}")
            target = document
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SystemExit(f"{where}: $ref {ref} points nowhere")
                target = target[part]
        for key, value in node.items():
            check_refs(value, document, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_refs(value, document, f"{where}/{index}")


def main():
    source, out_cc = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as file:
        document = yaml.safe_load(file)
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3.1"):
        raise SystemExit(f"{source}: not an OpenAPI 3.1 document")
    check_refs(document, document)
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    if f"){DELIMITER}\"" in text:
        raise SystemExit("the JSON contains the raw string's delimiter")
    with open(out_cc, "w", encoding="utf-8") as file:
        file.write("// Generated from docs/openapi.yaml by src/http/assets/embed_openapi.py. Do not edit.\n")
        file.write('#include "http/assets/openapi.h"\n\nnamespace redpacket::http {\n\n')
        file.write(f'std::string_view OpenApiJson() {{\n  return R"{DELIMITER}({text}){DELIMITER}";\n}}\n\n')
        file.write("}  // namespace redpacket::http\n")
    if len(sys.argv) > 3:
        with open(sys.argv[3], "w", encoding="utf-8") as file:
            json.dump(document, file, ensure_ascii=False, indent=2)
            file.write("\n")


if __name__ == "__main__":
    main()
