// Google Benchmark of decode attention over the paged KV cache, the shape continuous batching runs: S sequences
// of n_kv cells each, every sequence one token (a tile of the query heads of one KV head), over L layers whose
// blocks lie scattered in one pool as the cache hands them out. With 30 layers the cache is far larger than the
// CPU caches, so every step streams K and V from DRAM: bytes/s counts the K and V bytes the step must read,
// comparable with the membw roofline.
//  * attend/decode/hd<head_dim>/g<rows per kv head>/kv<kv heads>/ctx<n_kv>/seqs<S>/<f32|f16> (the cache's type)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "base/huge_buffer.h"
#include "model/attention.h"

namespace hearth {
namespace {

void bm_attend_decode(benchmark::State& state, int head_dim, int group, int n_kv_heads, int n_kv, int n_seqs,
                      KvType type) {
    constexpr int bs = 16, n_layers = 30;
    const int64_t kv_dim = int64_t(n_kv_heads) * head_dim;
    const int blocks_per_seq = (n_kv + bs - 1) / bs;
    const int64_t n_blocks = int64_t(blocks_per_seq) * n_seqs * n_layers;
    const int64_t block_floats = kv_dim * bs;
    const bool huge = state.range(0) != 0;
    std::vector<float> k_vec, v_vec;
    HugeBuffer k_huge, v_huge;
    if (huge) {
        k_huge = HugeBuffer(size_t(n_blocks * block_floats));
        v_huge = HugeBuffer(size_t(n_blocks * block_floats));
    } else {
        k_vec.assign(size_t(n_blocks * block_floats), 0.0f);
        v_vec.assign(k_vec.size(), 0.0f);
    }
    float* k_pool = huge ? k_huge.data() : k_vec.data();
    float* v_pool = huge ? v_huge.data() : v_vec.data();
    const size_t pool_floats = size_t(n_blocks * block_floats);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (size_t i = 0; i < pool_floats; i += 97) k_pool[i] = nd(rng), v_pool[i] = nd(rng);
    if (type == KvType::F16)  // the same pools read as halves (the first half of each suffices)
        for (size_t i = 0; i < pool_floats; i += 97) k_pool[i] = 0.5f, v_pool[i] = -0.25f;
    // Blocks in shuffled order: a sequence's blocks are not adjacent in the pool.
    std::vector<int64_t> order(static_cast<size_t>(n_blocks));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t elem = kv_type_bytes(type);
    std::vector<const void*> kp(order.size()), vp(order.size());
    for (size_t i = 0; i < order.size(); ++i) {
        kp[i] = reinterpret_cast<const char*>(k_pool) + size_t(order[i] * block_floats) * elem;
        vp[i] = reinterpret_cast<const char*>(v_pool) + size_t(order[i] * block_floats) * elem;
    }

    const int n_head = group * n_kv_heads;
    std::vector<float> q(size_t(n_seqs) * n_head * head_dim), out(q.size());
    for (auto& x : q) x = nd(rng);
    std::vector<float> work(size_t(attend_work_floats(head_dim)));
    const float scale = 1.0f / std::sqrt(float(head_dim));
    std::vector<AttnRow> rows(static_cast<size_t>(group));
    for (auto _ : state) {
        for (int l = 0; l < n_layers; ++l) {
            for (int s = 0; s < n_seqs; ++s) {
                const size_t first = size_t((int64_t(l) * n_seqs + s) * blocks_per_seq);
                const KvSeqView view{kp.data() + first, vp.data() + first, bs, kv_dim, type};
                for (int h = 0; h < n_kv_heads; ++h) {
                    for (int r = 0; r < group; ++r) {
                        const size_t off = (size_t(s) * n_head + size_t(h) * group + r) * head_dim;
                        rows[size_t(r)] = AttnRow{q.data() + off, out.data() + off, n_kv};
                    }
                    attend(rows.data(), group, view, h, head_dim, scale, work.data());
                }
            }
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    const int64_t bytes = int64_t(n_layers) * n_seqs * n_kv * kv_dim * 2 * int64_t(elem);
    state.SetBytesProcessed(int64_t(state.iterations()) * bytes);
}

struct Registrar {
    Registrar() {
        struct Shape {
            int head_dim, group, kv_heads, n_kv, seqs;
        };
        // smollm2-135m (9 heads, 3 kv heads, head_dim 64) at serving contexts; llama3.2-1b (32 / 8, head_dim 64);
        // qwen3-0.6b (16 / 8, head_dim 128).
        for (const Shape& s : {Shape{64, 3, 3, 512, 16}, Shape{64, 3, 3, 512, 1}, Shape{64, 4, 8, 512, 16},
                               Shape{128, 2, 8, 512, 16}}) {
            const std::string name = "attend/decode/hd" + std::to_string(s.head_dim) + "/g" + std::to_string(s.group) +
                                     "/kv" + std::to_string(s.kv_heads) + "/ctx" + std::to_string(s.n_kv) + "/seqs" +
                                     std::to_string(s.seqs);
            for (const KvType type : {KvType::F32, KvType::F16})
                benchmark::RegisterBenchmark((name + "/" + kv_type_name(type)).c_str(), bm_attend_decode, s.head_dim,
                                             s.group, s.kv_heads, s.n_kv, s.seqs, type)
                    ->ArgName("huge_pages")
                    ->Arg(0)
                    ->Arg(1)
                    ->Unit(benchmark::kMillisecond);
        }
    }
};
const Registrar registrar;

}  // namespace
}  // namespace hearth
