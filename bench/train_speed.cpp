// Training speed of hearth's engine on random tokens: forward + backward + AdamW steps of a llama of the given
// shape, batch, sequence length and threads, timed after warm-up steps. bench/train runs it beside PyTorch's
// (bench/train_torch.py) on the same model, batch and threads, in one run.
//   hearth_train_bench --dims "embd=384,layers=6,heads=6,kv_heads=6,ff=1024,vocab=8192" --batch 8 --seq 256
//                      --threads 2 --steps 10 --warmup-steps 2 [--recompute] [--json]
// FLOPs per token: lab::train_flops_per_token (PaLM's 6N + 12 L Q T, as bench/train_torch.py counts them). "gemm" figures are the layers' and the head's matrix products alone (attention's small
// products count under attention).
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lab/train/optim.h"
#include "lab/train/params.h"
#include "lab/train/trainer.h"
#include "lab/train/transformer.h"
#include "model/synth.h"
#include "tensor/kernels.h"

int main(int argc, char** argv) {
    using namespace hearth;
    CLI::App app{"hearth training speed"};
    std::string dims = "embd=384,layers=6,heads=6,kv_heads=6,ff=1024,vocab=8192";
    int batch = 8, seq = 256, threads = 2, steps = 10, warmup = 2;
    bool recompute = false, json = false, bf16 = false;
    app.add_option("--dims", dims, "Model shape (synth syntax)");
    app.add_option("--batch", batch);
    app.add_option("--seq", seq);
    app.add_option("--threads", threads);
    app.add_option("--steps", steps, "Timed steps");
    app.add_option("--warmup-steps", warmup, "Untimed steps first");
    app.add_flag("--recompute", recompute);
    app.add_flag("--bf16", bf16, "bfloat16 matrix products (AVX512-BF16)");
    app.add_flag("--json", json);
    CLI11_PARSE(app, argc, argv);
    try {
        SynthShape ss = synth_shape(dims);
        lab::TrainShape shape = lab::train_shape_from(ss);
        shape.n_ctx = seq;
        const lab::ParamLayout layout(shape);
        std::vector<float> p(layout.n_floats()), g(layout.n_floats()), m(layout.n_floats()), v(layout.n_floats());
        lab::init_params(layout, 1, 0.02f, p.data());
        std::mt19937 rng(2);
        std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(shape.n_vocab - 1));
        std::vector<int32_t> tokens(static_cast<size_t>(batch) * (seq + 1));
        lab::Transformer tr(layout, threads, recompute, bf16);
        lab::AdamWConfig adam;
        double secs = 0;
        for (int s = 0; s < warmup + steps; ++s) {
            for (auto& t : tokens) t = tok(rng);
            if (s == warmup) tr.reset_profile();
            const auto t0 = std::chrono::steady_clock::now();
            lab::zero_grads(g.data(), g.size(), threads);
            tr.forward_backward(p.data(), tokens.data(), batch, seq, 1.0f / (batch * seq), g.data());
            const double norm = lab::global_norm(g.data(), g.size(), threads);
            lab::clip_by_global_norm(g.data(), g.size(), norm, 1.0f, threads);
            lab::adamw_step(layout, adam, 1e-3f, s + 1, p.data(), g.data(), m.data(), v.data(), threads);
            if (s >= warmup) secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        int64_t n_matmul = 0, n_params = 0;
        for (const auto& t : layout.tensors()) {
            n_params += t.size();
            if (t.decay && t.name != "token_embd.weight") n_matmul += t.size();
        }
        n_matmul += shape.n_vocab * shape.n_embd;
        const double fpt = lab::train_flops_per_token(n_matmul, shape.n_layer, shape.q_dim(), seq);
        const double tps = static_cast<double>(batch) * seq * steps / secs;
        const auto& pr = tr.profile();
        nlohmann::json j{{"engine", "hearth"},
                         {"isa", kernels::active().name},
                         {"dims", dims},
                         {"batch", batch},
                         {"seq", seq},
                         {"threads", threads},
                         {"recompute", recompute},
                         {"bf16", bf16},
                         {"steps", steps},
                         {"n_params", n_params},
                         {"flops_per_token", fpt},
                         {"tokens_per_s", tps},
                         {"s_per_step", secs / steps},
                         {"gflops_per_s", tps * fpt / 1e9},
                         {"gemm_gflops_per_s", pr.gemm_flop / pr.gemm_s / 1e9},
                         {"gemm_share", pr.gemm_s / pr.total_s},
                         {"attention_share", pr.attention_s / pr.total_s},
                         {"optimizer_share", 1.0 - pr.total_s / secs}};
        if (json) {
            fmt::print("{}\n", j.dump());
        } else {
            fmt::print("hearth ({}) {} batch {} seq {} threads {}: {:.0f} tok/s, {:.3f} s/step, {:.1f} GFLOP/s; "
                       "matrix products {:.1f} GFLOP/s ({:.0f} % of the step), attention {:.0f} %, optimiser {:.0f} %\n",
                       kernels::active().name, dims, batch, seq, threads, tps, secs / steps, tps * fpt / 1e9,
                       pr.gemm_flop / pr.gemm_s / 1e9, 100 * pr.gemm_s / pr.total_s, 100 * pr.attention_s / pr.total_s,
                       100 * (1.0 - pr.total_s / secs));
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
