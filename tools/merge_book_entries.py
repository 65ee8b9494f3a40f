"""Merge new glossary rows and references into book/glossary.md and book/references.md.

    python3 tools/merge_book_entries.py --glossary rows.md --references refs.md

``rows.md`` holds table rows ``| English | 中文 | Definition |``; ``refs.md`` holds entries that
each start with a ``(ref-label)=`` line. Existing terms and labels are kept (not duplicated);
both lists are written back sorted alphabetically.
"""
import argparse
import re
from pathlib import Path

ARXIV = re.compile(r"(?<![\[/])arXiv:(\d{4}\.\d{4,5})")
DOI = re.compile(r"(?<![\[/(])\bdoi:\s*(10\.[^\s,;]+?)(?=[.,;]?(?:\s|$))", re.I)
BARE_URL = re.compile(r"(?<![(<\[])(https?://[^\s)>\]]+?)(?=[.,;]?(?:\s|$))")


def link_identifiers(text: str) -> str:
    """Turn arXiv ids, DOIs and bare URLs of reference entries into links."""
    text = ARXIV.sub(r"[arXiv:\1](https://arxiv.org/abs/\1)", text)
    text = DOI.sub(r"[doi:\1](https://doi.org/\1)", text)
    return BARE_URL.sub(r"<\1>", text)

BOOK = Path(__file__).resolve().parents[1] / "book"


def merge_glossary(new_rows: str) -> int:
    path = BOOK / "glossary.md"
    text = path.read_text(encoding="utf-8")
    head, sep, table = text.partition("| --- | --- | --- |\n")
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    tail = "\n".join(line for line in table.splitlines() if line and not line.startswith("| "))
    rows = {line.split("|")[1].strip().lower(): line for line in lines}
    added = 0
    for line in new_rows.splitlines():
        if line.startswith("| ") and not line.startswith("| ---") and not line.startswith("| English"):
            key = line.split("|")[1].strip().lower()
            if key not in rows:
                rows[key] = line.rstrip()
                added += 1
    body = "\n".join(rows[k] for k in sorted(rows))
    path.write_text(head + sep + body + "\n" + (("\n" + tail + "\n") if tail else ""), encoding="utf-8")
    return added


def _entries(text: str) -> dict[str, str]:
    parts = re.split(r"(?m)^(?=\(ref-[\w-]+\)=\s*$)", text)
    return {re.match(r"\(ref-([\w-]+)\)=", p).group(1): p.strip() for p in parts if re.match(r"\(ref-[\w-]+\)=", p)}


def merge_references(new_refs: str) -> int:
    path = BOOK / "references.md"
    text = path.read_text(encoding="utf-8")
    first = re.search(r"(?m)^\(ref-[\w-]+\)=\s*$", text).start()
    head = text[:first]
    entries = _entries(text[first:])
    added = 0
    for label, entry in _entries(new_refs).items():
        if label not in entries:
            entries[label] = entry
            added += 1
    body = "\n\n".join(link_identifiers(entries[k]) for k in sorted(entries))
    path.write_text(head + body + "\n", encoding="utf-8")
    return added


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--glossary")
    parser.add_argument("--references")
    args = parser.parse_args()
    if args.glossary:
        print("glossary rows added:", merge_glossary(Path(args.glossary).read_text(encoding="utf-8")))
    if args.references:
        print("references added:", merge_references(Path(args.references).read_text(encoding="utf-8")))
