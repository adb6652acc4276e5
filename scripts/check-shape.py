#!/usr/bin/env python3
"""The code-shape rules of docs/architecture.md, checked on every Rust file of the workspace.

  * no source file over 700 lines (tests included);
  * no function over 80 lines in crates/linkner/src and crates/linkner-llm/src, none over 120
    anywhere else outside tests (`tests/` folders and `#[cfg(test)]` modules are not counted).

A function's length is counted from its `fn` line to the closing brace at the same indentation,
which is where rustfmt puts it (the tree is `cargo fmt` clean, checked before this). Prints every
violation and exits 1 when there is one; `--top N` also lists the N longest functions.

    python3 scripts/check-shape.py [ROOT] [--top N]
"""
import os
import re
import sys

MAX_FILE_LINES = 700
STRICT_DIRS = ("crates/linkner/src/", "crates/linkner-llm/src/")
STRICT_FN_LINES = 80
FN_LINES = 120
FN_RE = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)")


def rust_files(root):
    for base in ("crates", "tests", "examples", "benches"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, base)):
            dirnames[:] = [d for d in dirnames if d != "target"]
            for name in filenames:
                if name.endswith(".rs"):
                    yield os.path.join(dirpath, name)


def is_test_file(rel):
    return rel.startswith("tests/") or "/tests/" in rel


def functions(lines):
    """(name, first line, length) of every function outside `#[cfg(test)] mod` blocks."""
    skip_until = None
    for i, line in enumerate(lines):
        if skip_until is not None:
            if i <= skip_until:
                continue
            skip_until = None
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines):
            m = re.match(r"^(\s*)(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", lines[i + 1])
            if m:
                skip_until = block_end(lines, i + 1, m.group(1))
                continue
        m = FN_RE.match(line)
        if not m:
            continue
        end = block_end(lines, i, m.group(1))
        if end is not None:
            yield m.group(8), i + 1, end - i + 1


def block_end(lines, start, indent):
    """The line of the `}` closing the item that starts at `start` (rustfmt layout), or None
    for a declaration without a body."""
    for j in range(start, len(lines)):
        text = lines[j].rstrip()
        if j == start and text.endswith("}") and "{" in text:
            return j  # a one-line body
        if text.endswith(";") and not any("{" in lines[k] for k in range(start, j + 1)):
            return None  # `fn f(...);` in a trait
        if j > start and (text == indent + "}" or text.startswith(indent + "} ")):
            return j
    return None


def main():
    args = sys.argv[1:]
    top = 0
    if "--top" in args:
        k = args.index("--top")
        top = int(args[k + 1])
        del args[k : k + 2]
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    problems, all_fns = [], []
    for path in sorted(rust_files(root)):
        rel = os.path.relpath(path, root)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        n = len(lines) - (1 if lines and lines[-1] == "" else 0)
        if n > MAX_FILE_LINES:
            problems.append(f"{rel}: {n} lines (at most {MAX_FILE_LINES})")
        if is_test_file(rel):
            continue
        limit = STRICT_FN_LINES if rel.startswith(STRICT_DIRS) else FN_LINES
        for name, line, length in functions(lines):
            all_fns.append((length, f"{rel}:{line} {name}"))
            if length > limit:
                problems.append(f"{rel}:{line}: fn {name} is {length} lines (at most {limit})")
    for length, where in sorted(all_fns, reverse=True)[:top]:
        print(f"{length:5} {where}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} code-shape rule(s) broken (see docs/architecture.md)", file=sys.stderr)
        return 1
    print(f"code shape: {len(all_fns)} functions checked, every file and function within its limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
