#!/usr/bin/python3
"""A llama model in PyTorch with the math of llama_ref.py, restricted to what training uses.

It is the independent reference for hearth's training engine (train_ref.py) and the PyTorch side of the
training benchmark (bench/train_torch.py). Needs Debian's python3-torch (1.13): run with /usr/bin/python3.

    x = token_embd[tokens]                                   (B, T, E)
    per layer: h = rmsnorm(x) * attn_norm                    rmsnorm(x) = x / sqrt(mean(x^2) + eps)
               q, k, v = h Wq^T, h Wk^T, h Wv^T               (W as stored: GGUF dims {E, QD} -> matrix (QD, E))
               rope(q), rope(k)                               NORM style: adjacent pairs (2i, 2i+1) rotated by
                                                              theta_i = pos * base^(-2i/n_rot), pos = 0..T-1
               causal grouped-query attention                 query head h uses kv head h // (n_head/n_head_kv),
                                                              scale 1/sqrt(head_dim), explicit matmul+mask+softmax
               x += attn Wo^T
               h = rmsnorm(x) * ffn_norm; x += (silu(h Wgate^T) * h Wup^T) Wdown^T
    logits = (rmsnorm(x) * output_norm) Wout^T                Wout = output.weight, or token_embd.weight when the
                                                              file has none (tied: ONE parameter used twice)

Parameters are named by their GGUF tensor names: `model.params` is an ordered dict name -> nn.Parameter
(token_embd, blk.N.* in layer order, output_norm, output). A tied model has no
"output.weight" entry; token_embd.weight's gradient is then the sum of both uses, as autograd gives it.

Rope scaling (linear factor, llama3 factors / rope_freqs.weight) and partial rope (rope.dimension_count <
head dim) are read from the GGUF as llama_ref.py reads them and applied as constants (rope_freqs.weight is
not a parameter). Training models from `hearth synth` with a dims shape have none of them.

Library use:
    m = LlamaTorch.from_gguf("model.gguf", dtype=torch.float64)
    m = LlamaTorch(LlamaConfig(n_vocab=8192, n_embd=384, n_layer=6, n_head=6, n_head_kv=6, n_ff=1024),
                   dtype=torch.float32, init_std=0.02)
    logits = m(tokens)                 # tokens: int64 (B, T) -> (B, T, V)
    loss = m.loss(inputs, targets)     # mean cross-entropy over all B*T targets
"""

import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUFFile  # noqa: E402


class ModelError(Exception):
    pass


class LlamaConfig:
    def __init__(self, n_vocab, n_embd, n_layer, n_head, n_ff, n_head_kv=None, head_dim=None, head_dim_v=None,
                 n_rot=None, eps=1e-5, rope_base=10000.0, freq_scale=1.0, rope_factors=None, tied=True):
        self.n_vocab = int(n_vocab)
        self.n_embd = int(n_embd)
        self.n_layer = int(n_layer)
        self.n_head = int(n_head)
        self.n_head_kv = int(n_head_kv if n_head_kv is not None else n_head)
        self.n_ff = int(n_ff)
        if self.n_head <= 0 or self.n_head_kv <= 0 or self.n_head % self.n_head_kv:
            raise ModelError("head_count %d is not a positive multiple of head_count_kv %d" % (self.n_head, self.n_head_kv))
        if head_dim is None:
            if self.n_embd % self.n_head:
                raise ModelError("embedding %d is not a multiple of head_count %d" % (self.n_embd, self.n_head))
            head_dim = self.n_embd // self.n_head
        self.head_dim = int(head_dim)
        self.head_dim_v = int(head_dim_v if head_dim_v is not None else self.head_dim)
        self.n_rot = int(n_rot if n_rot is not None else self.head_dim)
        if self.n_rot % 2 or self.n_rot > self.head_dim:
            raise ModelError("rope dimension count %d must be even and <= head dim %d" % (self.n_rot, self.head_dim))
        self.eps = float(eps)
        self.rope_base = float(rope_base)
        self.freq_scale = float(freq_scale)
        self.rope_factors = None if rope_factors is None else np.asarray(rope_factors, dtype=np.float64).reshape(-1)
        if self.rope_factors is not None and self.rope_factors.size != self.n_rot // 2:
            raise ModelError("rope factors: %d values, expected n_rot/2 = %d" % (self.rope_factors.size, self.n_rot // 2))
        self.tied = bool(tied)

    @staticmethod
    def parse_dims(text, tied=True):
        """'embd=384,layers=6,heads=6,kv_heads=6,ff=1024,vocab=8192[,head_dim=..,eps=..,rope_base=..,tied=0]'."""
        kv = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ModelError("dims: %r is not key=value" % part)
            k, v = part.split("=", 1)
            kv[k.strip()] = v.strip()
        known = {"embd", "layers", "heads", "kv_heads", "ff", "vocab", "head_dim", "eps", "rope_base", "tied"}
        unknown = set(kv) - known
        if unknown:
            raise ModelError("dims: unknown keys %s (known: %s)" % (sorted(unknown), sorted(known)))
        for k in ("embd", "layers", "heads", "ff", "vocab"):
            if k not in kv:
                raise ModelError("dims: missing %s=" % k)
        return LlamaConfig(n_vocab=int(kv["vocab"]), n_embd=int(kv["embd"]), n_layer=int(kv["layers"]),
                           n_head=int(kv["heads"]), n_head_kv=int(kv.get("kv_heads", kv["heads"])),
                           n_ff=int(kv["ff"]), head_dim=int(kv["head_dim"]) if "head_dim" in kv else None,
                           eps=float(kv.get("eps", 1e-5)), rope_base=float(kv.get("rope_base", 10000.0)),
                           tied=bool(int(kv.get("tied", int(tied)))))

    def tensor_shapes(self):
        """GGUF name -> torch shape (the numpy shape gguf_np gives: reversed GGUF dims), in file order."""
        E, F_ = self.n_embd, self.n_ff
        qd, kd, vd = self.n_head * self.head_dim, self.n_head_kv * self.head_dim, self.n_head_kv * self.head_dim_v
        out = OrderedDict()
        out["token_embd.weight"] = (self.n_vocab, E)
        for il in range(self.n_layer):
            p = "blk.%d." % il
            out[p + "attn_norm.weight"] = (E,)
            out[p + "attn_q.weight"] = (qd, E)
            out[p + "attn_k.weight"] = (kd, E)
            out[p + "attn_v.weight"] = (vd, E)
            out[p + "attn_output.weight"] = (E, self.n_head * self.head_dim_v)
            out[p + "ffn_norm.weight"] = (E,)
            out[p + "ffn_gate.weight"] = (F_, E)
            out[p + "ffn_up.weight"] = (F_, E)
            out[p + "ffn_down.weight"] = (E, F_)
        out["output_norm.weight"] = (E,)
        if not self.tied:
            out["output.weight"] = (self.n_vocab, E)
        return out

    def describe(self):
        return ("vocab=%d embd=%d layers=%d heads=%d kv_heads=%d head_dim=%d ff=%d eps=%g rope_base=%g tied=%d"
                % (self.n_vocab, self.n_embd, self.n_layer, self.n_head, self.n_head_kv, self.head_dim, self.n_ff,
                   self.eps, self.rope_base, self.tied))


def _llama3_factors(n_rot, base, factor, low_freq_factor, high_freq_factor, original_ctx):
    # As llama_ref.py (Llama 3.1 frequency scaling, as the HF -> GGUF converter bakes it into rope_freqs.weight).
    low_wavelen = original_ctx / low_freq_factor
    high_wavelen = original_ctx / high_freq_factor
    out = []
    for i in range(n_rot // 2):
        freq = base ** (-2.0 * i / n_rot)
        wavelen = 2.0 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return np.array(out)


class LlamaTorch(torch.nn.Module):
    def __init__(self, cfg, dtype=torch.float32, init_std=0.02, seed=None, weights=None):
        """weights: optional dict GGUF name -> numpy array (numpy shape); otherwise random init: matrices
        normal(0, init_std), norm weights ones (nanoGPT's init without its scaled residual projections)."""
        super().__init__()
        self.cfg = cfg
        self.dtype = dtype
        self.params = OrderedDict()
        gen = None
        if weights is None and seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
        for name, shape in cfg.tensor_shapes().items():
            if weights is not None:
                if name not in weights:
                    raise ModelError("missing tensor %s" % name)
                a = np.asarray(weights[name])
                if tuple(a.shape) != tuple(shape):
                    raise ModelError("tensor %s has numpy shape %s, expected %s" % (name, tuple(a.shape), tuple(shape)))
                t = torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype)   # a copy: never aliases the caller's array
            elif len(shape) == 1:
                t = torch.ones(shape, dtype=dtype)
            else:
                t = torch.empty(shape, dtype=dtype)
                t.normal_(0.0, init_std, generator=gen)
            p = torch.nn.Parameter(t)
            # nn.Module names may not contain dots; the GGUF name is the key of self.params.
            self.register_parameter(name.replace(".", "__"), p)
            self.params[name] = p
        self._rope_cache = {}
        self._mask_cache = {}

    @staticmethod
    def from_gguf(path, dtype=torch.float64):
        f = GGUFFile(path)
        arch = f.get("general.architecture")
        if arch != "llama":
            raise ModelError("%s: general.architecture is %r; this model implements llama only" % (path, arch))
        a = "llama."
        n_embd = int(f.require(a + "embedding_length"))
        n_head = int(f.require(a + "attention.head_count"))
        head_dim = int(f.get(a + "attention.key_length", n_embd // n_head))
        n_rot = int(f.get(a + "rope.dimension_count", head_dim))
        rope_base = float(f.get(a + "rope.freq_base", 10000.0))
        scaling_type = f.get(a + "rope.scaling.type", "none")
        if scaling_type not in ("none", "linear", "llama3"):
            raise ModelError("rope.scaling.type %r is not implemented (none, linear, llama3)" % scaling_type)
        scaling_factor = float(f.get(a + "rope.scaling.factor", 1.0) or 1.0)
        factors = None
        if "rope_freqs.weight" in f:
            factors = f.tensor("rope_freqs.weight").reshape(-1)
        elif scaling_type == "llama3":
            factors = _llama3_factors(n_rot, rope_base, scaling_factor,
                                      float(f.get(a + "rope.scaling.low_freq_factor", 1.0)),
                                      float(f.get(a + "rope.scaling.high_freq_factor", 4.0)),
                                      float(f.get(a + "rope.scaling.original_context_length", 8192)))
        if "token_embd.weight" not in f:
            raise ModelError("%s: missing tensor token_embd.weight" % path)
        if "blk.0.ffn_gate.weight" not in f:
            raise ModelError("%s: missing tensor blk.0.ffn_gate.weight" % path)
        n_vocab = f.tensors["token_embd.weight"].shape[0]
        n_ff = f.tensors["blk.0.ffn_gate.weight"].shape[0]
        cfg = LlamaConfig(n_vocab=n_vocab, n_embd=n_embd, n_layer=int(f.require(a + "block_count")), n_head=n_head,
                          n_head_kv=int(f.get(a + "attention.head_count_kv", n_head)), n_ff=n_ff, head_dim=head_dim,
                          head_dim_v=int(f.get(a + "attention.value_length", head_dim)), n_rot=n_rot,
                          eps=float(f.get(a + "attention.layer_norm_rms_epsilon", 1e-5)), rope_base=rope_base,
                          freq_scale=1.0 / scaling_factor if scaling_type == "linear" else 1.0,
                          rope_factors=factors, tied="output.weight" not in f)
        weights = {}
        for name in cfg.tensor_shapes():
            if name not in f:
                raise ModelError("%s: missing tensor %s" % (path, name))
            weights[name] = f.tensor(name)
        known = set(cfg.tensor_shapes()) | {"rope_freqs.weight"}
        extra = [n for n in f.tensors if n not in known]
        if extra:
            raise ModelError("%s: tensors this llama model does not use: %s" % (path, ", ".join(extra[:8])))
        return LlamaTorch(cfg, dtype=dtype, weights=weights)

    # ---- pieces -------------------------------------------------------------------------------------------

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.cfg.eps) * w

    def _rope_table(self, T):
        """exp(i * theta_i(pos)) for pos in 0..T-1: complex (1, T, 1, n_rot/2)."""
        c = self._rope_cache.get(T)
        if c is None:
            cfg = self.cfg
            i = np.arange(cfg.n_rot // 2, dtype=np.float64)
            inv_freq = cfg.rope_base ** (-2.0 * i / cfg.n_rot)
            if cfg.rope_factors is not None:
                inv_freq = inv_freq / cfg.rope_factors
            theta = cfg.freq_scale * np.arange(T, dtype=np.float64)[:, None] * inv_freq[None, :]   # (T, n_rot/2)
            # Angles and their cos/sin in float64, then rounded once to the model's dtype.
            cos = torch.from_numpy(np.cos(theta)).to(self.dtype)
            sin = torch.from_numpy(np.sin(theta)).to(self.dtype)
            c = torch.complex(cos, sin)[None, :, None, :]
            self._rope_cache[T] = c
        return c

    def rope(self, x):
        """x: (B, T, H, D). Rotates the adjacent pairs (2i, 2i+1) of the first n_rot dims by theta_i(pos):
        (x_2i, x_2i+1) -> (x_2i cos - x_2i+1 sin, x_2i sin + x_2i+1 cos), written as the complex product
        (x_2i + i x_2i+1) * exp(i theta) (the same arithmetic, and much faster in eager mode than the
        strided real form)."""
        T = x.shape[1]
        n_rot = self.cfg.n_rot
        partial = n_rot != x.shape[-1]
        xr = x[..., :n_rot] if partial else x
        xc = torch.view_as_complex(xr.reshape(*xr.shape[:-1], n_rot // 2, 2))
        rot = torch.view_as_real(xc * self._rope_table(T)).flatten(-2)
        if not partial:
            return rot
        return torch.cat((rot, x[..., n_rot:]), dim=-1)

    def attention(self, q, k, v):
        """q: (B, T, H, D), k: (B, T, Hkv, D), v: (B, T, Hkv, Dv) -> (B, T, H*Dv)."""
        cfg = self.cfg
        B, T = q.shape[0], q.shape[1]
        group = cfg.n_head // cfg.n_head_kv
        q = q.transpose(1, 2)                     # (B, H, T, D)
        k = k.transpose(1, 2)
        v = v.transpose(1, 2)
        if group > 1:                             # query head h uses kv head h // group
            k = k.repeat_interleave(group, dim=1)
            v = v.repeat_interleave(group, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(cfg.head_dim))   # (B, H, T, T)
        mask = self._mask_cache.get(T)
        if mask is None:
            mask = self._mask_cache[T] = torch.ones(T, T, dtype=torch.bool).triu(1)        # future keys
        scores = scores.masked_fill(mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v)              # (B, H, T, Dv)
        return out.transpose(1, 2).reshape(B, T, cfg.n_head * cfg.head_dim_v)

    def output_weight(self):
        return self.params["token_embd.weight"] if self.cfg.tied else self.params["output.weight"]

    # ---- forward --------------------------------------------------------------------------------------------

    def forward(self, tokens):
        cfg = self.cfg
        P = self.params
        if tokens.dim() != 2:
            raise ModelError("tokens must be (B, T), got shape %s" % (tuple(tokens.shape),))
        B, T = tokens.shape
        x = F.embedding(tokens, P["token_embd.weight"])                     # (B, T, E)
        for il in range(cfg.n_layer):
            p = "blk.%d." % il
            h = self.rmsnorm(x, P[p + "attn_norm.weight"])
            q = F.linear(h, P[p + "attn_q.weight"]).view(B, T, cfg.n_head, cfg.head_dim)
            k = F.linear(h, P[p + "attn_k.weight"]).view(B, T, cfg.n_head_kv, cfg.head_dim)
            v = F.linear(h, P[p + "attn_v.weight"]).view(B, T, cfg.n_head_kv, cfg.head_dim_v)
            q = self.rope(q)
            k = self.rope(k)
            x = x + F.linear(self.attention(q, k, v), P[p + "attn_output.weight"])
            h = self.rmsnorm(x, P[p + "ffn_norm.weight"])
            ff = F.silu(F.linear(h, P[p + "ffn_gate.weight"])) * F.linear(h, P[p + "ffn_up.weight"])
            x = x + F.linear(ff, P[p + "ffn_down.weight"])
        x = self.rmsnorm(x, P["output_norm.weight"])
        return F.linear(x, self.output_weight())                           # (B, T, V)

    def loss(self, inputs, targets):
        """Mean cross-entropy over all B*T targets."""
        logits = self(inputs)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    # ---- counts ---------------------------------------------------------------------------------------------

    def n_params(self):
        """Every parameter once (a tied embedding counts once)."""
        return sum(p.numel() for p in self.params.values())

    def n_matmul_params(self):
        """Weights used as matmul operands: q, k, v, o, gate, up, down per layer and the output projection
        (token_embd.weight when tied, since it is then the output matmul; an untied token_embd is only a
        lookup and is not counted). Norm weights are not counted."""
        cfg = self.cfg
        n = 0
        for name, p in self.params.items():
            if p.dim() == 2 and name != "token_embd.weight":
                n += p.numel()
        if cfg.tied:
            n += self.params["token_embd.weight"].numel()
        return n


def _main(argv):
    import argparse
    import json
    ap = argparse.ArgumentParser(description="Load a llama GGUF into the PyTorch model and print logits (a check).")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids, positions 0..n-1")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args(argv)
    m = LlamaTorch.from_gguf(args.model, dtype=getattr(torch, args.dtype))
    toks = torch.tensor([[int(t) for t in args.tokens.split(",") if t.strip()]], dtype=torch.int64)
    with torch.no_grad():
        logits = m(toks)[0, -1]
    json.dump({"n_vocab": m.cfg.n_vocab, "n_tokens": toks.shape[1], "logits": logits.double().tolist()}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
