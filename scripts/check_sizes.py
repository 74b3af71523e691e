#!/usr/bin/env python3
"""Reports the functions over --max-function lines in the given folders and the source files over
--max-file lines anywhere but tests/, and exits 1 when there is one.

    scripts/check_sizes.py [--root DIR] [--max-function 80] [--max-file 600] [FOLDER ...]

A function is a brace block opened at namespace or class level by a line that looks like a
definition (a parameter list before the brace); its length counts the lines from its signature's
first line to its closing brace. Lambdas and blocks inside a function count towards it.
"""
import argparse
import os
import re
import sys

SOURCE = (".cc", ".h", ".cu")


def strip(text):
    """The text with comments, string and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"' and text[max(0, i - 1)] == "R" and text.startswith('"(', i):  # raw string R"(...)"
            j = text.find(')"', i)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, last line) of the function bodies at namespace or class level."""
    text = strip(open(path, encoding="utf-8", errors="replace").read())
    lines = text.split("\n")
    found, depth, scopes = [], 0, []  # scopes: stack of "ns" / "class" / "fn" / "block"
    line_of = []
    for k, line in enumerate(lines):
        line_of.extend([k] * (len(line) + 1))
    i, start_of_statement = 0, 0
    while i < len(text):
        c = text[i]
        if c == "{":
            head = text[start_of_statement:i]
            in_function = "fn" in scopes
            kind = "block"
            if not in_function:
                if re.search(r"\b(namespace)\b", head) or head.strip().startswith("extern"):
                    kind = "ns"
                elif re.search(r"\b(class|struct|union|enum)\b[^()]*$", head):
                    kind = "class"
                elif ")" in head and "(" in head and not re.search(r"=\s*$", head.strip()):
                    kind = "fn"
            if kind == "fn":
                first = line_of[start_of_statement + len(head) - len(head.lstrip())]
                name = re.findall(r"([A-Za-z_~][\w:<>~]*)\s*\(", head)
                scopes.append(("fn", first, name[0] if name else "?"))
            else:
                scopes.append((kind, None, None))
            start_of_statement = i + 1
        elif c == "}":
            if scopes:
                kind, first, name = scopes.pop()
                if kind == "fn" and "fn" not in [s[0] for s in scopes]:
                    found.append((name, first + 1, line_of[i] + 1))
            start_of_statement = i + 1
        elif c == ";":
            start_of_statement = i + 1
        elif c == ":" and text.startswith("public:", i - 6) | text.startswith("private:", i - 7) | text.startswith(
                "protected:", i - 9):
            start_of_statement = i + 1
        i += 1
    return found


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    p.add_argument("--max-function", type=int, default=80)
    p.add_argument("--max-file", type=int, default=600)
    p.add_argument("folders", nargs="*", default=["core", "io", "apps", "components"])
    a = p.parse_args()
    bad = 0
    for folder in a.folders:
        for dirpath, _, files in os.walk(os.path.join(a.root, folder)):
            for f in sorted(files):
                if not f.endswith(SOURCE):
                    continue
                path = os.path.join(dirpath, f)
                for name, first, last in functions(path):
                    if last - first + 1 > a.max_function:
                        print(f"{os.path.relpath(path, a.root)}:{first}: {name}: {last - first + 1} lines "
                              f"(over {a.max_function})")
                        bad += 1
    for dirpath, dirs, files in os.walk(a.root):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build")) and d not in ("tests", "runs")]
        for f in sorted(files):
            if f.endswith(SOURCE):
                path = os.path.join(dirpath, f)
                n = sum(1 for _ in open(path, encoding="utf-8", errors="replace"))
                if n > a.max_file:
                    print(f"{os.path.relpath(path, a.root)}: {n} lines (over {a.max_file})")
                    bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
