#!/usr/bin/env python3
"""The public items of each library crate, one canonical path each, read from the sources.

An item's canonical path is its crate-root re-export when it has one (`linkner_core::Sentence`),
else the public module that defines or re-exports it (`linkner_core::io::conll::read_conll`).
Items of `#[doc(hidden)]` modules are not listed (they are not part of the supported API).

    python3 scripts/public-items.py            # prints the Markdown section
    python3 scripts/public-items.py --check    # fails when docs/architecture.md's section differs,
                                               # or when a crate re-exports another crate's item

The check also enforces the rule of docs/architecture.md, "The public surface": no library crate
re-exports an item of another workspace crate (the facade `linkner` re-exports whole crates as
modules: `linkner::core`, `linkner::llm`, …), so every item has one path per crate that defines it.
"""
import os
import re
import sys

CRATES = [
    "linkner-core",
    "linkner-uncertainty",
    "linkner-llm",
    "linkner-tagger",
    "linkner",
    "linkner-serve",
]
DOC = "docs/architecture.md"
BEGIN = "<!-- public-items:begin (scripts/public-items.py writes this list) -->"
END = "<!-- public-items:end -->"
ITEM = re.compile(
    r"^pub (?:async )?(?:unsafe )?(struct|enum|trait|fn|type|const|static|union)\s+(\w+)"
)
MACRO = re.compile(r"^macro_rules!\s+(\w+)")
MOD = re.compile(r"^(pub )?mod (\w+);")
USE_ONE = re.compile(r"^pub use ([\w:]+)::(\w+)(?: as (\w+))?;")
USE_GROUP = re.compile(r"^pub use ([\w:]+)::\{(.*)")
WORKSPACE_CRATES = {c.replace("-", "_") for c in CRATES}


def module_file(directory, name):
    for candidate in (os.path.join(directory, name + ".rs"), os.path.join(directory, name, "mod.rs")):
        if os.path.exists(candidate):
            return candidate
    return None


def child_dir(path):
    if os.path.basename(path) in ("mod.rs", "lib.rs"):
        return os.path.dirname(path)
    return path[: -len(".rs")]


def attributes_before(lines, i):
    """The attribute lines right above line i."""
    attrs, j = [], i - 1
    while j >= 0 and lines[j].strip().startswith(("#[", "///", "//")):
        attrs.append(lines[j].strip())
        j -= 1
    return attrs


def walk(path, modpath, public, defs, uses, problems, crate):
    """Collects (path, kind) definitions and (path, target) re-exports of module `path`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    directory = child_dir(path)
    i = 0
    while i < len(lines):
        line = lines[i]
        attrs = attributes_before(lines, i)
        if any("cfg(test)" in a or "cfg(doctest)" in a for a in attrs):
            i += 1
            continue
        m = MOD.match(line)
        if m:
            f = module_file(directory, m.group(2))
            if f:
                visible = public and m.group(1) is not None and not any("doc(hidden)" in a for a in attrs)
                walk(f, modpath + [m.group(2)], visible, defs, uses, problems, crate)
            i += 1
            continue
        m = ITEM.match(line)
        if m and public and not any("doc(hidden)" in a for a in attrs):
            defs.append(("::".join(modpath + [m.group(2)]), m.group(1)))
        m = MACRO.match(line)
        if m and any("macro_export" in a for a in attrs):
            defs.append((crate + "::" + m.group(1), "macro"))
        targets = []
        m = USE_ONE.match(line)
        if m:
            targets.append((m.group(1), m.group(2), m.group(3) or m.group(2)))
        m = USE_GROUP.match(line)
        if m:
            base, rest = m.group(1), m.group(2)
            while "}" not in rest:
                i += 1
                rest += " " + lines[i].strip()
            for part in rest.split("}")[0].split(","):
                part = part.strip()
                if not part:
                    continue
                name, _, alias = part.partition(" as ")
                targets.append((base, name.strip(), (alias or name).strip()))
        if public and targets:
            for base, name, alias in targets:
                root = base.split("::")[0]
                # `async_trait` is the async-trait crate's macro, passed on for backends.
                if root in WORKSPACE_CRATES and root != crate and name not in ("self", "async_trait"):
                    problems.append(
                        f"{path}: re-exports {base}::{name}, an item of another workspace crate"
                    )
                if name in ("self", "*"):
                    continue
                uses.append(("::".join(modpath + [alias]), name))
        i += 1


def crate_items(crate, problems):
    name = crate.replace("-", "_")
    defs, uses = [], []
    walk(os.path.join("crates", crate, "src", "lib.rs"), [name], True, defs, uses, problems, name)
    # The canonical path of a defined item: a crate-root re-export of its name, else the
    # shortest public re-export, else its definition path.
    by_name = {}
    for path, _target in uses:
        by_name.setdefault(path.split("::")[-1], []).append(path)
    items = {}
    for path, kind in defs:
        short = path.split("::")[-1]
        candidates = [path] + by_name.get(short, [])
        root = [p for p in candidates if p.count("::") == 1]
        canonical = root[0] if root else min(candidates, key=lambda p: (p.count("::"), p))
        items[canonical] = kind
    # Re-exports of items defined in private modules (the definition is not public).
    public_names = {p.split("::")[-1] for p in items}
    for path, target in uses:
        short = path.split("::")[-1]
        if short not in public_names and not short[0].islower() or (
            short not in public_names and short[0].islower() and path.count("::") >= 1
        ):
            if short in public_names:
                continue
            root = [p for p, _ in uses if p.split("::")[-1] == short and p.count("::") == 1]
            canonical = root[0] if root else path
            items.setdefault(canonical, "re-export")
            public_names.add(short)
    return items


def markdown():
    problems = []
    out = [BEGIN, ""]
    for crate in CRATES:
        items = crate_items(crate, problems)
        groups = {}
        for path, kind in items.items():
            module = "::".join(path.split("::")[:-1])
            groups.setdefault(module, []).append(path.split("::")[-1])
        total = len(items)
        out.append(f"**{crate}** ({total} items)")
        out.append("")
        for module in sorted(groups, key=lambda m: (m.count("::"), m)):
            names = ", ".join(f"`{n}`" for n in sorted(groups[module], key=str.lower))
            out.append(f"- `{module}`: {names}")
        out.append("")
    out.append(END)
    return "\n".join(out), problems


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
    os.chdir(root)
    text, problems = markdown()
    if "--check" not in sys.argv:
        print(text)
    else:
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
        if BEGIN not in doc or END not in doc:
            problems.append(f"{DOC} has no public-items section (markers {BEGIN!r} … {END!r})")
        else:
            current = doc[doc.index(BEGIN) : doc.index(END) + len(END)]
            if current != text:
                problems.append(
                    f"{DOC}: the public-items list is not the crates' public items; regenerate it "
                    "with `python3 scripts/public-items.py --write`"
                )
    if "--write" in sys.argv:
        with open(DOC, encoding="utf-8") as f:
            doc = f.read()
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(doc)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
