// Google Benchmark of decode attention over the paged KV cache, the shape continuous batching runs: S sequences
// of n_kv cells each, every sequence one token (a tile of the query heads of one KV head), over L layers whose
// blocks lie scattered in one pool as the cache hands them out. With 30 layers the cache is far larger than the
// CPU caches, so every step streams K and V from DRAM: bytes/s counts the K and V bytes the step must read,
// comparable with the membw roofline.
//  * attend/decode/hd<head_dim>/g<rows per kv head>/kv<kv heads>/ctx<n_kv>/seqs<S>/<type>: the cache's type, the
//    compressed ones with every block quantized (their steady state)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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
    const KvLayout layout = kv_layout(type, static_cast<int>(kv_dim), head_dim, bs);
    const bool huge = state.range(0) != 0;
    // Pools of whole blocks (in floats, rounded up), K and V.
    const size_t k_floats = (size_t(n_blocks) * layout.k_bytes + 3) / 4, v_floats = (size_t(n_blocks) * layout.v_bytes + 3) / 4;
    std::vector<float> k_vec, v_vec;
    HugeBuffer k_huge, v_huge;
    if (huge) {
        k_huge = HugeBuffer(k_floats);
        v_huge = HugeBuffer(v_floats);
    } else {
        k_vec.assign(k_floats, 0.0f);
        v_vec.assign(v_floats, 0.0f);
    }
    auto* k_pool = reinterpret_cast<uint8_t*>(huge ? k_huge.data() : k_vec.data());
    auto* v_pool = reinterpret_cast<uint8_t*>(huge ? v_huge.data() : v_vec.data());
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    {  // every block holds the same Gaussian block in the type's format
        std::vector<float> kf(size_t(kv_dim) * bs), vf(kf.size());
        for (size_t i = 0; i < kf.size(); ++i) kf[i] = nd(rng), vf[i] = nd(rng);
        std::vector<uint8_t> kb(layout.k_bytes), vb(layout.v_bytes);
        if (type == KvType::F32) {
            std::memcpy(kb.data(), kf.data(), kb.size());
            std::memcpy(vb.data(), vf.data(), vb.size());
        } else {
            std::vector<f16_t> kh(kf.size()), vh(kf.size());
            for (size_t i = 0; i < kf.size(); ++i) kh[i] = f32_to_f16(kf[i]), vh[i] = f32_to_f16(vf[i]);
            if (kv_type_quantized(type)) {
                kv_quantize_block(layout, kh.data(), vh.data(), kb.data(), vb.data());
            } else {
                std::memcpy(kb.data(), kh.data(), kb.size());
                std::memcpy(vb.data(), vh.data(), vb.size());
            }
        }
        for (int64_t i = 0; i < n_blocks; ++i) {
            std::memcpy(k_pool + size_t(i) * layout.k_bytes, kb.data(), kb.size());
            std::memcpy(v_pool + size_t(i) * layout.v_bytes, vb.data(), vb.size());
        }
    }
    // Blocks in shuffled order: a sequence's blocks are not adjacent in the pool.
    std::vector<int64_t> order(static_cast<size_t>(n_blocks));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<const void*> kp(order.size()), vp(order.size());
    for (size_t i = 0; i < order.size(); ++i) {
        kp[i] = k_pool + size_t(order[i]) * layout.k_bytes;
        vp[i] = v_pool + size_t(order[i]) * layout.v_bytes;
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
                KvSeqView view{kp.data() + first, vp.data() + first, bs, kv_dim, type};
                view.layout = &layout;
                view.n_quant_blocks = blocks_per_seq;  // all quantized (a compressed type's steady state)
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
    const int64_t bytes = int64_t(double(n_layers) * n_seqs * n_kv * layout.bytes_per_token());
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
            for (const KvType type : {KvType::F32, KvType::F16, KvType::Q8, KvType::Q4, KvType::Rot4, KvType::Rot3})
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
