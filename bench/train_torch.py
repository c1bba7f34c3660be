#!/usr/bin/python3
"""PyTorch's training speed on hearth's llama model: the baseline for hearth's training engine.

    /usr/bin/python3 bench/train_torch.py --dims "embd=384,layers=6,heads=6,kv_heads=6,ff=1024,vocab=8192" \\
        --batch 8 --seq 256 --threads 2 --steps 10 --warmup-steps 2 [--tied 1] [--optimizer foreach] [--json]

The model is tests/oracle/llama_torch.py's LlamaTorch (the math of tests/oracle/llama_ref.py: RMSNorm, rope,
causal GQA attention as explicit matmul + mask + softmax, SwiGLU), in float32, eager mode, random init
(matrices normal(0, 0.02), norm weights 1), random tokens (a fresh batch every step). One step is
zero_grad(set_to_none) + forward + mean cross-entropy + backward + clip_grad_norm_(1.0) + AdamW.step (weight
decay 0.1 on 2-D parameters, 0 on norm weights, lr 1e-3). Steps after the warm-up are timed one by one.

AdamW: torch 1.13 has no fused AdamW (fused=True came later, and for CUDA); --optimizer foreach (the default)
is its multi-tensor implementation (torch._foreach_* ops), the same arithmetic as the plain per-tensor loop
(--optimizer loop). The two measured the same here (the optimizer is ~1% of a step).

The fastest standard setup is the default, and the script reruns itself to get it: GLIBC_TUNABLES=
glibc.malloc.hugetlb=1 (--malloc) and OpenBLAS's own choice of kernels (--openblas-core auto, i.e. the
environment's OPENBLAS_CORETYPE=Haswell dropped); both are explained in main(). What this machine gave is in
bench/train_torch.md. On a machine shared with other sessions, run it in a session of its own whose autogroup
has a high priority, or the figures measure the neighbours:
    setsid -w bash -c 'echo -15 > /proc/self/autogroup; exec /usr/bin/python3 bench/train_torch.py ...'

FLOPs per token (nanoGPT's estimate_mfu / PaLM appendix B, as llm.c): 6*N + 12*L*T*Q, where
    N = the matmul weights: per layer q, k, v, o, gate, up, down, plus the output projection (the token
        embedding when tied; an untied token embedding is a lookup, not counted); norm weights not counted.
        6 = 2 (multiply-add) x 3 (forward, backward to activations, backward to weights).
    12*L*T*Q = attention scores and weighted sum: QK^T and PV, 2*T*Q multiply-adds each per token and layer
        in the forward, x3 for fwd+bwd, Q = n_head*head_dim (= embd here), T = seq. The causal mask is not
        halved away (the eager model computes the full T x T scores and masks them, as nanoGPT's formula assumes).
Softmax, norms, rope, SiLU, cross-entropy and the optimizer are not counted. GFLOP/s = FLOPs/token x tokens/s.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "oracle"))
from llama_torch import LlamaConfig, LlamaTorch  # noqa: E402


def blas_info():
    """What BLAS torch really calls: torch's build setting, the library mapped into this process, and for
    OpenBLAS the kernel core it picked (OPENBLAS_CORETYPE can force it). Not its thread count: an OpenMP
    OpenBLAS takes omp_get_max_threads() (= torch.set_num_threads) at each call, and where that is 1 it runs
    single-threaded without updating what openblas_get_num_threads() reports."""
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    info = {"torch_blas_info": m.group(1) if m else None}
    libs = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.split()[-1] if line.strip() else ""
                base = os.path.basename(path)
                if ("blas" in base or "mkl" in base) and ".so" in base and path not in libs:
                    libs.append(path)
    except OSError:
        pass
    info["blas_libs"] = [os.path.realpath(p) for p in libs]
    for p in libs:
        try:
            lib = ctypes.CDLL(p)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            info["openblas_core"] = lib.openblas_get_corename().decode()
            info["openblas_config"] = lib.openblas_get_config().decode().strip()
            break
        except (OSError, AttributeError):
            continue
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    return info


def flops_per_token(model, seq):
    cfg = model.cfg
    return 6 * model.n_matmul_params() + 12 * cfg.n_layer * seq * cfg.n_head * cfg.head_dim


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="embd=384,layers=6,heads=6,kv_heads=6,ff=1024,vocab=8192")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup-steps", type=int, default=2, help="untimed steps first")
    ap.add_argument("--tied", type=int, default=1, help="1: output projection tied to token_embd (as synth)")
    ap.add_argument("--optimizer", choices=["foreach", "loop"], default="foreach")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--malloc", choices=["hugetlb", "default"], default="hugetlb",
                    help="hugetlb (default): run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1; default: as the "
                         "environment says")
    ap.add_argument("--openblas-core", default="auto",
                    help="auto (default): unset OPENBLAS_CORETYPE, OpenBLAS detects the CPU; env: keep the "
                         "environment's; or a core name (Haswell, SkylakeX, ...) to force")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args(argv)

    # Both settings below are read when the process starts (by ld.so and by OpenBLAS), so the script reruns
    # itself once with them in its environment.
    #
    # --malloc hugetlb: eager PyTorch allocates every activation afresh, and glibc serves blocks over 32 MiB
    # (the logits and their gradient) with a new mmap each time, so every step touches fresh pages. Where a
    # page fault is dear (this project's VMs: a first touch runs at ~0.25 GB/s) that alone cost more than the
    # matmuls; glibc's hugetlb=1 tunable madvises such blocks to transparent huge pages (512x fewer faults).
    #
    # --openblas-core auto: OpenBLAS picks its kernels for the CPU (Cooperlake, i.e. its AVX-512 SkylakeX
    # sgemm, on this project's AMD EPYC); the environment's OPENBLAS_CORETYPE=Haswell (AVX2 kernels) made
    # training ~1.6x slower here. env: keep the environment's; NAME: force that core.
    env = dict(os.environ)
    tunables = env.get("GLIBC_TUNABLES", "")
    if args.malloc == "hugetlb" and "glibc.malloc.hugetlb=1" not in tunables:
        env["GLIBC_TUNABLES"] = (tunables + ":" if tunables else "") + "glibc.malloc.hugetlb=1"
    if args.openblas_core == "auto":
        env.pop("OPENBLAS_CORETYPE", None)
    elif args.openblas_core != "env":
        env["OPENBLAS_CORETYPE"] = args.openblas_core
    if env != dict(os.environ) and not os.environ.get("TRAIN_TORCH_RERUN"):
        env["TRAIN_TORCH_RERUN"] = "1"
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)] + list(argv), env)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = LlamaConfig.parse_dims(args.dims, tied=bool(args.tied))
    model = LlamaTorch(cfg, dtype=torch.float32, init_std=0.02, seed=args.seed)
    params = list(model.params.values())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=(args.optimizer == "foreach"))
    n_total = args.warmup_steps + args.steps
    data = torch.randint(0, cfg.n_vocab, (n_total, args.batch, args.seq + 1), dtype=torch.int64)

    times, cpu_times, losses = [], [], []
    load_before = os.getloadavg()[0]
    for s in range(n_total):
        t0 = time.perf_counter()
        c0 = time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = model.loss(data[s, :, :-1], data[s, :, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lv = float(loss)
        t1 = time.perf_counter()
        c1 = time.process_time()
        losses.append(lv)
        if s >= args.warmup_steps:
            times.append(t1 - t0)
            cpu_times.append(c1 - c0)

    total = sum(times)
    tokens = args.batch * args.seq * args.steps
    tok_s = tokens / total if total > 0 else float("nan")
    fpt = flops_per_token(model, args.seq)
    out = {
        "bench": "train_torch",
        "dims": cfg.describe(),
        "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup_steps": args.warmup_steps,
        "threads_requested": args.threads, "torch_num_threads": torch.get_num_threads(),
        "torch": torch.__version__, "optimizer": "AdamW(foreach=%s)" % (args.optimizer == "foreach"),
        "n_params": model.n_params(), "n_matmul_params": model.n_matmul_params(),
        "flops_per_token": fpt,
        "tokens_per_s": tok_s,
        "s_per_step_mean": total / len(times) if times else float("nan"),
        "s_per_step_median": statistics.median(times) if times else float("nan"),
        "s_per_step_min": min(times) if times else float("nan"),
        "gflops": fpt * tok_s / 1e9,
        # The fastest single step, as tokens/s: a less noisy figure where other work shares the cores.
        "tokens_per_s_best_step": args.batch * args.seq / min(times) if times else float("nan"),
        "cpu_s_per_step": sum(cpu_times) / len(cpu_times) if cpu_times else float("nan"),
        "loadavg_1min": [load_before, os.getloadavg()[0]],
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES"),
        "loss_first": losses[0], "loss_last": losses[-1],
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "cpu": platform.processor() or platform.machine(),
    }
    out.update(blas_info())
    if args.json:
        print(json.dumps(out))
    else:
        print("model: %s" % out["dims"])
        print("params: %d (%.2fM), matmul params N = %d; FLOPs/token = 6N + 12*L*T*Q = %.4g"
              % (out["n_params"], out["n_params"] / 1e6, out["n_matmul_params"], fpt))
        print("torch %s, threads %d (get_num_threads %d), %s, BLAS %s -> %s core=%s, OPENBLAS_CORETYPE=%s"
              % (out["torch"], args.threads, out["torch_num_threads"], out["optimizer"], out["torch_blas_info"],
                 ",".join(out["blas_libs"]) or "?", out.get("openblas_core"), out["OPENBLAS_CORETYPE"]))
        print("batch %d x seq %d, %d timed steps after %d warm-up: %.1f tokens/s, %.3f s/step (median %.3f, min %.3f), "
              "%.2f GFLOP/s; best step %.1f tokens/s; loss %.3f -> %.3f; max RSS %.0f MiB"
              % (args.batch, args.seq, args.steps, args.warmup_steps, tok_s, out["s_per_step_mean"],
                 out["s_per_step_median"], out["s_per_step_min"], out["gflops"], out["tokens_per_s_best_step"],
                 out["loss_first"], out["loss_last"], out["max_rss_mib"]))
        print("GLIBC_TUNABLES=%s; process CPU time %.3f s/step; 1-minute load average %.2f before, %.2f after (other work on the cores "
              "slows every figure)" % (out["GLIBC_TUNABLES"], out["cpu_s_per_step"], out["loadavg_1min"][0], out["loadavg_1min"][1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
