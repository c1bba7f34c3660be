#!/usr/bin/python3
"""A corpus folder of rendered man pages, as `hearth data man` writes one: a test fixture for the tokenizer trainer.

Usage: /usr/bin/python3 man_corpus.py OUT_DIR SECTION [SECTION ...] [--max-bytes N]

Every page of /usr/share/man/manSECTION that is a file of its own (symbolic links and `.so` redirections are
other names of pages already there) is rendered with `mandoc -T utf8`, its overstrike (bold "X\\bX", underline
"_\\bX") removed, and written as one {"name", "section", "text"} line to OUT_DIR/train.jsonl or, for about one page
in ten (by a hash of the name, so the split of a page does not depend on which other pages are installed),
OUT_DIR/val.jsonl; OUT_DIR/manifest.json counts them. --max-bytes stops once that much text is written.

mandoc runs once per batch of pages (a process per page costs more than the rendering): it separates the pages of
one run with a line of 78 dashes between blank lines. A batch whose output does not split into one part per page
is rendered again page by page.
"""

import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import zlib

MAN = "/usr/share/man"
SEPARATOR = re.compile(r"\n\n-{78}\n\n")
OVERSTRIKE = re.compile(r".\x08")
BATCH = 200


def read_page(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if path.endswith(".gz") else data


def is_redirect(source):
    for line in source.split(b"\n"):
        if line.startswith(b'.\\"') or line.startswith(b"'\\\"") or not line.strip():
            continue
        return line.startswith(b".so ")
    return True


def render(files, cwd):
    out = subprocess.run(["mandoc", "-T", "utf8"] + files, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout
    return OVERSTRIKE.sub("", out.decode("utf-8", "replace"))


def main():
    args = sys.argv[1:]
    max_bytes = 0
    if "--max-bytes" in args:
        i = args.index("--max-bytes")
        max_bytes = int(args[i + 1])
        del args[i:i + 2]
    if len(args) < 2:
        sys.exit(__doc__)
    out_dir, sections = args[0], args[1:]
    os.makedirs(out_dir, exist_ok=True)
    pages = []
    for section in sections:
        d = os.path.join(MAN, "man" + section)
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            pages.append((section, name[:-3] if name.endswith(".gz") else name, path))

    counts = {"train": 0, "val": 0}
    written = 0
    with tempfile.TemporaryDirectory() as tmp, open(os.path.join(out_dir, "train.jsonl"), "w") as train, \
            open(os.path.join(out_dir, "val.jsonl"), "w") as val:
        for b in range(0, len(pages), BATCH):
            batch = []
            for section, name, path in pages[b:b + BATCH]:
                source = read_page(path)
                if is_redirect(source):
                    continue
                file = "%d_%s" % (len(batch), name)
                with open(os.path.join(tmp, file), "wb") as f:
                    f.write(source)
                batch.append((section, name, file))
            if not batch:
                continue
            texts = SEPARATOR.split(render([f for _, _, f in batch], tmp))
            if len(texts) != len(batch):
                texts = [render([f], tmp) for _, _, f in batch]
            for (section, name, file), text in zip(batch, texts):
                os.remove(os.path.join(tmp, file))
                text = text.strip("\n") + "\n"
                if not text.strip():
                    continue
                split = "val" if zlib.crc32(name.encode()) % 10 == 0 else "train"
                (val if split == "val" else train).write(
                    json.dumps({"name": name, "section": section, "text": text}, ensure_ascii=False) + "\n")
                counts[split] += 1
                written += len(text.encode())
            if max_bytes and written >= max_bytes:
                break
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"source": "man", "sections": sections, "documents": counts, "bytes": written}, f, indent=2)
    print(json.dumps({"documents": counts, "bytes": written}))


if __name__ == "__main__":
    main()
