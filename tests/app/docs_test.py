"""The documentation keeps up with the code: every long option that
`agentkv serve --help` prints is described in docs/operations.md, and every
relative link of README.md, CONTRIBUTING.md, bench/README.md and docs/*.md leads to a file
that exists and, with a #fragment, to one of its headings (GitHub's anchors).
Standard library only.
Usage: docs_test.py SOURCE_DIR AGENTKV_BINARY (ctest: docs)"""
import glob
import os
import re
import subprocess
import sys
import unittest

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
AGENTKV = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "build", "agentkv")


def docs():
    """README.md, CONTRIBUTING.md, bench/README.md and docs/*.md, under ROOT."""
    return ["README.md", "CONTRIBUTING.md", "bench/README.md"] + sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def prose(text):
    """(line number, line) of a markdown text, fenced code blocks left out."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(```|~~~)", line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            lines.append((number, line))
    return lines


def anchor(heading):
    """GitHub's anchor for a heading: lowercase, punctuation other than
    hyphens and spaces dropped, spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor of a markdown file's headings (repeats get -1, -2...)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    seen, out = {}, set()
    for _, line in prose(text):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        a = anchor(m.group(1))
        out.add(a if a not in seen else f"{a}-{seen[a]}")
        seen[a] = seen.get(a, 0) + 1
    return out


def links(text):
    """(line number, target) of the inline links and images of a markdown
    text, whose text may run over lines; code blocks and spans left out."""
    kept = dict(prose(text))
    lines = [kept.get(n, "") for n in range(1, len(text.splitlines()) + 1)]
    body = "\n".join(lines)
    # A code span may run over one line break; keep the line count.
    body = re.sub(r"`[^`\n]*(?:\n[^`\n]*)?`", lambda m: "\n" * m.group(0).count("\n"), body)
    found = []
    for m in re.finditer(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", body):
        found.append((body.count("\n", 0, m.start(1)) + 1, m.group(1)))
    return found


class Docs(unittest.TestCase):
    def test_every_serve_flag_is_in_operations(self):
        out = subprocess.run([AGENTKV, "serve", "--help"], capture_output=True, text=True,
                             check=True).stdout
        # The options' column: "  --name", "  -m,--name".
        flags = sorted(set(re.findall(r"^\s+(?:-\w,)?(--[A-Za-z0-9][\w-]*)", out, re.M)))
        self.assertGreater(len(flags), 30, out)
        with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as f:
            text = f.read()
        missing = [f for f in flags if not re.search(re.escape(f) + r"(?![\w-])", text)]
        self.assertEqual(missing, [], "flags of `agentkv serve --help` not in docs/operations.md")

    def test_every_relative_link_leads_to_a_file_and_heading(self):
        broken, cache = [], {}
        for doc in docs():
            path = os.path.join(ROOT, doc)
            self.assertTrue(os.path.isfile(path), doc)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for number, target in links(text):
                if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                    continue
                file, _, fragment = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
                if not os.path.exists(dest):
                    broken.append(f"{doc}:{number}: {target}: no such file")
                    continue
                if fragment and dest.endswith(".md"):
                    if dest not in cache:
                        cache[dest] = anchors(dest)
                    if fragment not in cache[dest]:
                        broken.append(f"{doc}:{number}: {target}: no such heading")
        self.assertEqual(broken, [], "broken links")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]])
