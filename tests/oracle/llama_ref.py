#!/usr/bin/python3
"""Float64 numpy reference forward pass for llama-architecture GGUF models (hearth's numerical oracle).

    /usr/bin/python3 llama_ref.py MODEL.gguf --tokens 1,2,3 [--all-positions]
        Runs the tokens at positions 0..n-1 and prints JSON on stdout:
        {"n_vocab": V, "n_tokens": n, "logits": [V floats]}          (last position)
        {"n_vocab": V, "n_tokens": n, "logits": [[V floats] x n]}    (--all-positions)

    /usr/bin/python3 llama_ref.py MODEL.gguf --golden GOLDEN.json
        Checks the oracle against a conformance golden: for every prompt, compares the last-position
        logits with row 2i of the golden's .logits.f32 and, unless --prompt-only, the logits after the
        prompt plus the 16 greedy tokens with row 2i+1. Prints max |delta| per row and overall as JSON.

Everything is computed in float64 from the dequantized weights (see gguf_np.py for the tensor types),
with exact softmax, SiLU and rope; nothing is rounded to f16 along the way.

The model (llama.cpp's llama graph):
    x = token_embd[tokens]
    per layer: h = rmsnorm(x) * attn_norm
               q, k, v = Wq h, Wk h, Wv h; rope(q), rope(k) (NORM style: adjacent pairs (2i, 2i+1))
               grouped-query causal attention, scale 1/sqrt(head_dim); x += Wo attn
               h = rmsnorm(x) * ffn_norm; x += Wdown(silu(Wgate h) * Wup h)
    logits = output (or token_embd when absent) x rmsnorm(x) * output_norm
Rope: theta_i = freq_scale * pos * base^(-2i/n_rot) / factor_i, where factor_i comes from the
rope_freqs.weight tensor when present (llama3-style scaling), or is computed from the llama3 scaling keys
when rope.scaling.type is "llama3" and the tensor is absent; freq_scale = 1/rope.scaling.factor for
"linear" scaling, else 1. Only the first n_rot = rope.dimension_count dims of each head are rotated.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUFError, GGUFFile  # noqa: E402


class ModelError(Exception):
    pass


class LlamaRef:
    def __init__(self, path):
        self.f = GGUFFile(path)
        f = self.f
        arch = f.get("general.architecture")
        if arch != "llama":
            raise ModelError("%s: general.architecture is %r; this oracle implements llama only" % (path, arch))
        a = "llama."

        def need(key):
            return f.require(a + key)

        self.n_embd = int(need("embedding_length"))
        self.n_layer = int(need("block_count"))
        self.n_head = int(need("attention.head_count"))
        self.n_head_kv = int(f.get(a + "attention.head_count_kv", self.n_head))
        if self.n_head <= 0 or self.n_head_kv <= 0 or self.n_head % self.n_head_kv:
            raise ModelError("head_count %d is not a positive multiple of head_count_kv %d" % (self.n_head, self.n_head_kv))
        self.head_dim_k = int(f.get(a + "attention.key_length", self.n_embd // self.n_head))
        self.head_dim_v = int(f.get(a + "attention.value_length", self.head_dim_k))
        self.n_rot = int(f.get(a + "rope.dimension_count", self.head_dim_k))
        if self.n_rot % 2 or self.n_rot > self.head_dim_k:
            raise ModelError("rope.dimension_count %d must be even and <= head dim %d" % (self.n_rot, self.head_dim_k))
        self.eps = float(f.get(a + "attention.layer_norm_rms_epsilon", 1e-5))
        self.rope_base = float(f.get(a + "rope.freq_base", 10000.0))

        scaling_type = f.get(a + "rope.scaling.type", "none")
        if scaling_type not in ("none", "linear", "llama3"):
            raise ModelError("rope.scaling.type %r is not implemented (none, linear, llama3)" % scaling_type)
        scaling_factor = float(f.get(a + "rope.scaling.factor", 1.0) or 1.0)
        self.freq_scale = 1.0 / scaling_factor if scaling_type == "linear" else 1.0
        if "rope_freqs.weight" in f:
            factors = f.tensor("rope_freqs.weight").reshape(-1)
            if factors.size != self.n_rot // 2:
                raise ModelError("rope_freqs.weight has %d values, expected n_rot/2 = %d" % (factors.size, self.n_rot // 2))
        elif scaling_type == "llama3":
            factors = self._llama3_factors(scaling_factor,
                                           float(f.get(a + "rope.scaling.low_freq_factor", 1.0)),
                                           float(f.get(a + "rope.scaling.high_freq_factor", 4.0)),
                                           float(f.get(a + "rope.scaling.original_context_length", 8192)))
        else:
            factors = np.ones(self.n_rot // 2)
        self.rope_factors = factors

        self.tok_embd = f.tensor("token_embd.weight")
        self.n_vocab = self.tok_embd.shape[0]
        self._check_shape(self.tok_embd, (self.n_vocab, self.n_embd), "token_embd.weight")
        self.layers = []
        q_dim, kv_dim, v_dim = self.n_head * self.head_dim_k, self.n_head_kv * self.head_dim_k, self.n_head_kv * self.head_dim_v
        for il in range(self.n_layer):
            p = "blk.%d." % il
            L = {}
            for name, shape in (("attn_norm", (self.n_embd,)), ("attn_q", (q_dim, self.n_embd)),
                                ("attn_k", (kv_dim, self.n_embd)), ("attn_v", (v_dim, self.n_embd)),
                                ("attn_output", (self.n_embd, self.n_head * self.head_dim_v)),
                                ("ffn_norm", (self.n_embd,)), ("ffn_gate", None), ("ffn_up", None), ("ffn_down", None)):
                t = self._load(p + name + ".weight")
                if shape is not None:
                    self._check_shape(t, shape, p + name + ".weight")
                L[name] = t
            n_ff = L["ffn_gate"].shape[0]
            self._check_shape(L["ffn_gate"], (n_ff, self.n_embd), p + "ffn_gate.weight")
            self._check_shape(L["ffn_up"], (n_ff, self.n_embd), p + "ffn_up.weight")
            self._check_shape(L["ffn_down"], (self.n_embd, n_ff), p + "ffn_down.weight")
            self.layers.append(L)
        self.out_norm = self._load("output_norm.weight")
        self._check_shape(self.out_norm, (self.n_embd,), "output_norm.weight")
        self.output = f.tensor("output.weight") if "output.weight" in f else self.tok_embd
        self._check_shape(self.output, (self.n_vocab, self.n_embd), "output.weight")

    def _load(self, name):
        if name not in self.f:
            raise ModelError("%s: missing tensor %s" % (self.f.path, name))
        return self.f.tensor(name)

    @staticmethod
    def _check_shape(t, shape, name):
        if tuple(t.shape) != tuple(shape):
            raise ModelError("tensor %s has numpy shape %s, expected %s" % (name, tuple(t.shape), tuple(shape)))

    def _llama3_factors(self, factor, low_freq_factor, high_freq_factor, original_ctx):
        # Llama 3.1 frequency scaling, as the HF → GGUF converter bakes it into rope_freqs.weight.
        low_wavelen = original_ctx / low_freq_factor
        high_wavelen = original_ctx / high_freq_factor
        out = []
        for i in range(self.n_rot // 2):
            freq = self.rope_base ** (-2.0 * i / self.n_rot)
            wavelen = 2.0 * math.pi / freq
            if wavelen < high_wavelen:
                out.append(1.0)
            elif wavelen > low_wavelen:
                out.append(factor)
            else:
                smooth = (original_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
                out.append(1.0 / ((1.0 - smooth) / factor + smooth))
        return np.array(out)

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, positions):
        """x: (n_tokens, n_heads, head_dim). Rotates adjacent pairs (2i, 2i+1) of the first n_rot dims."""
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        inv_freq = self.rope_base ** (-2.0 * i / self.n_rot) / self.rope_factors
        theta = self.freq_scale * positions[:, None].astype(np.float64) * inv_freq[None, :]   # (n, n_rot/2)
        cos = np.cos(theta)[:, None, :]
        sin = np.sin(theta)[:, None, :]
        out = x.copy()
        x0 = x[:, :, 0:self.n_rot:2]
        x1 = x[:, :, 1:self.n_rot:2]
        out[:, :, 0:self.n_rot:2] = x0 * cos - x1 * sin
        out[:, :, 1:self.n_rot:2] = x0 * sin + x1 * cos
        return out

    def forward(self, tokens):
        """Logits (n_tokens, n_vocab) for tokens at positions 0..n-1."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or tokens.size == 0:
            raise ModelError("need a non-empty list of tokens")
        bad = tokens[(tokens < 0) | (tokens >= self.n_vocab)]
        if bad.size:
            raise ModelError("token id %d is outside the vocabulary [0, %d)" % (bad[0], self.n_vocab))
        n = tokens.size
        pos = np.arange(n)
        group = self.n_head // self.n_head_kv
        scale = 1.0 / math.sqrt(self.head_dim_k)
        causal = np.triu(np.ones((n, n), dtype=bool), k=1)  # True above the diagonal = future keys

        x = self.tok_embd[tokens]                                           # (n, n_embd)
        for L in self.layers:
            h = self.rmsnorm(x, L["attn_norm"])
            q = (h @ L["attn_q"].T).reshape(n, self.n_head, self.head_dim_k)
            k = (h @ L["attn_k"].T).reshape(n, self.n_head_kv, self.head_dim_k)
            v = (h @ L["attn_v"].T).reshape(n, self.n_head_kv, self.head_dim_v)
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            k = np.repeat(k, group, axis=1)                                 # query head h uses kv head h // group
            v = np.repeat(v, group, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, k) * scale                # (n_head, n, n)
            scores[:, causal] = -np.inf
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            attn = np.einsum("hqk,khd->qhd", probs, v).reshape(n, self.n_head * self.head_dim_v)
            x = x + attn @ L["attn_output"].T

            h = self.rmsnorm(x, L["ffn_norm"])
            gate = h @ L["ffn_gate"].T
            up = h @ L["ffn_up"].T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ L["ffn_down"].T
        x = self.rmsnorm(x, self.out_norm)
        return x @ self.output.T


def _parse_tokens(s):
    try:
        return [int(t) for t in s.split(",") if t.strip() != ""]
    except ValueError:
        raise ModelError("--tokens must be comma-separated integers, got %r" % s)


def check_golden(model, golden_path, prompt_only):
    with open(golden_path) as fh:
        golden = json.load(fh)
    n_vocab = golden["model"]["n_vocab"]
    if n_vocab != model.n_vocab:
        raise ModelError("golden n_vocab %d != model n_vocab %d" % (n_vocab, model.n_vocab))
    rows = np.fromfile(os.path.join(os.path.dirname(golden_path), golden["prompts"][0]["last_logits"]["file"]),
                       dtype="<f4").reshape(-1, n_vocab).astype(np.float64)
    report = {"golden": os.path.basename(golden_path), "prompts": []}
    worst = 0.0
    for i, p in enumerate(golden["prompts"]):
        entry = {"n_tokens": len(p["tokens"])}
        logits = model.forward(p["tokens"])
        d = np.abs(logits[-1] - rows[p["last_logits"]["row"]])
        entry["last_max_abs"] = float(d.max())
        entry["last_rms"] = float(np.sqrt(np.mean(d * d)))
        entry["argmax_match"] = int(np.sum(np.argmax(logits, axis=1) == np.array(p["positions_argmax"])))
        worst = max(worst, entry["last_max_abs"])
        if not prompt_only:
            seq = list(p["tokens"]) + list(p["greedy_tokens"])
            after = model.forward(seq)[-1]
            d2 = np.abs(after - rows[p["after_greedy_logits"]["row"]])
            entry["after_greedy_max_abs"] = float(d2.max())
            worst = max(worst, entry["after_greedy_max_abs"])
        report["prompts"].append(entry)
    report["max_abs"] = worst
    return report


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", help="comma-separated token ids, run at positions 0..n-1")
    ap.add_argument("--all-positions", action="store_true", help="print the logits of every position")
    ap.add_argument("--golden", help="check against a conformance golden JSON instead")
    ap.add_argument("--prompt-only", action="store_true", help="with --golden: skip the after-greedy rows")
    args = ap.parse_args(argv)
    if (args.tokens is None) == (args.golden is None):
        ap.error("give exactly one of --tokens and --golden")
    try:
        model = LlamaRef(args.model)
        if args.golden:
            out = check_golden(model, args.golden, args.prompt_only)
        else:
            tokens = _parse_tokens(args.tokens)
            logits = model.forward(tokens)
            out = {"n_vocab": model.n_vocab, "n_tokens": len(tokens),
                   "logits": logits.tolist() if args.all_positions else logits[-1].tolist()}
    except (GGUFError, ModelError, OSError) as e:
        print("llama_ref: error: %s" % e, file=sys.stderr)
        return 1
    try:
        json.dump(out, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head
        sys.stdout = None
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
