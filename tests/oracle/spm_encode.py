#!/usr/bin/python3
"""SentencePiece's own encoding of each document of a corpus split: the oracle for hearth's SPM tokenizers.

Usage: /usr/bin/python3 spm_encode.py MODEL SPLIT.jsonl OUT

MODEL is a SentencePiece .model file; SPLIT.jsonl has one {"text": ...} object a line. OUT gets one line per
document: the ids of SentencePieceProcessor.encode(text), space-separated (no BOS: the caller adds it).
Needs Debian's python3-sentencepiece (run with /usr/bin/python3).
"""

import json
import sys

import sentencepiece as spm


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model, split, out = sys.argv[1:4]
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(split, encoding="utf-8") as f, open(out, "w") as o:
        for line in f:
            if not line.strip():
                continue
            ids = sp.encode(json.loads(line)["text"])
            o.write(" ".join(map(str, ids)) + "\n")


if __name__ == "__main__":
    main()
