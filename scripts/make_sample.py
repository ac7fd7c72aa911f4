#!/usr/bin/python3
"""make_sample.py — rebuilds proteus's bundled sample data (data/sample/, data/tokenizers/).

Tokenizes the King James Bible corpus (one JSON object per chapter) with the challenge's sp1024
SentencePiece model through Debian's `spm_encode` and writes token shards in the parameter-golf
format (spec §1.2): each chapter is one document written as BOS (id 1) + its token ids, documents
back to back. The last ~10% of chapters become the validation shard, the rest two training shards
(so multi-shard code paths are exercised).

Also writes data/sample/meta.json with the counts the tests check, in particular `val_norm_bytes`:
the UTF-8 length of the SentencePiece-normalized validation text (NFKC, whitespace runs collapsed
to one space, trimmed), which must equal the sum of per-token BPB bytes (spec §1.3).

Run from the repository root (needs only the standard library and the `spm_encode` binary):

    /usr/bin/python3 scripts/make_sample.py
    /usr/bin/python3 scripts/make_sample.py --corpus PATH --model PATH --out data   # explicit paths
"""
import argparse
import array
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import unicodedata

MAGIC = 20240520
VERSION = 1
BOS = 1


def write_shard(path, tokens):
    """256 little-endian int32 header (magic, version, count, zeros) then uint16 tokens."""
    header = array.array("i", [0] * 256)
    header[0], header[1], header[2] = MAGIC, VERSION, len(tokens)
    body = array.array("H", tokens)
    if sys.byteorder != "little":
        header.byteswap()
        body.byteswap()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(body.tobytes())
    os.replace(tmp, path)


def normalize(text):
    """What SentencePiece's nmt_nfkc normalizer leaves for plain text: NFKC, then leading and
    trailing whitespace removed and every whitespace run turned into one space."""
    t = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", " ", t).strip()


def encode(model, texts):
    """Token ids of each text, via spm_encode (one line per document)."""
    for t in texts:
        if "\n" in t or "\r" in t:
            raise SystemExit("document contains a line break; spm_encode works line by line")
    out = subprocess.run(["spm_encode", "--model=" + model, "--output_format=id"],
                         input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
    lines = out.stdout.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(texts):
        raise SystemExit("spm_encode returned %d lines for %d documents" % (len(lines), len(texts)))
    return [[int(x) for x in line.split()] for line in lines]


def pieces(model, texts):
    out = subprocess.run(["spm_encode", "--model=" + model, "--output_format=piece"],
                         input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
    return out.stdout.rstrip("\n").split("\n")


def stream(docs):
    toks = []
    for d in docs:
        toks.append(BOS)
        toks.extend(d)
    return toks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/work/shared/data/corpus/kjv_chapters.jsonl")
    ap.add_argument("--model", default="/work/shared/data/tokenizers/fineweb_1024_bpe.model")
    ap.add_argument("--out", default="data")
    ap.add_argument("--val-frac", type=float, default=0.10)
    args = ap.parse_args()

    chapters = [json.loads(line) for line in open(args.corpus, encoding="utf-8") if line.strip()]
    texts = [c["text"] for c in chapters]
    n_val = int(round(len(texts) * args.val_frac))
    train_texts, val_texts = texts[:-n_val], texts[-n_val:]

    ids = encode(args.model, texts)
    for i, doc in enumerate(ids):
        if not doc:
            raise SystemExit("chapter %s encodes to no tokens" % chapters[i]["title"])
        if max(doc) >= 1024:
            raise SystemExit("token id >= 1024 in %s" % chapters[i]["title"])
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]

    # Cross-check the normalization against SentencePiece's own pieces: joining the pieces and
    # turning U+2581 into spaces must give back the normalized text of every val document.
    val_norm_bytes = 0
    for text, pcs in zip(val_texts, pieces(args.model, val_texts)):
        norm = normalize(text)
        joined = pcs.replace(" ", "").replace("\u2581", " ")
        if joined != norm:
            raise SystemExit("normalization mismatch for a val document:\n%r\n%r" % (joined[:200], norm[:200]))
        val_norm_bytes += len(norm.encode("utf-8"))

    sample = os.path.join(args.out, "sample")
    tokdir = os.path.join(args.out, "tokenizers")
    os.makedirs(sample, exist_ok=True)
    os.makedirs(tokdir, exist_ok=True)

    half = len(train_ids) // 2
    train_parts = [train_ids[:half], train_ids[half:]]
    shards = {}
    for k, part in enumerate(train_parts):
        name = "fineweb_train_%06d.bin" % k
        toks = stream(part)
        write_shard(os.path.join(sample, name), toks)
        shards[name] = {"tokens": len(toks), "docs": len(part)}
    val_toks = stream(val_ids)
    write_shard(os.path.join(sample, "fineweb_val_000000.bin"), val_toks)
    shards["fineweb_val_000000.bin"] = {"tokens": len(val_toks), "docs": len(val_ids)}

    model_dst = os.path.join(tokdir, "fineweb_1024_bpe.model")
    shutil.copyfile(args.model, model_dst)
    vocab_src = os.path.splitext(args.model)[0] + ".vocab"
    if os.path.exists(vocab_src):
        shutil.copyfile(vocab_src, os.path.join(tokdir, "fineweb_1024_bpe.vocab"))
    sha = hashlib.sha256(open(args.model, "rb").read()).hexdigest()

    meta = {
        "source": "King James Version (public domain), corpus/kjv_chapters.jsonl, one document per chapter",
        "tokenizer": "tokenizers/fineweb_1024_bpe.model",
        "tokenizer_sha256": sha,
        "chapters": len(texts),
        "val_first_chapter": chapters[-n_val]["title"],
        "shards": shards,
        "val_tokens": len(val_toks),
        "val_docs": len(val_ids),
        "val_targets": len(val_toks) - 1,
        "val_raw_bytes": sum(len(t.encode("utf-8")) for t in val_texts),
        "val_norm_bytes": val_norm_bytes,
        "train_tokens": sum(len(stream(p)) for p in train_parts),
        "train_docs": len(train_ids),
        "command": "/usr/bin/python3 scripts/make_sample.py",
    }
    with open(os.path.join(sample, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(meta, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
