#!/usr/bin/python3
"""Our own byte-level BPE vocabulary, in CLIPTokenizer's file format.

The vocabulary is laid out as CLIP's: the 256 byte-unicode symbols (GPT-2
bytes_to_unicode order), the same 256 with "</w>", one entry per merge,
then <|startoftext|> and <|endoftext|>. The merges are learnt from the
captions the shapes grammar produces (every word of it becomes one token),
so the whole vocabulary is a few hundred entries. No OpenAI file is used.

ClipBPE is a Python twin of CLIPTokenizer's encoding for these files (used by
the training script; the C tokenizer reads the same files).

  /usr/bin/python3 tools/shapes/make_tokenizer.py OUT_DIR [--max-length 16]
"""
import argparse
import collections
import json
import os
import sys

import regex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data  # noqa: E402

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                    regex.IGNORECASE)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_ENC = bytes_to_unicode()


def words_of(text):
    """CLIPTokenizer's pre-tokenization for plain ASCII text: clean whitespace,
    lower-case, split with CLIP's pattern, map bytes to the unicode alphabet."""
    text = " ".join(text.split()).lower()
    return ["".join(BYTE_ENC[b] for b in w.encode("utf-8")) for w in PAT.findall(text)]


def learn_merges(captions):
    """Greedy BPE on the caption words until every word is one symbol; ties go
    to the lexicographically smallest pair, so the result is deterministic."""
    freq = collections.Counter(w for c in captions for w in words_of(c))
    words = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in freq}
    merges = []
    while True:
        pairs = collections.Counter()
        for w, syms in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[a, b] += freq[w]
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = tuple(out)


def build_vocab(merges):
    syms = list(BYTE_ENC.values())
    vocab = syms + [s + "</w>" for s in syms] + ["".join(m) for m in merges] + [BOS, EOS]
    return {s: i for i, s in enumerate(vocab)}


class ClipBPE:
    """CLIPTokenizer(padding="max_length", truncation=True) for our files."""

    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:]
        self.ranks = {tuple(m.split()): i for i, m in enumerate(lines)}
        with open(os.path.join(folder, "tokenizer_config.json")) as f:
            self.max_length = json.load(f)["model_max_length"]
        self.bos, self.eos = self.vocab[BOS], self.vocab[EOS]
        self.pad = self.eos

    def bpe(self, w):
        word = tuple(w[:-1]) + (w[-1] + "</w>",)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    def tokenize(self, text):
        return [t for w in words_of(text) for t in self.bpe(w)]

    def encode(self, text):
        ids = [self.vocab.get(t, self.eos) for t in self.tokenize(text)]  # unk = <|endoftext|>
        ids = [self.bos] + ids[:self.max_length - 2] + [self.eos]
        return ids + [self.pad] * (self.max_length - len(ids))


def write_tokenizer(out, captions, max_length):
    os.makedirs(out, exist_ok=True)
    merges = learn_merges(captions)
    vocab = build_vocab(merges)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))

    def tok(content):
        return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}

    special = {"bos_token": tok(BOS), "eos_token": tok(EOS), "pad_token": EOS, "unk_token": tok(EOS)}
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        f.write(json.dumps(special, indent=2) + "\n")
    cfg = {"add_prefix_space": False, "bos_token": {"__type": "AddedToken", **tok(BOS)}, "do_lower_case": True,
           "eos_token": {"__type": "AddedToken", **tok(EOS)}, "errors": "replace", "model_max_length": max_length,
           "pad_token": EOS, "tokenizer_class": "CLIPTokenizer",
           "unk_token": {"__type": "AddedToken", **tok(EOS)}}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2) + "\n")
    return vocab, merges


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--max-length", type=int, default=16)
    args = ap.parse_args()
    caps = make_data.all_words()
    vocab, merges = write_tokenizer(args.out, caps, args.max_length)
    tk = ClipBPE(args.out)
    longest = max(len(tk.tokenize(c)) + 2 for c in caps)
    print(f"{len(merges)} merges, {len(vocab)} vocabulary entries; longest caption {longest} tokens "
          f"(model_max_length {args.max_length})")
    if longest > args.max_length:
        sys.exit("captions do not fit model_max_length")


if __name__ == "__main__":
    main()
