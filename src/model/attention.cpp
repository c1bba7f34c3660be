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
#include <vector>

#include "base/error.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"
#include "tensor/kernels/exp_avx512.h"
#include "runtime/kv_quant.h"

namespace hearth {

namespace {
constexpr int kChunk = 256;  // cells whose scores the AVX-512 kernel holds at once, per row
constexpr int kPrefetchBlocks = 1;  // how many blocks ahead the AVX-512 kernel fetches K (V: one less)
constexpr int kMaxPadRows = 3;      // rows a tile is padded with to reach a kernel's row count (kKernelRows)
constexpr int kMaxFoldHeadDim = 256;  // head sizes the kernel takes for formats with per-channel key scales
}  // namespace

// The kernels' scores, padding rows, then (compressed types) rotated queries and the two halves of a split row.
constexpr int64_t kScoreFloats = static_cast<int64_t>(kAttnMaxRows) * kChunk + 64;
int64_t attend_work_floats(int head_dim) {
    return kScoreFloats + kMaxPadRows * (head_dim + 2) + static_cast<int64_t>(kAttnMaxRows) * (3 * head_dim + 4);
}

void attend_ref(const AttnRow* rows, int n_rows, const KvSeqView& kv, int64_t kv_head, int head_dim, float scale,
                float*) {
    const int bs = kv.block_size;
    const int D = static_cast<int>(kv.kv_dim);
    // Quantized blocks in the view's layout, the others in f16 (compressed types) or the plain type.
    const KvLayout plain = kv_layout(kv_type_quantized(kv.type) ? KvType::F16 : kv.type, D, head_dim, bs);
    const KvLayout quant = kv.layout ? *kv.layout : plain;
    const bool rotated = kv_type_rotated(kv.type);
    std::vector<float> q(static_cast<size_t>(head_dim));
    for (int r = 0; r < n_rows; ++r) {
        std::copy(rows[r].q, rows[r].q + head_dim, q.begin());
        if (rotated) kv_rotate(q.data(), head_dim);
        float* acc = rows[r].out;
        std::fill(acc, acc + head_dim, 0.0f);
        float m = -INFINITY, l = 0;
        // Online softmax one cell at a time.
        for (int c = std::max(rows[r].cell_begin, rows[r].cell_first); c < rows[r].n_kv; ++c) {
            const int b = c / bs;
            const bool quantized = kv_type_quantized(kv.type) && b < kv.n_quant_blocks;
            const KvLayout& L = quantized ? quant : plain;
            const float* mean = quantized && kv.key_mean ? kv.key_mean + static_cast<size_t>(kv_head) * head_dim : nullptr;
            const int ch0 = static_cast<int>(kv_head) * head_dim;
            float d = 0;
            for (int j = 0; j < head_dim; ++j)
                d += q[j] * (kv_k_value(L, kv.k_blocks[b], ch0 + j, c % bs) + (mean ? mean[j] : 0.0f));
            const float sc = d * scale;
            const float m_new = std::max(m, sc);
            const float corr = std::exp(m - m_new), p = std::exp(sc - m_new);
            l = l * corr + p;
            for (int j = 0; j < head_dim; ++j) acc[j] = acc[j] * corr + p * kv_v_value(L, kv.v_blocks[b], c % bs, ch0 + j);
            m = m_new;
        }
        if (rows[r].partial) {
            rows[r].partial[0] = m;
            rows[r].partial[1] = l;
        } else {
            const float inv = 1.0f / l;
            for (int j = 0; j < head_dim; ++j) acc[j] *= inv;
        }
        if (rotated) kv_unrotate(acc, head_dim);  // linear: a partial row's sum rotates back as well
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

#define HEARTH_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma,f16c")))

// The shape the formats' address arithmetic needs.
struct Geo {
    int64_t D;  // kv_dim
    int hd;     // head_dim
    int H;      // KV heads
};

// Block formats as the kernel reads them. Each gives: k_load, the 16 cells of one channel of a K block
// (before the per-channel scale and offset, when kChannelScale, and before the per-cell scale, when
// kCellScale); channel_scales, 16 channels' scales and offsets (the kernel folds them into the query once per
// block and adds q.offset to the scores, instead of scaling every load); k_cell_scale, the per-cell scale of one
// head's 16 cells; v_load / v_load8, 16 / 8 channels of one cell of a V block (before the per-cell scale, when
// kCellVScale: the kernel folds v_cell_scale into the softmax weights; lanes past 8 of v_load8 hold finite
// values the caller masks off); v_at, the address of a cell's channel (for prefetching); kKRowBytes and kVBits,
// the bytes of one channel of a K block and the bits of one V value. Everything a format does once per block
// instead of once per load saves the decode kernel, which is bound by instructions, not by bytes.
HEARTH_AVX512 inline float f16f(const uint8_t* p) {
    f16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

struct FmtF32 {
    static constexpr bool kCellScale = false, kChannelScale = false, kCellVScale = false;
    static constexpr int kKRowBytes = 64, kVBits = 32;
    HEARTH_AVX512 static __m512 k_load(const uint8_t* kb, const Geo&, int ch) {
        return _mm512_loadu_ps(kb + static_cast<size_t>(ch) * 64);
    }
    HEARTH_AVX512 static __m512 k_cell_scale(const uint8_t*, const Geo&, int64_t) { return _mm512_set1_ps(1.0f); }
    HEARTH_AVX512 static const uint8_t* v_at(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return vb + (cell * g.D + ch) * 4;
    }
    HEARTH_AVX512 static __m512 v_load(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return _mm512_loadu_ps(v_at(vb, g, cell, ch));
    }
    HEARTH_AVX512 static __m512 v_load8(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return _mm512_maskz_loadu_ps(0xFF, v_at(vb, g, cell, ch));
    }
    HEARTH_AVX512 static void channel_scales(const uint8_t*, const Geo&, int64_t, __mmask16, __m512&, __m512&) {}
    HEARTH_AVX512 static float v_cell_scale(const uint8_t*, const Geo&, int, int64_t) { return 1.0f; }
};

struct FmtF16 {
    static constexpr bool kCellScale = false, kChannelScale = false, kCellVScale = false;
    static constexpr int kKRowBytes = 32, kVBits = 16;
    HEARTH_AVX512 static __m512 k_load(const uint8_t* kb, const Geo&, int ch) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb + static_cast<size_t>(ch) * 32)));
    }
    HEARTH_AVX512 static __m512 k_cell_scale(const uint8_t*, const Geo&, int64_t) { return _mm512_set1_ps(1.0f); }
    HEARTH_AVX512 static const uint8_t* v_at(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return vb + (cell * g.D + ch) * 2;
    }
    HEARTH_AVX512 static __m512 v_load(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v_at(vb, g, cell, ch))));
    }
    HEARTH_AVX512 static __m512 v_load8(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return _mm512_cvtph_ps(_mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v_at(vb, g, cell, ch)))));
    }
    HEARTH_AVX512 static void channel_scales(const uint8_t*, const Geo&, int64_t, __mmask16, __m512&, __m512&) {}
    HEARTH_AVX512 static float v_cell_scale(const uint8_t*, const Geo&, int, int64_t) { return 1.0f; }
};

// 16 4-bit codes (value 2i in the low nibble of byte i) from 8 bytes; 8 codes from 4 bytes.
HEARTH_AVX512 inline __m512i nibbles16(const uint8_t* p) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m)));
}
HEARTH_AVX512 inline __m512i nibbles8(const uint8_t* p) {
    int32_t w;
    std::memcpy(&w, p, 4);
    const __m128i b = _mm_cvtsi32_si128(w);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m)));
}
// 3-bit codes of a 6-byte unit (kv_quant.cpp), lanes from `first` on.
HEARTH_AVX512 inline __m512i threes(const uint8_t* unit, int first) {
    uint32_t lo;
    uint16_t hi;
    std::memcpy(&lo, unit, 4);
    std::memcpy(&hi, unit + 4, 2);
    const __m512i lane2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i low = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(lo >> (2 * first))), lane2),
                                         _mm512_set1_epi32(3));
    return _mm512_mask_or_epi32(low, static_cast<__mmask16>(hi >> first), low, _mm512_set1_epi32(4));
}

// The f16 value of the value group of channels ch.. of a cell, as 16 lanes (16 values: lanes 8.. take the next
// group's when the 16 straddle a group boundary, as in a head of 24 starting at channel 24). base: the first
// group's value; stride: bytes from one group's value to the next.
HEARTH_AVX512 inline __m512 group_values(const uint8_t* base, int stride, const Geo& g, int cell, int64_t ch, bool sixteen) {
    const int64_t group = cell * (g.D / kKvValueGroup) + ch / kKvValueGroup;
    const __m512 lo = _mm512_set1_ps(f16f(base + stride * group));
    if (!sixteen || ch % kKvValueGroup + 16 <= kKvValueGroup) return lo;
    return _mm512_mask_blend_ps(0xFF00, lo, _mm512_set1_ps(f16f(base + stride * (group + 1))));
}

struct FmtQ8 {
    static constexpr bool kCellScale = false, kChannelScale = true, kCellVScale = false;
    static constexpr int kKRowBytes = 16, kVBits = 8;
    HEARTH_AVX512 static __m512 k_load(const uint8_t* kb, const Geo&, int ch) {
        const __m512i c = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kb + static_cast<size_t>(ch) * 16)));
        return _mm512_cvtepi32_ps(c);
    }
    HEARTH_AVX512 static void channel_scales(const uint8_t* kb, const Geo& g, int64_t ch, __mmask16 m, __m512& scale,
                                             __m512& offset) {
        scale = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, kb + 16 * g.D + 2 * ch));
        offset = _mm512_setzero_ps();
    }
    HEARTH_AVX512 static __m512 k_cell_scale(const uint8_t*, const Geo&, int64_t) { return _mm512_set1_ps(1.0f); }
    HEARTH_AVX512 static const uint8_t* v_at(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return vb + cell * g.D + ch;
    }
    HEARTH_AVX512 static __m512 v_load(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        const __m512i c = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v_at(vb, g, cell, ch))));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(c), group_values(vb + 16 * g.D, 2, g, cell, ch, true));
    }
    HEARTH_AVX512 static __m512 v_load8(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        const __m512i c = _mm512_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v_at(vb, g, cell, ch))));
        return _mm512_mul_ps(_mm512_cvtepi32_ps(c), group_values(vb + 16 * g.D, 2, g, cell, ch, false));
    }    HEARTH_AVX512 static float v_cell_scale(const uint8_t*, const Geo&, int, int64_t) { return 1.0f; }
};

struct FmtQ4 {
    static constexpr bool kCellScale = false, kChannelScale = true, kCellVScale = false;
    static constexpr int kKRowBytes = 8, kVBits = 4;
    HEARTH_AVX512 static __m512 k_load(const uint8_t* kb, const Geo&, int ch) {
        return _mm512_cvtepi32_ps(nibbles16(kb + static_cast<size_t>(ch) * 8));
    }
    HEARTH_AVX512 static void channel_scales(const uint8_t* kb, const Geo& g, int64_t ch, __mmask16 m, __m512& scale,
                                             __m512& offset) {
        scale = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, kb + 8 * g.D + 2 * ch));
        offset = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, kb + 10 * g.D + 2 * ch));
    }
    HEARTH_AVX512 static __m512 k_cell_scale(const uint8_t*, const Geo&, int64_t) { return _mm512_set1_ps(1.0f); }
    HEARTH_AVX512 static const uint8_t* v_at(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return vb + cell * (g.D / 2) + ch / 2;
    }
    HEARTH_AVX512 static __m512 v_load(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        const uint8_t* sm = vb + 8 * g.D;
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(nibbles16(v_at(vb, g, cell, ch))), group_values(sm, 4, g, cell, ch, true),
                               group_values(sm + 2, 4, g, cell, ch, true));
    }
    HEARTH_AVX512 static __m512 v_load8(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        const uint8_t* sm = vb + 8 * g.D;
        return _mm512_fmadd_ps(_mm512_cvtepi32_ps(nibbles8(v_at(vb, g, cell, ch))), group_values(sm, 4, g, cell, ch, false),
                               group_values(sm + 2, 4, g, cell, ch, false));
    }    HEARTH_AVX512 static float v_cell_scale(const uint8_t*, const Geo&, int, int64_t) { return 1.0f; }
};

// The rot types' 8-bit scales of 16 cells: 2^((e - 144) / 8) = 2^(e & 7 / 8) * 2^((e >> 3) - 18).
HEARTH_AVX512 inline __m512 rot_scales16(const uint8_t* e8) {
    const __m512i e = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(e8)));
    const __m512 frac = _mm512_maskz_loadu_ps(0xFF, kKvRotScaleMantissa);
    const __m512 m = _mm512_permutexvar_ps(_mm512_and_si512(e, _mm512_set1_epi32(7)), frac);
    const __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(e, 3), _mm512_set1_epi32(kKvScaleBias / 8)));
    return _mm512_scalef_ps(m, x);
}

template <int Bits>
struct FmtRot {
    static constexpr bool kCellScale = true, kChannelScale = false, kCellVScale = true;
    static constexpr int kKRowBytes = Bits == 4 ? 8 : 6, kVBits = Bits;
    HEARTH_AVX512 static __m512 levels() {
        return Bits == 4 ? _mm512_loadu_ps(kKvRot4Levels)
                         : _mm512_maskz_loadu_ps(0xFF, kKvRot3Levels);
    }
    static size_t code_bytes(const Geo& g) { return static_cast<size_t>(g.D) * kKRowBytes; }
    HEARTH_AVX512 static __m512 k_load(const uint8_t* kb, const Geo&, int ch) {
        const uint8_t* row = kb + static_cast<size_t>(ch) * kKRowBytes;
        return _mm512_permutexvar_ps(Bits == 4 ? nibbles16(row) : threes(row, 0), levels());
    }
    HEARTH_AVX512 static __m512 k_cell_scale(const uint8_t* kb, const Geo& g, int64_t head) {
        return rot_scales16(kb + code_bytes(g) + head * 16);
    }
    HEARTH_AVX512 static const uint8_t* v_at(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        return Bits == 4 ? vb + cell * (g.D / 2) + ch / 2 : vb + (cell * (g.D / 16) + ch / 16) * 6;
    }
    HEARTH_AVX512 static float v_cell_scale(const uint8_t* vb, const Geo& g, int cell, int64_t head) {
        const uint8_t e = vb[code_bytes(g) + cell * g.H + head];
        const uint32_t pow2 = static_cast<uint32_t>((e >> 3) - kKvScaleBias / 8 + 127) << 23;
        float p;
        std::memcpy(&p, &pow2, 4);
        return kKvRotScaleMantissa[e & 7] * p;
    }
    HEARTH_AVX512 static __m512 v_load(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        const __m512i c = Bits == 4 ? nibbles16(v_at(vb, g, cell, ch)) : threes(v_at(vb, g, cell, ch), static_cast<int>(ch % 16));
        return _mm512_permutexvar_ps(c, levels());
    }
    HEARTH_AVX512 static __m512 v_load8(const uint8_t* vb, const Geo& g, int cell, int64_t ch) {
        const __m512i c = Bits == 4 ? nibbles8(v_at(vb, g, cell, ch)) : threes(v_at(vb, g, cell, ch), static_cast<int>(ch % 16));
        return _mm512_permutexvar_ps(c, levels());
    }
    HEARTH_AVX512 static void channel_scales(const uint8_t*, const Geo&, int64_t, __mmask16, __m512&, __m512&) {}
};

// row[0, head_dim) *= c: whole columns of 16 plainly, a last group of 8 masked.
HEARTH_AVX512 inline void scale_row(float* row, int head_dim, __m512 c) {
    int j = 0;
    for (; j + 16 <= head_dim; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(c, _mm512_loadu_ps(row + j)));
    if (j < head_dim) {
        const __mmask16 m = static_cast<__mmask16>((1u << (head_dim - j)) - 1);
        _mm512_mask_storeu_ps(row + j, m, _mm512_mul_ps(c, _mm512_maskz_loadu_ps(m, row + j)));
    }
}

// Block size 16 (one zmm of cells), head_dim a multiple of 8 (a last column group of 8 is masked), R rows, blocks
// of format F.
template <int R, typename F>
HEARTH_AVX512 void attend_avx512(const AttnRow* rows, const KvSeqView& kv, int64_t kv_head, int head_dim,
                                 float scale, float* work) {
    constexpr int bs = 16;
    // With few rows the score chains are too few to hide the FMA latency: split them over even / odd dims.
    constexpr int kSplit = R <= 4 ? 2 : 1;
    const Geo g{kv.kv_dim, head_dim, static_cast<int>(kv.kv_dim / head_dim)};
    const int64_t ch0 = kv_head * head_dim;  // this head's first channel
    auto kblock = [&](int b) { return static_cast<const uint8_t*>(kv.k_blocks[b]); };
    auto vblock = [&](int b) { return static_cast<const uint8_t*>(kv.v_blocks[b]); };
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
    // Queries with a block's channel scales folded in (formats with kChannelScale).
    alignas(64) float qs[F::kChannelScale ? R * kMaxFoldHeadDim : 1];
    const __m512 lane = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 vscale = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    // Cache lines of one head's K in a block, and of one cell's V segment of the head.
    const int k_lines = (head_dim * F::kKRowBytes + 63) / 64;
    const int v_lines_per_cell = (head_dim * F::kVBits / 8 + 63) / 64;

    for (int c0 = c_begin; c0 < n_max; c0 += kChunk) {
        const int nc = std::min(kChunk, n_max - c0), nb = (nc + bs - 1) / bs;
        // Scores of the chunk, masked past each row's causal limit.
        for (int b = 0; b < nb; ++b) {
            const int cell0 = c0 + b * bs;
            const uint8_t* kb = kblock(cell0 / bs);
            // The accumulators must live in registers: every loop over r / x is unrolled (GCC otherwise keeps
            // the arrays on the stack and each FMA waits for a store and a reload).
            __m512 s[kSplit][R];
#pragma GCC unroll 2
            for (int x = 0; x < kSplit; ++x)
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) s[x][r] = _mm512_setzero_ps();
            // Blocks lie anywhere in the pool, out of the hardware prefetcher's sight: fetch the next block's K
            // (of this head) while this one is multiplied, and this block's V for the weighted sum after the
            // chunk's scores.
            // Per-channel scales go into the query (qs = q * scale), per-channel offsets into the scores
            // (q . offset, the same for the block's 16 cells).
            const float* qk[R];
            float offset[R];
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) qk[r] = q[r], offset[r] = 0;
            if constexpr (F::kChannelScale) {
                __m512 off[R];
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) off[r] = _mm512_setzero_ps();
                for (int j = 0; j < head_dim; j += 16) {
                    const __mmask16 m = head_dim - j >= 16 ? __mmask16(0xFFFF) : __mmask16(0xFF);
                    __m512 sc, mn;
                    F::channel_scales(kb, g, ch0 + j, m, sc, mn);
#pragma GCC unroll 16
                    for (int r = 0; r < R; ++r) {
                        const __m512 qv = _mm512_maskz_loadu_ps(m, q[r] + j);
                        _mm512_mask_storeu_ps(qs + r * kMaxFoldHeadDim + j, m, _mm512_mul_ps(qv, sc));
                        off[r] = _mm512_fmadd_ps(qv, mn, off[r]);
                    }
                }
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) qk[r] = qs + r * kMaxFoldHeadDim, offset[r] = _mm512_reduce_add_ps(off[r]);
            }
            const int last_block = (n_max - 1) / bs;
            const uint8_t* k_pf = kblock(std::min(cell0 / bs + kPrefetchBlocks, last_block)) + ch0 * F::kKRowBytes;
            const uint8_t* v_pf = vblock(std::min(cell0 / bs + kPrefetchBlocks - 1, last_block));
            for (int j = 0; j < head_dim; j += kSplit) {
#pragma GCC unroll 2
                for (int x = 0; x < kSplit; ++x) {
                    const int it = j + x;
                    if (it < k_lines) _mm_prefetch(reinterpret_cast<const char*>(k_pf + 64 * it), _MM_HINT_T0);
                    if (it < bs * v_lines_per_cell)
                        _mm_prefetch(reinterpret_cast<const char*>(F::v_at(v_pf, g, it / v_lines_per_cell, ch0) +
                                                                   64 * (it % v_lines_per_cell)),
                                     _MM_HINT_T0);
                    const __m512 k = F::k_load(kb, g, static_cast<int>(ch0 + it));
#pragma GCC unroll 16
                    for (int r = 0; r < R; ++r) s[x][r] = _mm512_fmadd_ps(_mm512_set1_ps(qk[r][it]), k, s[x][r]);
                }
            }
            const __m512 cells = _mm512_add_ps(lane, _mm512_set1_ps(static_cast<float>(cell0)));
            const __m512 cell_scale = F::kCellScale ? _mm512_mul_ps(F::k_cell_scale(kb, g, kv_head), vscale) : vscale;
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r) {
                __m512 sum = kSplit == 2 ? _mm512_add_ps(s[0][r], s[kSplit - 1][r]) : s[0][r];
                if constexpr (F::kChannelScale) sum = _mm512_add_ps(sum, _mm512_set1_ps(offset[r]));
                __mmask16 ok =
                    _mm512_cmp_ps_mask(cells, _mm512_set1_ps(static_cast<float>(rows[r].n_kv)), _CMP_LT_OQ);
                if (rows[r].cell_first > cell0)
                    ok &= _mm512_cmp_ps_mask(cells, _mm512_set1_ps(static_cast<float>(rows[r].cell_first)), _CMP_GE_OQ);
                _mm512_store_ps(S + r * kChunk + b * bs, _mm512_mask_mul_ps(ninf, ok, sum, cell_scale));
            }
        }
        // The chunk's per-cell V scales (formats with kCellVScale).
        alignas(64) float vcs[F::kCellVScale ? kChunk : 1];
        if constexpr (F::kCellVScale) {
            for (int b = 0; b < nb; ++b)
                for (int i = 0; i < bs; ++i) vcs[b * bs + i] = F::v_cell_scale(vblock((c0 + b * bs) / bs), g, i, kv_head);
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
            if constexpr (F::kCellVScale) {  // the V rows' per-cell scales, into the weights (after their sum)
                for (int b = 0; b < nb; ++b)
                    _mm512_store_ps(sr + b * bs, _mm512_mul_ps(_mm512_load_ps(sr + b * bs), _mm512_load_ps(vcs + b * bs)));
            }
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
                    const uint8_t* vb = vblock((c0 + b * bs) / bs);
                    const uint8_t* vb_next = vblock((c0 + (b + 1 < nb ? b + 1 : b) * bs) / bs);
                    const int n = std::min(bs, nc - b * bs);
                    for (int i = 0; i < n; ++i) {
                        const int cell = b * bs + i;
#pragma GCC unroll 8
                        for (int x = 0; x < JC; ++x) {
                            const int64_t ch = ch0 + j0 + 16 * x;
                            if (x * 16 * F::kVBits % 512 == 0)
                                _mm_prefetch(reinterpret_cast<const char*>(F::v_at(vb_next, g, i, ch)), _MM_HINT_T0);
                            const __m512 v = F::v_load(vb, g, i, ch);
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
                const bool whole = head_dim - j >= 16;
                const __mmask16 cm = whole ? __mmask16(0xFFFF) : __mmask16(0xFF);
                __m512 acc[R];
#pragma GCC unroll 16
                for (int r = 0; r < R; ++r) acc[r] = _mm512_maskz_loadu_ps(cm, out[r] + j);
                for (int b = 0; b < nb; ++b) {
                    const uint8_t* vb = vblock((c0 + b * bs) / bs);
                    const int n = std::min(bs, nc - b * bs);
                    for (int i = 0; i < n; ++i) {
                        const __m512 v = whole ? F::v_load(vb, g, i, ch0 + j) : F::v_load8(vb, g, i, ch0 + j);
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

using KernelFn = void (*)(const AttnRow*, const KvSeqView&, int64_t, int, float, float*);
// Row counts with a kernel of their own; a tile of another count runs the next larger one with copies of its
// last row writing to scratch (at most 3 of them). Each kernel is a large unrolled body: instantiating all 16
// counts for 6 formats took the sanitizer build 2.7 minutes for this file alone.
constexpr std::array<int, 8> kKernelRows = {1, 2, 3, 4, 6, 8, 12, 16};
static_assert(kKernelRows.back() == kAttnMaxRows);
template <typename F, size_t... I>
constexpr auto make_kernels(std::index_sequence<I...>) {
    return std::array<KernelFn, sizeof...(I)>{&attend_avx512<kKernelRows[I], F>...};
}
template <typename F>
constexpr auto kernels_of() { return make_kernels<F>(std::make_index_sequence<kKernelRows.size()>{}); }
// Per KvType (in its order), per entry of kKernelRows.
const std::array<std::array<KernelFn, kKernelRows.size()>, 6> kKernels = {
    kernels_of<FmtF32>(), kernels_of<FmtF16>(), kernels_of<FmtQ8>(),
    kernels_of<FmtQ4>(),  kernels_of<FmtRot<4>>(), kernels_of<FmtRot<3>>()};

// Runs the kernel of format `type` on n rows; pad: (kMaxPadRows) * (head_dim + 2) floats of scratch.
void run_kernel(KvType type, const AttnRow* rows, int n, const KvSeqView& kv, int64_t kv_head, int head_dim,
                float scale, float* work, float* pad) {
    size_t k = 0;
    while (kKernelRows[k] < n) ++k;
    const KernelFn fn = kKernels[static_cast<size_t>(type)][k];
    if (kKernelRows[k] == n) {
        fn(rows, kv, kv_head, head_dim, scale, work);
        return;
    }
    AttnRow padded[kAttnMaxRows];
    std::copy(rows, rows + n, padded);
    for (int r = n; r < kKernelRows[k]; ++r) {
        float* slot = pad + static_cast<size_t>(r - n) * (head_dim + 2);
        padded[r] = rows[n - 1];
        padded[r].out = slot;
        if (padded[r].partial) padded[r].partial = slot + head_dim;
    }
    fn(padded, kv, kv_head, head_dim, scale, work);
}

// Follows the kernel dispatch, so HEARTH_ISA=ref forces the reference here too.
bool has_avx512() { return kernels::active().isa == kernels::Isa::Avx512; }

// Softmax parts a (this row's quantized cells) and b (its f16 cells) into one: normalised, or (a partial row)
// the unnormalised sum with {max, sum}.
void combine_parts(const float* out_a, const float* st_a, const float* out_b, const float* st_b, int head_dim,
                   const AttnRow& row) {
    const float mx = std::max(st_a[0], st_b[0]);
    const float wa = st_a[0] == -INFINITY ? 0.0f : std::exp(st_a[0] - mx);
    const float wb = st_b[0] == -INFINITY ? 0.0f : std::exp(st_b[0] - mx);
    const float l = wa * st_a[1] + wb * st_b[1];
    const float norm = row.partial ? 1.0f : 1.0f / l;
    for (int j = 0; j < head_dim; ++j) row.out[j] = (wa * out_a[j] + wb * out_b[j]) * norm;
    if (row.partial) row.partial[0] = mx, row.partial[1] = l;
}

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
    const bool quantized = kv_type_quantized(kv.type);
    if (quantized && (!kv.layout || kv.layout->type != kv.type))
        fail("attention: a {} cache view needs its block layout", kv_type_name(kv.type));
    if (kv.block_size != 16 || head_dim % 8 != 0 || (quantized && head_dim > kMaxFoldHeadDim) || !has_avx512()) {
        attend_ref(rows, n_rows, kv, kv_head, head_dim, scale, work);
        return;
    }
    float* pad = work + kScoreFloats;
    float* extra = pad + kMaxPadRows * (head_dim + 2);
    if (!quantized) {
        run_kernel(kv.type, rows, n_rows, kv, kv_head, head_dim, scale, work, pad);
        return;
    }
    // Compressed: rotate the queries (rot types), then the quantized blocks with their kernel and the f16 ones
    // with f16's, each as a partial row, then combine.
    float* q_rot = extra;
    float* out_a = q_rot + kAttnMaxRows * head_dim;
    float* out_b = out_a + kAttnMaxRows * head_dim;
    float* stats = out_b + kAttnMaxRows * head_dim;  // [row][a max, a sum, b max, b sum]
    const bool rotated = kv_type_rotated(kv.type);
    const int split = kv.n_quant_blocks * kv.block_size;
    AttnRow a[kAttnMaxRows], b[kAttnMaxRows];
    bool any_a = false, any_b = false;
    for (int r = 0; r < n_rows; ++r) {
        a[r] = rows[r];
        if (rotated) {
            std::copy(rows[r].q, rows[r].q + head_dim, q_rot + r * head_dim);
            kv_rotate(q_rot + r * head_dim, head_dim);
            a[r].q = q_rot + r * head_dim;
        }
        b[r] = a[r];
        const int first = std::max(rows[r].cell_begin, rows[r].cell_first);
        any_a |= first < std::min(rows[r].n_kv, split);
        any_b |= std::max(first, split) < rows[r].n_kv;
    }
    // Quantized keys are stored without the key mean: their scores lack scale * q.mean, the same for every cell
    // of a row, which a whole row's softmax ignores and a partial one's maximum takes back.
    float shift[kAttnMaxRows] = {};
    if (kv.key_mean)
        for (int r = 0; r < n_rows; ++r) {
            const float* mean = kv.key_mean + kv_head * head_dim;
            float d = 0;
            for (int j = 0; j < head_dim; ++j) d += a[r].q[j] * mean[j];
            shift[r] = d * scale;
        }
    if (!any_b || !any_a) {  // one kind of block: one kernel, writing the rows directly
        for (int r = 0; r < n_rows; ++r)
            if (any_b) a[r].cell_begin = std::max(a[r].cell_begin, split);
        run_kernel(any_b ? KvType::F16 : kv.type, a, n_rows, kv, kv_head, head_dim, scale, work, pad);
        for (int r = 0; r < n_rows; ++r) {
            if (!any_b && rows[r].partial && rows[r].partial[0] != -INFINITY) rows[r].partial[0] += shift[r];
            if (rotated) kv_unrotate(rows[r].out, head_dim);
        }
        return;
    }
    for (int r = 0; r < n_rows; ++r) {
        a[r].n_kv = std::max(a[r].cell_begin, std::min(rows[r].n_kv, split));
        a[r].out = out_a + r * head_dim;
        a[r].partial = stats + 4 * r;
        b[r].cell_begin = std::max(rows[r].cell_begin, split);
        b[r].n_kv = std::max(b[r].cell_begin, rows[r].n_kv);
        b[r].out = out_b + r * head_dim;
        b[r].partial = stats + 4 * r + 2;
    }
    run_kernel(kv.type, a, n_rows, kv, kv_head, head_dim, scale, work, pad);
    run_kernel(KvType::F16, b, n_rows, kv, kv_head, head_dim, scale, work, pad);
    for (int r = 0; r < n_rows; ++r) {
        if (stats[4 * r] != -INFINITY) stats[4 * r] += shift[r];
        combine_parts(out_a + r * head_dim, stats + 4 * r, out_b + r * head_dim, stats + 4 * r + 2, head_dim, rows[r]);
        if (rotated) kv_unrotate(rows[r].out, head_dim);
    }
}

}  // namespace hearth
