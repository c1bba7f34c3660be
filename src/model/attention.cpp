// Attention kernels: a portable reference and an AVX-512 path selected at run time (the function carries
// its own target attribute, so the rest of the binary stays baseline x86-64).
#include "model/attention.h"

#include <immintrin.h>
// GCC 12's _mm512_undefined_*() self-initialise, which -Wmaybe-uninitialized reports at every inlined use
// (GCC bug 105593); the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <algorithm>
#include <array>
#include <utility>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"
#include "tensor/kernels/exp_avx512.h"

namespace hearth {

namespace {
constexpr int kChunk = 256;  // cells whose scores the AVX-512 kernel holds at once, per row
constexpr int kPrefetchBlocks = 1;  // how many blocks ahead the AVX-512 kernel fetches K (V: one less)
}  // namespace

int64_t attend_work_floats(int) { return static_cast<int64_t>(kAttnMaxRows) * kChunk + 64; }

namespace {
// Value i of a block of the view's type.
inline float kv_value(const void* block, int64_t i, KvType type) {
    return type == KvType::F32 ? static_cast<const float*>(block)[i] : f16_to_f32(static_cast<const f16_t*>(block)[i]);
}
}  // namespace

void attend_ref(const AttnRow* rows, int n_rows, const KvSeqView& kv, int64_t kv_head, int head_dim, float scale,
                float*) {
    const int bs = kv.block_size;
    for (int r = 0; r < n_rows; ++r) {
        const float* q = rows[r].q;
        float* acc = rows[r].out;
        std::fill(acc, acc + head_dim, 0.0f);
        float m = -INFINITY, l = 0;
        // Online softmax one cell at a time.
        for (int c = std::max(rows[r].cell_begin, rows[r].cell_first); c < rows[r].n_kv; ++c) {
            const void* kb = kv.k_blocks[c / bs];
            const void* vb = kv.v_blocks[c / bs];
            const int64_t k0 = kv_head * head_dim * bs + c % bs;
            const int64_t v0 = kv_head * head_dim + static_cast<int64_t>(c % bs) * kv.kv_dim;
            float d = 0;
            for (int j = 0; j < head_dim; ++j) d += q[j] * kv_value(kb, k0 + static_cast<int64_t>(j) * bs, kv.type);
            const float sc = d * scale;
            const float m_new = std::max(m, sc);
            const float corr = std::exp(m - m_new), p = std::exp(sc - m_new);
            l = l * corr + p;
            for (int j = 0; j < head_dim; ++j) acc[j] = acc[j] * corr + p * kv_value(vb, v0 + j, kv.type);
            m = m_new;
        }
        if (rows[r].partial) {
            rows[r].partial[0] = m;
            rows[r].partial[1] = l;
            continue;
        }
        const float inv = 1.0f / l;
        for (int j = 0; j < head_dim; ++j) acc[j] *= inv;
    }
}

void merge_partials(const float* parts, int64_t part_stride, const float* stats, int n_parts, int head_dim,
                    float* out) {
    float m = -INFINITY;
    for (int p = 0; p < n_parts; ++p) m = std::max(m, stats[2 * p]);
    std::fill(out, out + head_dim, 0.0f);
    float l = 0;
    for (int p = 0; p < n_parts; ++p) {
        if (stats[2 * p] == -INFINITY) continue;  // empty part
        const float w = std::exp(stats[2 * p] - m);
        l += w * stats[2 * p + 1];
        const float* part = parts + p * part_stride;
        for (int j = 0; j < head_dim; ++j) out[j] += w * part[j];
    }
    const float inv = 1.0f / l;
    for (int j = 0; j < head_dim; ++j) out[j] *= inv;
}

namespace {

#define HEARTH_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

// 16 values as floats: f32 read as is, f16 widened (vcvtph2ps); masked forms read only the lanes in m.
HEARTH_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
HEARTH_AVX512 inline __m512 load16(const f16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
HEARTH_AVX512 inline __m512 load16(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
HEARTH_AVX512 inline __m512 load16(__mmask16 m, const f16_t* p) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

// row[0, head_dim) *= c: whole columns of 16 plainly, a last group of 8 masked.
HEARTH_AVX512 inline void scale_row(float* row, int head_dim, __m512 c) {
    int j = 0;
    for (; j + 16 <= head_dim; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(c, _mm512_loadu_ps(row + j)));
    if (j < head_dim) {
        const __mmask16 m = static_cast<__mmask16>((1u << (head_dim - j)) - 1);
        _mm512_mask_storeu_ps(row + j, m, _mm512_mul_ps(c, _mm512_maskz_loadu_ps(m, row + j)));
    }
}

// Block size 16 (one zmm of cells), head_dim a multiple of 8 (a last column group of 8 is masked), R rows, K and V
// values of type T (float or f16_t).
template <int R, typename T>
HEARTH_AVX512 void attend_avx512(const AttnRow* rows, const KvSeqView& kv, int64_t kv_head, int head_dim,
                                 float scale, float* work) {
    constexpr int bs = 16;
    // With few rows the score chains are too few to hide the FMA latency: split them over even / odd dims.
    constexpr int kSplit = R <= 4 ? 2 : 1;
    float m[R], l[R];
    const float* q[R];
    float* out[R];
    int n_max = 0;
    const int c_begin = rows[0].cell_begin;
    for (int r = 0; r < R; ++r) {
        m[r] = -INFINITY, l[r] = 0, q[r] = rows[r].q, out[r] = rows[r].out;
        n_max = std::max(n_max, rows[r].n_kv);
        std::memset(out[r], 0, sizeof(float) * static_cast<size_t>(head_dim));
    }
    // [R][kChunk] scores, then weights; 64-byte aligned inside the caller's buffer (it has the slack).
    float* S = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(work) + 63) & ~uintptr_t(63));
    const __m512 lane = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    // The columns j..j+15 of a row that exist (all but past head_dim).
    auto cols = [head_dim](int j) -> __mmask16 {
        return head_dim - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (head_dim - j)) - 1);
    };

    for (int c0 = c_begin; c0 < n_max; c0 += kChunk) {
        const int nc = std::min(kChunk, n_max - c0), nb = (nc + bs - 1) / bs;
        // Scores of the chunk, masked past each row's causal limit.
        for (int b = 0; b < nb; ++b) {
            const int cell0 = c0 + b * bs;
            const T* kt = static_cast<const T*>(kv.k_blocks[cell0 / bs]) + kv_head * head_dim * bs;
            // The accumulators must live in registers: every loop over r / x is unrolled (GCC otherwise keeps
            // the arrays on the stack and each FMA waits for a store and a reload).
            __m512 s[kSplit][R];
#pragma GCC unroll 2
            for (int x = 0; x < kSplit; ++x)
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) s[x][r] = _mm512_setzero_ps();
            // Blocks lie anywhere in the pool, out of the hardware prefetcher's sight: fetch the next block's K
            // (of this head) while this one is multiplied.
            const int last_block = (n_max - 1) / bs;
            const T* kt_next =
                static_cast<const T*>(kv.k_blocks[std::min(cell0 / bs + kPrefetchBlocks, last_block)]) + kv_head * head_dim * bs;
            // This block's V rows (head_dim cache lines, as many as the K lines) are fetched now too, for the
            // weighted sum after the chunk's scores.
            const T* vb_pf =
                static_cast<const T*>(kv.v_blocks[std::min(cell0 / bs + kPrefetchBlocks - 1, last_block)]) + kv_head * head_dim;
            const int v_lines_per_row = (head_dim + 15) / 16;
            for (int j = 0; j < head_dim; j += kSplit) {
#pragma GCC unroll 2
                for (int x = 0; x < kSplit; ++x) {
                    _mm_prefetch(reinterpret_cast<const char*>(kt_next + (j + x) * bs), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(vb_pf + ((j + x) / v_lines_per_row) * kv.kv_dim +
                                                               ((j + x) % v_lines_per_row) * 16),
                                 _MM_HINT_T0);
                    const __m512 k = load16(kt + (j + x) * bs);
#pragma GCC unroll 16
                    for (int r = 0; r < R; ++r) s[x][r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][j + x]), k, s[x][r]);
                }
            }
            const __m512 cells = _mm512_add_ps(lane, _mm512_set1_ps(static_cast<float>(cell0)));
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) {
                const __m512 sum = kSplit == 2 ? _mm512_add_ps(s[0][r], s[kSplit - 1][r]) : s[0][r];
                __mmask16 ok =
                    _mm512_cmp_ps_mask(cells, _mm512_set1_ps(static_cast<float>(rows[r].n_kv)), _CMP_LT_OQ);
                if (rows[r].cell_first > cell0)
                    ok &= _mm512_cmp_ps_mask(cells, _mm512_set1_ps(static_cast<float>(rows[r].cell_first)), _CMP_GE_OQ);
                _mm512_store_ps(S + r * kChunk + b * bs, _mm512_mask_mul_ps(ninf, ok, sum, vscale));
            }
        }
        // Weights against the running maximum; rescale what was accumulated before.
        for (int r = 0; r < R; ++r) {
            float* sr = S + r * kChunk;
            __m512 vm = ninf;
            for (int b = 0; b < nb; ++b) vm = _mm512_max_ps(vm, _mm512_load_ps(sr + b * bs));
            const float m_new = std::max(m[r], _mm512_reduce_max_ps(vm));
            if (m_new == -INFINITY) {  // no visible cell yet (a part of a split row past this row's end)
                std::memset(sr, 0, sizeof(float) * static_cast<size_t>(nb * bs));
                continue;
            }
            const float corr = std::exp(m[r] - m_new);
            const __m512 mv = _mm512_set1_ps(m_new);
            __m512 sum = _mm512_setzero_ps();
            for (int b = 0; b < nb; ++b) {
                const __m512 x = _mm512_load_ps(sr + b * bs);
                const __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, ninf, _CMP_NEQ_OQ),
                                                     kernels::exp512(_mm512_sub_ps(x, mv)));
                _mm512_store_ps(sr + b * bs, e);
                sum = _mm512_add_ps(sum, e);
            }
            l[r] = l[r] * corr + _mm512_reduce_add_ps(sum);
            m[r] = m_new;
            if (corr != 1.0f) {
                const __m512 c = _mm512_set1_ps(corr);
                scale_row(out[r], head_dim, c);
            }
        }
        // Weighted sum of V rows, JC 16-float columns of every row at a time (R * JC accumulators in registers),
        // so each V row segment is read once per pass and its cache lines are used whole. Only cells below n_max
        // are read: all of them hold written K / V.
        constexpr int JC = R <= 2 ? 8 : R <= 4 ? 4 : R <= 8 ? 2 : 1;
        for (int j0 = 0; j0 < head_dim; j0 += 16 * JC) {
            const int jc = std::min(JC, (head_dim - j0) / 16);
            if (jc == JC) {
                __m512 acc[R][JC];
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
                    for (int x = 0; x < JC; ++x) acc[r][x] = _mm512_loadu_ps(out[r] + j0 + 16 * x);
                for (int b = 0; b < nb; ++b) {
                    const T* vb = static_cast<const T*>(kv.v_blocks[(c0 + b * bs) / bs]) + kv_head * head_dim + j0;
                    const T* vb_next =
                        static_cast<const T*>(kv.v_blocks[(c0 + (b + 1 < nb ? b + 1 : b) * bs) / bs]) + kv_head * head_dim + j0;
                    const int n = std::min(bs, nc - b * bs);
                    for (int i = 0; i < n; ++i) {
                        const T* vr = vb + i * kv.kv_dim;
                        const int cell = b * bs + i;
#pragma GCC unroll 8
                        for (int x = 0; x < JC; ++x) {
                            _mm_prefetch(reinterpret_cast<const char*>(vb_next + i * kv.kv_dim + 16 * x), _MM_HINT_T0);
                            const __m512 v = load16(vr + 16 * x);
#pragma GCC unroll 16
                            for (int r = 0; r < R; ++r)
                                acc[r][x] = _mm512_fmadd_ps(_mm512_set1_ps(S[r * kChunk + cell]), v, acc[r][x]);
                        }
                    }
                }
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
                    for (int x = 0; x < JC; ++x) _mm512_storeu_ps(out[r] + j0 + 16 * x, acc[r][x]);
                continue;
            }
            // A head_dim that is not a multiple of 16 * JC: the remaining columns 16 (the last maybe 8) at a time.
            for (int j = j0; j < head_dim; j += 16) {
                const __mmask16 cm = cols(j);
                __m512 acc[R];
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) acc[r] = _mm512_maskz_loadu_ps(cm, out[r] + j);
                for (int b = 0; b < nb; ++b) {
                    const T* vb = static_cast<const T*>(kv.v_blocks[(c0 + b * bs) / bs]) + kv_head * head_dim + j;
                    const int n = std::min(bs, nc - b * bs);
                    for (int i = 0; i < n; ++i) {
                        const __m512 v = load16(cm, vb + i * kv.kv_dim);
                        const int cell = b * bs + i;
#pragma GCC unroll 16
                        for (int r = 0; r < R; ++r)
                            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(S[r * kChunk + cell]), v, acc[r]);
                    }
                }
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(out[r] + j, cm, acc[r]);
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        if (rows[r].partial) {
            rows[r].partial[0] = m[r];
            rows[r].partial[1] = l[r];
            continue;
        }
        const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
        scale_row(out[r], head_dim, inv);
    }
}

template <typename T, int... Rs>
constexpr auto make_kernels(std::integer_sequence<int, Rs...>) {
    using Fn = void (*)(const AttnRow*, const KvSeqView&, int64_t, int, float, float*);
    return std::array<Fn, sizeof...(Rs)>{&attend_avx512<Rs + 1, T>...};
}
constexpr auto kKernelsF32 = make_kernels<float>(std::make_integer_sequence<int, kAttnMaxRows>{});
constexpr auto kKernelsF16 = make_kernels<f16_t>(std::make_integer_sequence<int, kAttnMaxRows>{});

// Follows the kernel dispatch, so HEARTH_ISA=ref forces the reference here too.
bool has_avx512() { return kernels::active().isa == kernels::Isa::Avx512; }

}  // namespace

void attend(const AttnRow* rows, int n_rows, const KvSeqView& kv, int64_t kv_head, int head_dim, float scale,
            float* work) {
    if (n_rows < 1 || n_rows > kAttnMaxRows) fail("attention tile of {} rows (1..{} allowed)", n_rows, kAttnMaxRows);
    for (int r = 0; r < n_rows; ++r) {
        const AttnRow& row = rows[r];
        if (row.cell_begin != rows[0].cell_begin || row.cell_begin < 0 || row.cell_begin % kv.block_size != 0)
            fail("attention row {} starts at cell {} (rows of a tile must share a block-aligned start)", r,
                 row.cell_begin);
        const int first = std::max(row.cell_begin, row.cell_first);
        if (row.cell_first < 0 || (!row.partial && row.n_kv <= first) || row.n_kv < row.cell_begin)
            fail("attention row {} sees cells [{}, {}) (an empty range is only allowed for a partial row)", r,
                 first, row.n_kv);
    }
    if (kv.block_size == 16 && head_dim % 8 == 0 && has_avx512()) {
        (kv.type == KvType::F16 ? kKernelsF16 : kKernelsF32)[n_rows - 1](rows, kv, kv_head, head_dim, scale, work);
        return;
    }
    attend_ref(rows, n_rows, kv, kv_head, head_dim, scale, work);
}

}  // namespace hearth
