#!/usr/bin/env python3
"""Checks that the workspace's `rust-version` is at least what every locked dependency of the
product (normal and build dependencies of the workspace members, and their dev-dependencies)
declares, so a compiler that is too old gets cargo's clear "requires rustc X" message instead
of a build error deep in a dependency. This machine has one toolchain, so building with the
declared version is not possible here; the lock file's declarations are what can be checked."""
import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"]))
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    declared = {packages[m].get("rust_version") for m in members}
    if len(declared) != 1 or None in declared:
        sys.exit(f"msrv: workspace members disagree on rust-version: {declared}")
    ours = declared.pop()

    seen, stack = set(), list(members)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for dep in nodes[pid]["deps"]:
            kinds = {k["kind"] for k in dep["dep_kinds"]}
            # Dev-dependencies count for the members themselves (their tests must build too).
            if pid in members or kinds != {"dev"}:
                stack.append(dep["pkg"])

    needs = sorted(
        ((version(packages[p]["rust_version"]), packages[p]["name"], packages[p]["version"])
         for p in seen - members if packages[p].get("rust_version")),
        reverse=True)
    too_new = [n for n in needs if n[0] > version(ours)]
    if too_new:
        for need, name, ver in too_new:
            print(f"msrv: {name} {ver} needs rustc {'.'.join(map(str, need))}", file=sys.stderr)
        sys.exit(f"msrv: rust-version = \"{ours}\" is too low; raise it in Cargo.toml")
    need, name, ver = needs[0]
    print(f"msrv: rust-version {ours} covers every locked dependency "
          f"(the highest: {name} {ver} needs {'.'.join(map(str, need))})")


if __name__ == "__main__":
    main()
