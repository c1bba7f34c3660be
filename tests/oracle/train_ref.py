#!/usr/bin/python3
"""PyTorch reference for hearth's training engine: loss, gradients and AdamW steps of a llama GGUF model.

Needs Debian's python3-torch (1.13): run with /usr/bin/python3. The model is llama_torch.LlamaTorch (the math
of llama_ref.py); every parameter is named by its GGUF tensor name.

Tokens file: raw little-endian int32, rows of (seq + 1) tokens; row r gives inputs tokens[r][0..seq-1] and
targets tokens[r][1..seq]. A micro-batch of B rows has loss = mean cross-entropy over its B*seq targets. Row
indices wrap around modulo the number of rows in the file.

    train_ref.py grads MODEL.gguf TOKENS --batch B --seq T [--hearth GRADS.gguf] [--dtype float64]
        Loss and gradient of every parameter on rows 0..B-1. With --hearth, compares every gradient with the
        tensor of the same name in GRADS.gguf (hearth's; same names and dims as the model's tensors). Prints
        one line of JSON:
          {"loss": L, "grad_err": {name: max|g_hearth - g_ref| / max|g_ref|}, "grad_max": {name: max|g_ref|}}
        (grad_err only with --hearth; where max|g_ref| is 0 the entry is max|g_hearth| itself). A tensor
        missing from GRADS.gguf, or of other dims, is an error: message on stderr, exit status 2.

    train_ref.py train MODEL.gguf TOKENS --batch B --seq T --accum A --steps S --lr LR --warmup W
                 --min-lr-ratio R --wd WD --clip C [--beta1 0.9 --beta2 0.95 --eps 1e-8]
                 [--hearth FINAL.gguf] [--dtype float64]
        S optimizer steps. Step s (0-based) runs micro-batches a = 0..A-1 on rows [(s*A+a)*B, (s*A+a+1)*B)
        (mod the row count); their gradients are summed and divided by A (the step's loss is the mean of the
        micro-batch losses). Then torch.nn.utils.clip_grad_norm_(params, C) when C > 0 (total = sqrt(sum of
        all grads^2), grads *= min(1, C / (total + 1e-6))); C <= 0: no clipping (the norm is still reported).
        Learning rate of step s: s < W: LR*(s+1)/W; else with p = (s-W)/max(1, S-W):
        LR*R + 0.5*(LR - LR*R)*(1 + cos(pi*p)). Optimizer: torch.optim.AdamW(betas, eps), two param groups:
        weight decay WD on the 2-D parameters (matrices, token embedding included), 0 on the 1-D ones (norm
        weights); each group's lr is set before each step. Prints one line of JSON:
          {"losses": [...], "grad_norms": [pre-clip norm per step], "lrs": [...],
           "weight_err": {name: max|w_hearth - w_ref| / max|w_ref|}}
        (weight_err only with --hearth, FINAL.gguf holding hearth's weights after the S steps).

AdamW as torch 1.13 does it (what hearth must match): per step t (1-based) and parameter, with the step's lr:
    p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
    p -= lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps)       (eps added after the bias correction of v)
so weight decay follows the scheduled lr, and the tied token_embd.weight (2-D) is decayed once.

What float32 arithmetic gives against this float64 oracle (PyTorch float32 itself, on a synth tiny model, batch 4,
seq 32): grads: grad_err <= 8e-7. train, 5 steps at lr 1e-3: losses within 5e-7, but weight_err up to 1e-4 (median
2e-6), and 5e-4 after 20 steps at lr 1e-2: Adam's first steps move every weight by ~lr whatever the size of its
gradient, so where a gradient is near 0 its float32 rounding decides the direction. Compare weights with a
tolerance of that order, or lean on the losses and gradient norms.

Non-finite numbers (a NaN in hearth's tensors, a diverged loss) print as null: JSON has no NaN.
Exit status: 0 ok; 1 a bad model, tokens or options; 2 a tensor missing from (or misshapen in) the --hearth file.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_np import GGUFError, GGUFFile  # noqa: E402
from llama_torch import LlamaTorch, ModelError  # noqa: E402


class UsageError(Exception):
    pass


class CompareError(Exception):
    pass


def load_tokens(path, seq, n_vocab):
    raw = np.fromfile(path, dtype="<i4")
    row = seq + 1
    if raw.size == 0 or raw.size % row:
        raise UsageError("%s: %d int32 tokens is not a positive multiple of seq + 1 = %d" % (path, raw.size, row))
    rows = raw.reshape(-1, row).astype(np.int64)
    bad = rows[(rows < 0) | (rows >= n_vocab)]
    if bad.size:
        raise UsageError("%s: token id %d is outside the vocabulary [0, %d)" % (path, bad[0], n_vocab))
    return torch.from_numpy(rows)


def micro_batch(rows, first_row, batch):
    """Rows first_row .. first_row+batch-1, wrapping modulo the row count: (inputs, targets), each (B, T)."""
    idx = torch.arange(first_row, first_row + batch, dtype=torch.int64) % rows.shape[0]
    r = rows[idx]
    return r[:, :-1].contiguous(), r[:, 1:].contiguous()


def lr_at(step, steps, lr, warmup, min_lr_ratio):
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / max(1, steps - warmup)
    lo = lr * min_lr_ratio
    return lo + 0.5 * (lr - lo) * (1.0 + math.cos(math.pi * p))


def compare(model, path, values):
    """{name: max|hearth - ref| / max|ref|} for every parameter; values(name) -> the reference tensor."""
    f = GGUFFile(path)
    err, ref_max = {}, {}
    for name, p in model.params.items():
        if name not in f:
            raise CompareError("%s: no tensor named %s (hearth's file must hold every parameter: %s)"
                               % (path, name, ", ".join(model.params)))
        h = f.tensor(name)
        ref = values(name).detach().to(torch.float64).numpy()
        if tuple(h.shape) != tuple(ref.shape):
            raise CompareError("%s: tensor %s has GGUF dims %s, the model's are %s"
                               % (path, name, list(reversed(h.shape)), list(reversed(ref.shape))))
        d = float(np.max(np.abs(h - ref)))
        m = float(np.max(np.abs(ref)))
        err[name] = d / m if m > 0 else float(np.max(np.abs(h)))
        ref_max[name] = m
    return err, ref_max


def cmd_grads(args, model, rows):
    model.zero_grad(set_to_none=True)
    inputs, targets = micro_batch(rows, 0, args.batch)
    loss = model.loss(inputs, targets)
    loss.backward()
    out = {"loss": float(loss)}
    grad_max = {n: float(p.grad.abs().max()) for n, p in model.params.items()}
    if args.hearth:
        err, _ = compare(model, args.hearth, lambda n: model.params[n].grad)
        out["grad_err"] = err
    out["grad_max"] = grad_max
    return out


def make_optimizer(model, args):
    decay = [p for p in model.params.values() if p.dim() >= 2]
    no_decay = [p for p in model.params.values() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}]
    # foreach=False: the plain per-tensor loop (torch 1.13's default on CPU), the same arithmetic as foreach.
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
                             weight_decay=args.wd, foreach=False)


def cmd_train(args, model, rows):
    params = list(model.params.values())
    opt = make_optimizer(model, args)
    losses, norms, lrs = [], [], []
    for s in range(args.steps):
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for a in range(args.accum):
            inputs, targets = micro_batch(rows, (s * args.accum + a) * args.batch, args.batch)
            loss = model.loss(inputs, targets)
            loss.backward()                      # gradients of the micro-batches add up in .grad
            step_loss += float(loss)
        if args.accum > 1:
            for p in params:
                p.grad.div_(args.accum)
        losses.append(step_loss / args.accum)
        if args.clip > 0:
            total = torch.nn.utils.clip_grad_norm_(params, args.clip)
        else:
            total = torch.norm(torch.stack([torch.norm(p.grad.detach(), 2) for p in params]), 2)
        norms.append(float(total))
        lr = lr_at(s, args.steps, args.lr, args.warmup, args.min_lr_ratio)
        lrs.append(lr)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
    out = {"losses": losses, "grad_norms": norms, "lrs": lrs}
    if args.hearth:
        err, _ = compare(model, args.hearth, lambda n: model.params[n])
        out["weight_err"] = err
    return out


def _finite_or_null(v):
    """JSON has no NaN or infinity: such values print as null (and a note goes to stderr)."""
    if isinstance(v, dict):
        return {k: _finite_or_null(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_null(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        print("train_ref: note: a non-finite value (%r) prints as null" % v, file=sys.stderr)
        return None
    return v


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("model", help="llama GGUF (F32/F16/BF16/Q8_0 tensors, dequantized)")
        p.add_argument("tokens", help="raw little-endian int32 file, rows of seq+1 tokens")
        p.add_argument("--batch", type=int, required=True, help="rows per micro-batch")
        p.add_argument("--seq", type=int, required=True, help="tokens per row are seq+1")
        p.add_argument("--hearth", help="hearth's GGUF to compare with")
        p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
        p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")

    g = sub.add_parser("grads", help="loss and gradients of one micro-batch")
    common(g)
    t = sub.add_parser("train", help="S AdamW steps")
    common(t)
    t.add_argument("--accum", type=int, default=1)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--lr", type=float, required=True)
    t.add_argument("--warmup", type=int, default=0)
    t.add_argument("--min-lr-ratio", type=float, default=0.1)
    t.add_argument("--wd", type=float, default=0.1)
    t.add_argument("--clip", type=float, default=1.0)
    t.add_argument("--beta1", type=float, default=0.9)
    t.add_argument("--beta2", type=float, default=0.95)
    t.add_argument("--eps", type=float, default=1e-8)
    args = ap.parse_args(argv)
    if args.batch < 1 or args.seq < 1:
        ap.error("--batch and --seq must be >= 1")
    if args.cmd == "train" and (args.accum < 1 or args.steps < 0 or args.warmup < 0):
        ap.error("--accum must be >= 1, --steps and --warmup >= 0")
    return args


def main(argv):
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        model = LlamaTorch.from_gguf(args.model, dtype=getattr(torch, args.dtype))
        rows = load_tokens(args.tokens, args.seq, model.cfg.n_vocab)
        out = cmd_grads(args, model, rows) if args.cmd == "grads" else cmd_train(args, model, rows)
    except CompareError as e:
        print("train_ref: error: %s" % e, file=sys.stderr)
        return 2
    except (GGUFError, ModelError, UsageError, OSError) as e:
        print("train_ref: error: %s" % e, file=sys.stderr)
        return 1
    try:
        sys.stdout.write(json.dumps(_finite_or_null(out), allow_nan=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stdout = None
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
