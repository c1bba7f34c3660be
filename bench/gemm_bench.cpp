// Google Benchmark of the training matrix product (tensor/gemm.h) on the products one training step of a
// ~15M-parameter llama makes (tokens 4096 = batch 16 x seq 256, embd 384, ff 1024, vocab 8192), per ISA and
// transposition: forward Y = X W^T (No, Yes), input gradient dX = dY W (No, No), weight gradient
// dW = dY^T X (Yes, No). GFLOP/s counts 2 m n k; compare with `membw --peak` (f32 FMA) on the same machine.
// Run: ./build/hearth_kernel_bench --benchmark_filter=sgemm
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "tensor/gemm.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

struct Shape {
    const char* name;
    Trans ta, tb;
    int64_t m, n, k;
};

const Shape kShapes[] = {
    {"fwd_ffn_up", Trans::No, Trans::Yes, 4096, 1024, 384},
    {"fwd_ffn_down", Trans::No, Trans::Yes, 4096, 384, 1024},
    {"fwd_head", Trans::No, Trans::Yes, 256, 8192, 384},
    {"dx_ffn_up", Trans::No, Trans::No, 4096, 384, 1024},
    {"dw_ffn_up", Trans::Yes, Trans::No, 1024, 384, 4096},
    {"dw_head", Trans::Yes, Trans::No, 8192, 384, 256},
};

void run(benchmark::State& state, const Shape& s, const kernels::KernelTable* t, int threads, bool bf16) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0, 1);
    std::vector<float> A(s.m * s.k), B(s.k * s.n), C(s.m * s.n);
    for (auto& x : A) x = d(rng);
    for (auto& x : B) x = d(rng);
    GemmArgs g;
    g.ta = s.ta, g.tb = s.tb, g.m = s.m, g.n = s.n, g.k = s.k;
    g.a = A.data(), g.lda = s.ta == Trans::No ? s.k : s.m;
    g.b = B.data(), g.ldb = s.tb == Trans::No ? s.n : s.k;
    g.c = C.data(), g.ldc = s.n, g.kernel = &t->sgemm;
    g.bf16 = bf16, g.bf16_kernel = &t->sgemm_bf16;
    for (auto _ : state) {
        sgemm(g, threads);
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.m * s.n * s.k * static_cast<double>(state.iterations()) / 1e9,
                                                   benchmark::Counter::kIsRate);
}

const int kRegistered = [] {
    for (kernels::Isa isa : {kernels::Isa::Avx2, kernels::Isa::Avx512}) {
        const kernels::KernelTable* t = kernels::table_for(isa);
        if (!t) continue;
        for (bool bf16 : {false, true}) {
            if (bf16 && !t->sgemm_bf16.tile) continue;
            for (const Shape& s : kShapes)
                for (int threads : {1, 2})
                    benchmark::RegisterBenchmark((std::string(bf16 ? "sgemm_bf16/" : "sgemm/") + t->name + "/" + s.name +
                                                  "/threads:" + std::to_string(threads))
                                                     .c_str(),
                                                 [s, t, threads, bf16](benchmark::State& st) { run(st, s, t, threads, bf16); })
                        ->UseRealTime()
                        ->Unit(benchmark::kMillisecond);
        }
    }
    return 0;
}();

}  // namespace
}  // namespace hearth
