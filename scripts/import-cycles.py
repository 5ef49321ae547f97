#!/usr/bin/env python3
"""Finds import cycles between the files of a Rust crate's src/ (by `use crate::…`,
`use super::…` and `crate::…`/`super::…` paths in code), resolving each path to the file that
defines it. Module files that only declare and re-export (`mod.rs`, `lib.rs`) are looked
through: a path that names a re-exported item resolves to the file defining it.

    scripts/import-cycles.py src server/src     # exits 1 and prints the cycles, if any
"""
import os
import re
import sys


def module_files(root):
    """Maps module paths ('sync::engine') to files, for one crate root folder."""
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            if rel and rel[0] == "bin":
                continue
            mods["::".join(rel)] = path
    return mods


def reexports(text):
    """Names a module file re-exports, with the module path they come from."""
    out = {}
    for m in re.finditer(r"pub(?:\([^)]*\))?\s+use\s+([\w:]+)::\{([^}]*)\};", text, re.S):
        for name in re.split(r"[,\s]+", m.group(2)):
            if name and name != "self":
                out[name.split(" as ")[-1]] = m.group(1)
    for m in re.finditer(r"pub(?:\([^)]*\))?\s+use\s+([\w:]+)::(\w+);", text):
        out[m.group(2)] = m.group(1)
    return out


def strip_tests(text):
    """The code of a file without its unit tests and comments."""
    i = text.find("#[cfg(test)]")
    text = text if i < 0 else text[:i]
    return re.sub(r"//[^\n]*", "", text)


def resolve(mods, texts, module, path):
    """The file a `crate::`/`super::` path used in `module` points at."""
    parts = path.split("::")
    here = module.split("::") if module else []
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    else:
        base = here[:]
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
    # Longest prefix that is a module; the next part may be a re-exported item.
    for n in range(len(parts), -1, -1):
        cand = "::".join(base + parts[:n])
        if cand in mods:
            rest = parts[n:]
            if rest and cand in texts:
                src = reexports(texts[cand]).get(rest[0])
                if src and not src.startswith("crate::") and not src.startswith("super::"):
                    src = "self::" + src
                if src:
                    src = src.replace("self::", "")
                    target = "::".join(x for x in (cand, src) if x)
                    if target in mods:
                        return mods[target]
            return mods[cand]
    return None


def graph(root):
    mods = module_files(root)
    texts = {m: open(p).read() for m, p in mods.items()}
    edges = {p: set() for p in mods.values()}
    for m, p in mods.items():
        text = strip_tests(texts[m])
        paths = set()
        for u in re.finditer(r"use\s+((?:crate|super)(?:::\w+)*)::\{([^;]*)\};", text, re.S):
            for item in re.split(r",\s*", u.group(2)):
                item = item.strip().split(" as ")[0]
                if item and not item.startswith("{"):
                    paths.add(u.group(1) + "::" + item.split("::")[0] if item != "self" else u.group(1))
        for u in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", text):
            paths.add(u.group(1))
        for path in paths:
            target = resolve(mods, texts, m, path)
            if target and target != p:
                # A module file declaring its children is not a dependency on them.
                edges[p].add(target)
    return edges


def cycles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    found = False
    for root in sys.argv[1:] or ["src"]:
        for comp in cycles(graph(root)):
            found = True
            print(f"cycle through {len(comp)} files in {root}:")
            for f in comp:
                print("  " + f)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
