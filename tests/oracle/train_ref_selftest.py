#!/usr/bin/python3
"""Self-checks of the training oracle (llama_torch.py, train_ref.py); needs no hearth binary.

    /usr/bin/python3 tests/oracle/train_ref_selftest.py [--model hearth-synth.gguf] [-v]

1. forward: LlamaTorch (float64) against llama_ref.py's numpy forward, tied and untied, GQA, on a GGUF this
   script writes (norm weights random around 1, so their gradients are not special).
2. gradients: torch autograd against central finite differences in float64, on every entry of a tiny model.
3. `grads` mode end to end: a GRADS.gguf holding the autograd gradients rounded to F32 gives grad_err at F32
   rounding; a perturbed tensor shows up in its own entry only; a missing tensor exits 2.
4. `train` mode against a hand-written numpy loop (lr schedule, gradient accumulation, clipping, AdamW with
   decay on 2-D parameters only) — the numpy loop takes its per-micro-batch gradients from the torch model,
   everything after that is numpy; with clipping active and inactive, warm-up, wrap-around of the rows.
   Also through the CLI with --hearth (the numpy weights written to an F32 GGUF).
With --model, also loads that GGUF (e.g. from `hearth synth`) and checks its forward against llama_ref.py.
Prints one line per check and 'N passed, N failed' at the end; exit status 1 on any failure.
"""

import argparse
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_ref  # noqa: E402
from llama_ref import LlamaRef  # noqa: E402
from llama_torch import LlamaConfig, LlamaTorch  # noqa: E402

# ---- a minimal GGUF v3 writer (F32 tensors) ---------------------------------------------------------------


def _gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def write_gguf(path, metadata, tensors):
    """metadata: dict key -> int (u32) | float (f32) | str | list of str; tensors: dict name -> numpy array
    (numpy shape; written F32 with reversed dims)."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for k, v in metadata.items():
        out += _gguf_str(k)
        if isinstance(v, bool):
            out += struct.pack("<I?", 7, v)
        elif isinstance(v, int):
            out += struct.pack("<II", 4, v)
        elif isinstance(v, float):
            out += struct.pack("<If", 6, v)
        elif isinstance(v, str):
            out += struct.pack("<I", 8) + _gguf_str(v)
        elif isinstance(v, list):
            out += struct.pack("<IIQ", 9, 8, len(v)) + b"".join(_gguf_str(x) for x in v)
        else:
            raise TypeError(k)
    offset = 0
    blobs = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        dims = list(reversed(a.shape))
        out += _gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", 0, offset)
        blobs.append((offset, a.tobytes()))
        offset += (a.nbytes + 31) // 32 * 32
    out += b"\0" * ((-len(out)) % 32)
    data = bytearray(offset)
    for off, b in blobs:
        data[off:off + len(b)] = b
    with open(path, "wb") as fh:
        fh.write(out + data)


def model_metadata(cfg):
    a = "llama."
    return {"general.architecture": "llama", "general.alignment": 32,
            a + "embedding_length": cfg.n_embd, a + "block_count": cfg.n_layer, a + "feed_forward_length": cfg.n_ff,
            a + "attention.head_count": cfg.n_head, a + "attention.head_count_kv": cfg.n_head_kv,
            a + "attention.key_length": cfg.head_dim, a + "attention.value_length": cfg.head_dim_v,
            a + "rope.dimension_count": cfg.n_rot, a + "rope.freq_base": cfg.rope_base,
            a + "attention.layer_norm_rms_epsilon": cfg.eps, a + "vocab_size": cfg.n_vocab}


def random_weights(cfg, rng, std=0.3):
    w = {}
    for name, shape in cfg.tensor_shapes().items():
        if len(shape) == 1:
            w[name] = 1.0 + 0.2 * rng.standard_normal(shape)
        else:
            w[name] = std * rng.standard_normal(shape)
        w[name] = w[name].astype(np.float32).astype(np.float64)   # what an F32 file holds exactly
    return w


def write_model(path, cfg, weights):
    write_gguf(path, model_metadata(cfg), weights)


def write_tokens(path, rows):
    np.asarray(rows, dtype="<i4").tofile(path)


# ---- checks -----------------------------------------------------------------------------------------------

RESULTS = []
VERBOSE = False


def check(name, ok, detail):
    RESULTS.append(ok)
    print("%s  %s: %s" % ("ok  " if ok else "FAIL", name, detail))


def check_forward(path, label, tokens):
    ref = LlamaRef(path).forward(tokens)
    m = LlamaTorch.from_gguf(path, dtype=torch.float64)
    with torch.no_grad():
        got = m(torch.tensor([tokens])).numpy()[0]
    d = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref)))
    check("forward vs llama_ref (%s)" % label, d <= 1e-11 * max(1.0, scale), "max|d| = %.3g (max|logit| %.3g)" % (d, scale))


def check_finite_differences(cfg, weights, rows, batch, label):
    m = LlamaTorch(cfg, dtype=torch.float64, weights=weights)
    inputs, targets = train_ref.micro_batch(rows, 0, batch)
    m.loss(inputs, targets).backward()
    h = 1e-5
    worst = 0.0
    worst_name = ""
    n = 0
    with torch.no_grad():
        for name, p in m.params.items():
            g = p.grad.reshape(-1)
            flat = p.data.view(-1)
            fd = torch.empty_like(g)
            for i in range(flat.numel()):
                old = float(flat[i])
                flat[i] = old + h
                lp = float(m.loss(inputs, targets))
                flat[i] = old - h
                lm = float(m.loss(inputs, targets))
                flat[i] = old
                fd[i] = (lp - lm) / (2 * h)
            n += flat.numel()
            err = float((fd - g).abs().max() / g.abs().max().clamp_min(1e-30))
            if VERBOSE:
                print("      %-28s max|g| %.3g  fd rel err %.3g" % (name, float(g.abs().max()), err))
            if err > worst:
                worst, worst_name = err, name
    check("autograd vs finite differences (%s)" % label, worst < 1e-6,
          "%d entries, worst max|fd - g| / max|g| = %.3g (%s)" % (n, worst, worst_name))


def run_cli(args):
    p = subprocess.run([sys.executable, os.path.join(HERE, "train_ref.py")] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def check_grads_cli(tmp, model_path, cfg, weights, tok_path, rows, batch, seq):
    import json
    m = LlamaTorch(cfg, dtype=torch.float64, weights=weights)
    inputs, targets = train_ref.micro_batch(rows, 0, batch)
    loss = m.loss(inputs, targets)
    loss.backward()
    grads = {n: p.grad.numpy().copy() for n, p in m.params.items()}
    gpath = os.path.join(tmp, "grads.gguf")
    write_gguf(gpath, {"general.architecture": "llama"}, grads)
    rc, out, err = run_cli(["grads", model_path, tok_path, "--batch", str(batch), "--seq", str(seq), "--hearth", gpath])
    if rc != 0:
        check("grads CLI", False, "exit %d: %s" % (rc, err.strip()))
        return
    j = json.loads(out)
    worst = max(j["grad_err"].values())
    check("grads CLI: F32-rounded exact gradients", abs(j["loss"] - float(loss)) < 1e-12 and worst < 1e-7
          and set(j["grad_err"]) == set(m.params),
          "loss %.12g (in-process %.12g), worst grad_err %.3g over %d tensors" % (j["loss"], float(loss), worst, len(j["grad_err"])))
    # One perturbed tensor.
    name = "blk.1.attn_k.weight"
    g2 = dict(grads)
    g2[name] = grads[name].copy()
    g2[name].flat[3] += 0.01 * np.abs(grads[name]).max()
    write_gguf(gpath, {"general.architecture": "llama"}, g2)
    rc, out, err = run_cli(["grads", model_path, tok_path, "--batch", str(batch), "--seq", str(seq), "--hearth", gpath])
    j = json.loads(out)
    others = max(v for k, v in j["grad_err"].items() if k != name)
    check("grads CLI: a perturbed tensor is reported", rc == 0 and abs(j["grad_err"][name] - 0.01) < 1e-5 and others < 1e-7,
          "grad_err[%s] = %.6g (expected 0.01), others <= %.3g" % (name, j["grad_err"][name], others))
    # A NaN: null in the JSON (which has no NaN).
    g2[name] = grads[name].copy()
    g2[name].flat[0] = np.nan
    write_gguf(gpath, {"general.architecture": "llama"}, g2)
    rc, out, err = run_cli(["grads", model_path, tok_path, "--batch", str(batch), "--seq", str(seq), "--hearth", gpath])
    j = json.loads(out)
    check("grads CLI: a NaN prints as null", rc == 0 and j["grad_err"][name] is None and "NaN" not in out,
          "grad_err[%s] = %r" % (name, j["grad_err"][name]))
    # A missing tensor.
    del g2[name]
    write_gguf(gpath, {"general.architecture": "llama"}, g2)
    rc, out, err = run_cli(["grads", model_path, tok_path, "--batch", str(batch), "--seq", str(seq), "--hearth", gpath])
    check("grads CLI: a missing tensor exits 2", rc == 2 and name in err, "exit %d, stderr: %s" % (rc, err.strip()[:160]))


def numpy_train(cfg, weights, rows, o):
    """The train mode written out in numpy; gradients of each micro-batch from a float64 torch model."""
    m = LlamaTorch(cfg, dtype=torch.float64, weights=weights)
    W = {n: weights[n].copy() for n in m.params}
    M = {n: np.zeros_like(v) for n, v in W.items()}
    V = {n: np.zeros_like(v) for n, v in W.items()}
    losses, norms, lrs = [], [], []
    n_rows = rows.shape[0]
    for s in range(o["steps"]):
        with torch.no_grad():
            for n, p in m.params.items():
                p.copy_(torch.from_numpy(W[n]))
        G = {n: np.zeros_like(v) for n, v in W.items()}
        tot = 0.0
        for a in range(o["accum"]):
            first = (s * o["accum"] + a) * o["batch"]
            r = rows[[(first + j) % n_rows for j in range(o["batch"])]]
            m.zero_grad(set_to_none=True)
            loss = m.loss(r[:, :-1], r[:, 1:])
            loss.backward()
            tot += float(loss)
            for n, p in m.params.items():
                G[n] += p.grad.numpy()
        for n in G:
            G[n] /= o["accum"]
        losses.append(tot / o["accum"])
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in G.values()))
        norms.append(norm)
        if o["clip"] > 0:
            coef = o["clip"] / (norm + 1e-6)
            if coef < 1:
                for n in G:
                    G[n] *= coef
        S, Wu, LR, R = o["steps"], o["warmup"], o["lr"], o["min_lr_ratio"]
        if s < Wu:
            lr = LR * (s + 1) / Wu
        else:
            pp = (s - Wu) / max(1, S - Wu)
            lr = LR * R + 0.5 * (LR - LR * R) * (1 + math.cos(math.pi * pp))
        lrs.append(lr)
        b1, b2, eps = o["beta1"], o["beta2"], o["eps"]
        t = s + 1
        for n in W:
            wd = o["wd"] if W[n].ndim == 2 else 0.0
            W[n] = W[n] * (1 - lr * wd)
            M[n] = b1 * M[n] + (1 - b1) * G[n]
            V[n] = b2 * V[n] + (1 - b2) * G[n] * G[n]
            mhat = M[n] / (1 - b1 ** t)
            denom = np.sqrt(V[n]) / math.sqrt(1 - b2 ** t) + eps
            W[n] = W[n] - lr * mhat / denom
    return W, losses, norms, lrs


def check_train(tmp, label, model_path, cfg, weights, tok_path, rows, seq, o):
    import json
    W, losses, norms, lrs = numpy_train(cfg, weights, rows, o)
    # In process, float64 to float64.
    args = argparse.Namespace(hearth=None, **o)
    m = LlamaTorch.from_gguf(model_path, dtype=torch.float64)
    out = train_ref.cmd_train(args, m, rows)
    dw = max(float(np.max(np.abs(m.params[n].detach().numpy() - W[n])) / np.max(np.abs(W[n]))) for n in W)
    dl = max(abs(a - b) for a, b in zip(out["losses"], losses))
    dn = max(abs(a - b) / b for a, b in zip(out["grad_norms"], norms))
    dlr = max(abs(a - b) for a, b in zip(out["lrs"], lrs))
    clipped = sum(1 for n in norms if o["clip"] > 0 and n > o["clip"])
    moved1d = max(float(np.max(np.abs(W[n] - weights[n]))) for n in W if W[n].ndim == 1)
    check("train vs numpy AdamW (%s)" % label, dw < 1e-10 and dl < 1e-12 and dn < 1e-10 and dlr == 0.0,
          "weights %.3g, losses %.3g, norms %.3g, lrs %.3g; %d/%d steps clipped; losses %s; lrs %s"
          % (dw, dl, dn, dlr, clipped, o["steps"], ["%.4f" % x for x in out["losses"]], ["%.4g" % x for x in lrs]))
    # A decayed 1-D parameter would differ from the numpy loop; make sure the 1-D ones did move (by Adam).
    if moved1d == 0.0:
        check("train: 1-D parameters moved", False, "they did not")
    # Through the CLI with --hearth = the numpy weights in F32.
    fpath = os.path.join(tmp, "final.gguf")
    write_gguf(fpath, {"general.architecture": "llama"}, W)
    cli = ["train", model_path, tok_path, "--batch", str(o["batch"]), "--seq", str(seq), "--accum", str(o["accum"]),
           "--steps", str(o["steps"]), "--lr", repr(o["lr"]), "--warmup", str(o["warmup"]),
           "--min-lr-ratio", repr(o["min_lr_ratio"]), "--wd", repr(o["wd"]), "--clip", repr(o["clip"]),
           "--beta1", repr(o["beta1"]), "--beta2", repr(o["beta2"]), "--eps", repr(o["eps"]), "--hearth", fpath]
    rc, sout, err = run_cli(cli)
    if rc != 0:
        check("train CLI (%s)" % label, False, "exit %d: %s" % (rc, err.strip()))
        return
    j = json.loads(sout)
    we = max(j["weight_err"].values())
    check("train CLI --hearth (%s)" % label, we < 1e-7 and j["losses"] == out["losses"],
          "worst weight_err %.3g (F32 rounding), losses identical to in-process: %s" % (we, j["losses"] == out["losses"]))


def main(argv):
    global VERBOSE
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="also check this GGUF's forward against llama_ref.py")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    VERBOSE = args.v
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(1234)
    with tempfile.TemporaryDirectory() as tmp:
        # Forward on a small GQA model, tied and untied, base not 10000.
        for tied in (True, False):
            cfg = LlamaConfig(n_vocab=50, n_embd=32, n_layer=2, n_head=4, n_head_kv=2, n_ff=48, eps=2.0 ** -17,
                              rope_base=500.0, tied=tied)
            w = random_weights(cfg, rng)
            path = os.path.join(tmp, "fwd.gguf")
            write_model(path, cfg, w)
            check_forward(path, "tied" if tied else "untied", [int(x) for x in rng.integers(0, 50, 20)])

        # Partial rope (rope.dimension_count 6 of head dim 16) with per-dimension divisors (rope_freqs.weight).
        cfg = LlamaConfig(n_vocab=50, n_embd=32, n_layer=2, n_head=2, n_head_kv=1, n_ff=48, eps=2.0 ** -17,
                          n_rot=6, rope_base=50.0, tied=True)
        w = random_weights(cfg, rng)
        w["rope_freqs.weight"] = np.array([1.0, 2.5, 8.0])
        path = os.path.join(tmp, "fwd.gguf")
        write_model(path, cfg, w)
        check_forward(path, "partial rope + rope_freqs", [int(x) for x in rng.integers(0, 50, 20)])

        # Finite differences on a tiny model (every entry), tied and untied.
        seq, batch = 5, 2
        for tied in (True, False):
            cfg = LlamaConfig(n_vocab=11, n_embd=8, n_layer=2, n_head=4, n_head_kv=2, n_ff=12, eps=2.0 ** -17,
                              rope_base=100.0, tied=tied)
            w = random_weights(cfg, rng, std=0.5)
            rows = torch.from_numpy(rng.integers(0, cfg.n_vocab, (3, seq + 1)))
            check_finite_differences(cfg, w, rows, batch, "tied" if tied else "untied")

        # grads and train modes on a small model.
        seq = 6
        cfg = LlamaConfig(n_vocab=40, n_embd=16, n_layer=2, n_head=4, n_head_kv=2, n_ff=24, rope_base=10000.0, eps=2.0 ** -17,
                          tied=True)
        w = random_weights(cfg, rng, std=0.3)
        model_path = os.path.join(tmp, "small.gguf")
        write_model(model_path, cfg, w)
        tok = rng.integers(0, cfg.n_vocab, (7, seq + 1))
        tok_path = os.path.join(tmp, "tokens.bin")
        write_tokens(tok_path, tok)
        rows = torch.from_numpy(tok.astype(np.int64))
        check_grads_cli(tmp, model_path, cfg, w, tok_path, rows, 3, seq)
        base = dict(batch=2, seq=seq, accum=2, steps=5, lr=3e-2, warmup=2, min_lr_ratio=0.1, wd=0.5,
                    beta1=0.9, beta2=0.95, eps=1e-8, dtype="float64", threads=0)
        check_train(tmp, "clip 0.5: active", model_path, cfg, w, tok_path, rows, seq, dict(base, clip=0.5))
        check_train(tmp, "clip 0: none", model_path, cfg, w, tok_path, rows, seq, dict(base, clip=0.0))
        check_train(tmp, "clip 1e9, accum 1, no warmup", model_path, cfg, w, tok_path, rows, seq,
                    dict(base, clip=1e9, accum=1, warmup=0, steps=3))
        cfg_u = LlamaConfig(n_vocab=40, n_embd=16, n_layer=1, n_head=2, n_head_kv=1, n_ff=24, eps=2.0 ** -17, tied=False)
        w_u = random_weights(cfg_u, rng, std=0.3)
        upath = os.path.join(tmp, "untied.gguf")
        write_model(upath, cfg_u, w_u)
        check_train(tmp, "untied, clip 0.3", upath, cfg_u, w_u, tok_path, rows, seq, dict(base, clip=0.3, steps=4))

        if args.model:
            f = LlamaTorch.from_gguf(args.model, dtype=torch.float64)
            check_forward(args.model, os.path.basename(args.model),
                          [int(x) for x in rng.integers(0, f.cfg.n_vocab, 24)])
    n_fail = RESULTS.count(False)
    print("%d passed, %d failed" % (len(RESULTS) - n_fail, n_fail))
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
