#!/usr/bin/env python3
"""Replace one benchmark's section of bench/RESULTS.md, leaving the other sections alone.

usage: results_section.py RESULTS.md NAME < SECTION.md

A section is everything between the lines `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
The text on stdin replaces that section's content; when the file or the section is missing
it is created (a new section goes at the end of the file). Each bench script owns one
section (bench/profile.sh: `profile`, bench/clean.sh: `clean`, bench/pii.sh: `pii`). The file is rewritten
through a temporary file and a rename, so it is never left half written. Standard library
only. Exit status 1 when the file has only one of the two markers, or more than one of
either (nothing is written then).
"""
import os
import sys
import tempfile


def splice(text, name, body):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    body = body.strip("\n") + "\n"
    block = f"{begin}\n{body}{end}\n"
    lines = text.splitlines(keepends=True)
    b = [i for i, l in enumerate(lines) if l.strip() == begin]
    e = [i for i, l in enumerate(lines) if l.strip() == end]
    if not b and not e:
        if not text.strip():
            return block
        return text.rstrip("\n") + "\n\n" + block
    if len(b) != 1 or len(e) != 1 or e[0] < b[0]:
        raise ValueError(f"{len(b)} `{begin}` and {len(e)} `{end}` lines, or end before begin")
    return "".join(lines[:b[0]]) + block + "".join(lines[e[0] + 1:])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    path, name = sys.argv[1], sys.argv[2]
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    try:
        new = splice(text, name, sys.stdin.read())
    except ValueError as e:
        print(f"results_section.py: {path}: {e}", file=sys.stderr)
        return 1
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".results_section.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
