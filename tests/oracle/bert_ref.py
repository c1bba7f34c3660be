#!/usr/bin/python3
"""Float64 numpy reference for sentence embeddings (hearth's numerical oracle for `hearth embed`).

    /usr/bin/python3 bert_ref.py MODEL.gguf --seqs "101,7592,102;101,2088,999,102" [--pooling mean|cls|last|none]
                                 [--no-normalize] [--types "0,0,0;0,0,0,0"]
        Runs each token sequence through the model on its own and prints JSON on stdout:
        {"dim": E, "pooling": "cls", "normalized": true, "embeddings": [[E floats] per sequence]}
        --pooling none: "embeddings" holds, per sequence, the list of every token's final state.
        --pooling all: "embeddings" is {"mean": [...], "cls": [...], "last": [...]}, each as above.

The model is read from the GGUF by gguf_np.py and computed in float64 from the dequantized weights.

bert (as HF transformers' BertModel, with llama.cpp's GGUF tensor names):
    x = LayerNorm(token_embd[ids] + position_embd[0..n-1] + token_types[types]) (token_embd_norm)
    per layer (post-norm):
        q, k, v = Wq x + bq, Wk x + bk, Wv x + bv; bidirectional attention per head, scale 1/sqrt(head_dim)
        x = LayerNorm(x + Wo attn + bo)                       (attn_output_norm)
        x = LayerNorm(x + Wdown gelu(Wup x + bup) + bdown)    (layer_output_norm), gelu = exact erf GELU
    LayerNorm(v) = (v - mean) / sqrt(var + eps) * w + b, eps = bert.attention.layer_norm_epsilon.
Decoders (general.architecture llama): the final normed hidden states of llama_ref.py's forward pass
(causal, so a token's state depends only on the tokens before it).

Pooling: mean over all tokens ([CLS] and [SEP] included), cls = the first token, last = the last token;
the default is bert.pooling_type (0 none, 1 mean, 2 cls, 3 last), or last for decoders. Then L2 normalisation
unless --no-normalize.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUFError, GGUFFile  # noqa: E402

_POOLING = {0: "none", 1: "mean", 2: "cls", 3: "last"}


class ModelError(Exception):
    pass


def _erf(x):
    # Vectorised math.erf (float64, exact to the last bit of the libm function).
    return np.vectorize(math.erf, otypes=[np.float64])(x)


class BertRef:
    def __init__(self, path):
        self.f = f = GGUFFile(path)
        arch = f.get("general.architecture")
        if arch != "bert":
            raise ModelError("%s: general.architecture is %r; this oracle implements bert" % (path, arch))
        a = "bert."

        def need(key):
            return f.require(a + key)

        self.n_embd = int(need("embedding_length"))
        self.n_layer = int(need("block_count"))
        self.n_head = int(need("attention.head_count"))
        self.n_ff = int(need("feed_forward_length"))
        self.n_ctx = int(need("context_length"))
        self.eps = float(f.get(a + "attention.layer_norm_epsilon", 1e-12))
        if f.get(a + "attention.causal", False):
            raise ModelError("causal bert is not implemented")
        self.pooling = _POOLING.get(int(f.get(a + "pooling_type", 0)), None)
        if self.n_embd % self.n_head:
            raise ModelError("embedding_length %d is not a multiple of head_count %d" % (self.n_embd, self.n_head))
        self.head_dim = self.n_embd // self.n_head
        E, F = self.n_embd, self.n_ff
        self.tok_embd = self._load("token_embd.weight")
        self.n_vocab = self.tok_embd.shape[0]
        self._check(self.tok_embd, (self.n_vocab, E), "token_embd.weight")
        self.types = self._load("token_types.weight")
        self.pos = self._load("position_embd.weight", (self.n_ctx, E))
        self.embd_norm = (self._load("token_embd_norm.weight", (E,)), self._load("token_embd_norm.bias", (E,)))
        self.layers = []
        for il in range(self.n_layer):
            p = "blk.%d." % il
            L = {}
            for name, shape in (("attn_q.weight", (E, E)), ("attn_q.bias", (E,)), ("attn_k.weight", (E, E)),
                                ("attn_k.bias", (E,)), ("attn_v.weight", (E, E)), ("attn_v.bias", (E,)),
                                ("attn_output.weight", (E, E)), ("attn_output.bias", (E,)),
                                ("attn_output_norm.weight", (E,)), ("attn_output_norm.bias", (E,)),
                                ("ffn_up.weight", (F, E)), ("ffn_up.bias", (F,)), ("ffn_down.weight", (E, F)),
                                ("ffn_down.bias", (E,)), ("layer_output_norm.weight", (E,)),
                                ("layer_output_norm.bias", (E,))):
                L[name] = self._load(p + name, shape)
            self.layers.append(L)

    def _load(self, name, shape=None):
        if name not in self.f:
            raise ModelError("%s: missing tensor %s" % (self.f.path, name))
        t = self.f.tensor(name)
        if shape is not None:
            self._check(t, shape, name)
        return t

    @staticmethod
    def _check(t, shape, name):
        if tuple(t.shape) != tuple(shape):
            raise ModelError("tensor %s has numpy shape %s, expected %s" % (name, tuple(t.shape), tuple(shape)))

    def layer_norm(self, x, wb):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * wb[0] + wb[1]

    def forward(self, tokens, types=None):
        """Final hidden states (n, n_embd) of one sequence."""
        tokens = np.asarray(tokens, dtype=np.int64)
        n = tokens.size
        if n == 0 or n > self.n_ctx:
            raise ModelError("sequence of %d tokens (1..%d allowed)" % (n, self.n_ctx))
        if tokens.min() < 0 or tokens.max() >= self.n_vocab:
            raise ModelError("token id outside the vocabulary [0, %d)" % self.n_vocab)
        types = np.zeros(n, dtype=np.int64) if types is None else np.asarray(types, dtype=np.int64)
        H, D = self.n_head, self.head_dim
        x = self.layer_norm(self.tok_embd[tokens] + self.pos[:n] + self.types[types], self.embd_norm)
        for L in self.layers:
            q = (x @ L["attn_q.weight"].T + L["attn_q.bias"]).reshape(n, H, D)
            k = (x @ L["attn_k.weight"].T + L["attn_k.bias"]).reshape(n, H, D)
            v = (x @ L["attn_v.weight"].T + L["attn_v.bias"]).reshape(n, H, D)
            scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(D)
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            attn = np.einsum("hqk,khd->qhd", probs, v).reshape(n, H * D)
            x = self.layer_norm(x + attn @ L["attn_output.weight"].T + L["attn_output.bias"],
                                (L["attn_output_norm.weight"], L["attn_output_norm.bias"]))
            up = x @ L["ffn_up.weight"].T + L["ffn_up.bias"]
            act = 0.5 * up * (1.0 + _erf(up / math.sqrt(2.0)))
            x = self.layer_norm(x + act @ L["ffn_down.weight"].T + L["ffn_down.bias"],
                                (L["layer_output_norm.weight"], L["layer_output_norm.bias"]))
        return x


class DecoderRef:
    """Final normed hidden states of a llama-architecture decoder, from llama_ref.py's forward pass: with the
    output projection replaced by the identity, its 'logits' are the normed hidden states."""

    def __init__(self, path):
        from llama_ref import LlamaRef  # noqa: E402

        self.m = LlamaRef(path)
        self.m.output = np.eye(self.m.n_embd)
        self.n_embd = self.m.n_embd
        self.pooling = _POOLING.get(int(self.m.f.get("llama.pooling_type", 3)), None)

    def forward(self, tokens, types=None):
        return self.m.forward(tokens)


def pool(h, pooling):
    if pooling == "mean":
        return h.mean(axis=0)
    if pooling == "cls":
        return h[0]
    if pooling == "last":
        return h[-1]
    raise ModelError("unknown pooling %r" % pooling)


def _parse_seqs(s, what):
    try:
        return [[int(t) for t in part.split(",") if t.strip() != ""] for part in s.split(";")]
    except ValueError:
        raise ModelError("%s must be ';'-separated lists of comma-separated integers, got %r" % (what, s))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--seqs", required=True, help="token id sequences: '1,2,3;4,5'")
    ap.add_argument("--types", help="token types per sequence, same layout as --seqs (default all 0)")
    ap.add_argument("--pooling", choices=["mean", "cls", "last", "none", "all"], help="default: the model's")
    ap.add_argument("--no-normalize", action="store_true")
    args = ap.parse_args(argv)
    try:
        f = GGUFFile(args.model)
        model = BertRef(args.model) if f.get("general.architecture") == "bert" else DecoderRef(args.model)
        pooling = args.pooling or model.pooling
        if pooling is None:
            raise ModelError("the model declares no known pooling; pass --pooling")
        seqs = _parse_seqs(args.seqs, "--seqs")
        types = _parse_seqs(args.types, "--types") if args.types else [None] * len(seqs)
        if len(types) != len(seqs):
            raise ModelError("--types has %d sequences, --seqs %d" % (len(types), len(seqs)))
        kinds = ["mean", "cls", "last"] if pooling == "all" else [pooling]
        res = {k: [] for k in kinds}
        for s, t in zip(seqs, types):
            h = model.forward(s, t)
            for k in kinds:
                if k == "none":
                    res[k].append(h.tolist())
                    continue
                v = pool(h, k)
                if not args.no_normalize:
                    norm = np.sqrt(np.sum(v * v))
                    v = v / norm if norm > 0 else v
                res[k].append(v.tolist())
        out = res if pooling == "all" else res[pooling]
        res = {"dim": model.n_embd, "pooling": pooling, "normalized": not args.no_normalize, "embeddings": out}
    except (GGUFError, ModelError, OSError) as e:
        print("bert_ref: error: %s" % e, file=sys.stderr)
        return 1
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
