// AVX-512 kernels (F, BW, VL, DQ, VNNI, BF16, VBMI). Only reached through dispatch.cpp when the CPU and the OS
// support all of these; nothing in this file runs at static-initialisation time (the table is constant-
// initialised), and every helper has internal linkage so no differently-compiled copy of an inline function
// can leak into the plain x86-64 part of the binary.
//
// Quantized weights x Q8A activations
// -----------------------------------
// The activation rows are first repacked (per call, per thread, into a thread-local buffer) into "groups" of
// 128 elements = 4 activation blocks. A group holds two 64-byte vectors V0, V1 of int8 codes, arranged so that
// int32 lane p of `dpbusd(dpbusd(0, W0, V0), W1, V1)` sums 8 products that all belong to one activation block
// and to one weight scale group; the per-lane float scale d_a (`da`), the integer offset correction (`ci`,
// see below) and the per-half activation sums times d_a (`ms`, for formats with minimums) come with it.
// Each weight format has its own arrangement (a "layout", chosen so that unpacking the weights is cheap), and
// unpacks 4 weight blocks (or half a K-quant super-block) into the matching W0, W1 of *unsigned* codes:
// formats with signed codes are shifted up by an offset (Q4_0: +8, Q5_0: +16, Q8_0 and IQ4_NL: +128,
// Q3_K: +4, Q6_K: +32), and sum((q + off) * a) - off * sum(a) is made exact in int32 by starting the
// accumulator at ci = -off * (activation half sums), placed in one lane of each scale group.
// The int32 lanes are then converted and scaled lane-wise: acc += float(I) * da * sw, where sw holds the weight
// scale (d, or d * sub-scale) of each lane. Minimums (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) add m * d_a * sum(a).
// Nothing is reduced horizontally until the end of a row.
//
// Two gemm paths:
//  * decode (fewer columns than a pack, i.e. nc = 1 for most formats): tiles of R rows x C columns; each weight
//    group is unpacked on the fly, used for the C columns, and the lane-wise scaling above is done per column.
//    Software prefetches keep the rows of the tile two tiles ahead in flight (weights come from DRAM).
//  * multi-column (prefill): the weights of 4 rows are unpacked once per column chunk into a small buffer
//    (WGroup: codes + lane scales + lane minimums), then a microkernel runs 4 rows x 8 columns: it adds the
//    int32 lanes of K columns pairwise (K = 4, or 2 for the formats with 16-element scales) with vpunpck +
//    vpaddd, which do not compete with vpdpbusd for the two multiply pipes, so that one convert + scale
//    multiply + FMA serves K columns. See QGroup / qc_tile.
//
// F32 / F16 / BF16 weights: F16 via vcvtph2ps, BF16 via a 16-bit shift into f32 (both exact), then f32 FMA
// against the f32 activations. Each FMA rounds once (the f16/bf16 x f32 product itself is exact inside it), so
// the result differs from the double-precision reference only by f32 accumulation rounding over 16 lanes:
// |error| <= ~(n / 16 + 4) * 2^-24 * sum |w_i * a_i| in the worst case, typically ~1e-8 relative.
#include <immintrin.h>
// GCC 12's _mm512_undefined_*() / _mm256_undefined_*() self-initialise, which -Wuninitialized reports at every
// inlined use (GCC bug 105593); the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tensor/kernels.h"
#include "tensor/kernels/train.h"
#include "tensor/kernels/exp_avx512.h"
#include "tensor/quantize.h"  // only for the IQ4_NL level table (a constant, no code)

namespace hearth::kernels {
namespace {

#define HK_INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------------------------------------------------
// Thread-local scratch buffers.
// ---------------------------------------------------------------------------------------------------------
struct Scratch {
    void* p = nullptr;
    size_t cap = 0;
    ~Scratch() { std::free(p); }
};
thread_local Scratch t_scratch[3];  // [0]: packed activations, [1]: unpacked weight rows, [2]: row-quad columns

void* scratch(int slot, size_t bytes) {
    Scratch& s = t_scratch[slot];
    if (bytes > s.cap) {
        std::free(s.p);
        const size_t cap = (bytes + 4095) & ~size_t(4095);
        s.p = std::aligned_alloc(64, cap);
        if (!s.p) std::abort();
        s.cap = cap;
    }
    return s.p;
}

HK_INLINE float h2f(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
HK_INLINE uint32_t rd32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
HK_INLINE __m512i ld(const void* p) { return _mm512_loadu_si512(p); }
HK_INLINE __m512i bc8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }

// ---------------------------------------------------------------------------------------------------------
// Constant tables
// ---------------------------------------------------------------------------------------------------------
struct alignas(64) Bytes64 {
    uint8_t b[64];
};
struct alignas(64) Ints16 {
    int32_t v[16];
};
struct alignas(16) Bytes16 {
    uint8_t b[16];
};

template <class F>
constexpr Bytes64 make_bytes(F f) {
    Bytes64 r{};
    for (int i = 0; i < 64; ++i) r.b[i] = static_cast<uint8_t>(f(i));
    return r;
}
template <class F>
constexpr Ints16 make_ints(F f) {
    Ints16 r{};
    for (int i = 0; i < 16; ++i) r.v[i] = f(i);
    return r;
}
template <class F>
constexpr Bytes16 make_bytes16(F f) {
    Bytes16 r{};
    for (int i = 0; i < 16; ++i) r.b[i] = static_cast<uint8_t>(f(i));
    return r;
}
HK_INLINE __m512i ldt(const Bytes64& t) { return _mm512_load_si512(t.b); }
HK_INLINE __m512i ldt(const Ints16& t) { return _mm512_load_si512(t.v); }
HK_INLINE __m128i ldt(const Bytes16& t) { return _mm_load_si128(reinterpret_cast<const __m128i*>(t.b)); }

// Index for vpermt2b over two loads: bytes [0, 64) of the group from a zmm load at 0, the rest from a second
// (xmm / ymm) load at o1 that ends at the end of the group, so no load reads past it.
constexpr int two_src(int x, int o1) { return x < 64 ? x : 64 + (x - o1); }

// An activation layout: element offset (within the 128-element group, a multiple of 4) of each dword of V0/V1.
struct Layout {
    uint8_t e0[16];
    uint8_t e1[16];
};
constexpr Layout layout_a(int s0, int s1, int s2, int s3) {
    const int sg[4] = {s0, s1, s2, s3};
    Layout l{};
    for (int p = 0; p < 16; ++p) {
        l.e0[p] = static_cast<uint8_t>(32 * sg[p / 4] + 4 * (p % 4));
        l.e1[p] = static_cast<uint8_t>(l.e0[p] + 16);
    }
    return l;
}
constexpr Layout layout_b() {
    Layout l{};
    for (int p = 0; p < 16; ++p) {
        const int blk = p / 4, half = (p % 4) % 2, chunk = (p % 4) / 2;
        l.e0[p] = static_cast<uint8_t>(32 * blk + 16 * half + 8 * chunk);
        l.e1[p] = static_cast<uint8_t>(l.e0[p] + 4);
    }
    return l;
}
// Lane L of V0 = first 16 codes of block L, of V1 = last 16 (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL).
constexpr Layout kLayoutA = layout_a(0, 1, 2, 3);
// Same with the blocks in the order 0, 2, 1, 3 (Q4_K, Q5_K: what the nibble split gives for free).
constexpr Layout kLayoutA0213 = layout_a(0, 2, 1, 3);
// 16-element scale groups (Q2_K, Q3_K, Q6_K): lane p = 4 * blk + q covers codes 16h + 8k .. +3 (V0) and
// .. +4..+7 (V1) of block blk, with half h = q % 2 and chunk k = q / 2. Lanes q = 0, 2 are half 0 and q = 1, 3
// half 1, so adding lanes (0 + 2) and (1 + 3) keeps the halves apart (see compress2).
constexpr Layout kLayoutB = layout_b();

// Tables derived from a layout for the activation packer.
struct LayoutTables {
    Bytes64 idx0, idx1;  // vpermt2b over the 128 natural codes
    Ints16 blk;          // block of each int32 lane
    Ints16 ca, cb;       // half-sum index (0..7) added into ci of each lane, 8 = none
};
constexpr LayoutTables make_layout_tables(const Layout& l) {
    LayoutTables t{};
    for (int i = 0; i < 64; ++i) {
        t.idx0.b[i] = static_cast<uint8_t>(l.e0[i / 4] + i % 4);
        t.idx1.b[i] = static_cast<uint8_t>(l.e1[i / 4] + i % 4);
    }
    bool done[8] = {};
    for (int p = 0; p < 16; ++p) {
        t.blk.v[p] = l.e0[p] / 32;
        t.ca.v[p] = 8;
        t.cb.v[p] = 8;
        const int h0 = l.e0[p] / 16, h1 = l.e1[p] / 16;  // half index 0..7 within the group
        if (!done[h0]) {
            done[h0] = true;
            t.ca.v[p] = h0;
        }
        if (!done[h1]) {
            done[h1] = true;
            t.cb.v[p] = h1;
        }
    }
    return t;
}
constexpr LayoutTables kTabA = make_layout_tables(kLayoutA);
constexpr LayoutTables kTabA0213 = make_layout_tables(kLayoutA0213);
constexpr LayoutTables kTabB = make_layout_tables(kLayoutB);

// ---------------------------------------------------------------------------------------------------------
// Packed activations
// ---------------------------------------------------------------------------------------------------------
// One column, one group of 4 blocks. v0/v1 are shared by both gemm paths; da/ci/ms serve the per-column path
// (decode), d/hs feed the per-quad records of the multi-column path.
struct alignas(64) PGroup {
    int8_t v0[64];
    int8_t v1[64];
    float da[16];    // d_a of the block of each int32 lane
    int32_t ci[16];  // -off * half sums, one lane per scale group
    float ms[16];    // d_a * half sum: lanes 0..7 this group's 8 halves; 8..15 the next group's (even groups)
    float d[4];      // d_a of the 4 blocks (0 past the end of the row)
    int32_t hs[8];   // half sums of the 4 blocks
    int32_t pad[4];
};
static_assert(sizeof(PGroup) == 384);

constexpr Ints16 kIdxHalfBlk = make_ints([](int i) { return i < 8 ? i / 2 : 4; });  // lane 4 of d4 is zero

// Packs one activation row of nblocks Q8A blocks into ceil(nblocks / 4) groups; a null row packs zeros.
void pack_act(const BlockQ8A* a, int64_t nblocks, const LayoutTables& t, int off, PGroup* out) {
    const int64_t ng = (nblocks + 3) / 4;
    const __m512i idx0 = ldt(t.idx0), idx1 = ldt(t.idx1);
    const __m512i blk = ldt(t.blk), ca = ldt(t.ca), cb = ldt(t.cb);
    const __m512i hb = ldt(kIdxHalfBlk);
    const __m512i noff = _mm512_set1_epi32(-off);
    for (int64_t g = 0; g < ng; ++g) {
        const int nv = !a ? 0 : nblocks - 4 * g >= 4 ? 4 : int(nblocks - 4 * g);
        const BlockQ8A* b = a ? a + 4 * g : nullptr;
        __m512i x0, x1;
        alignas(32) float d[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        alignas(64) int32_t hs[16] = {};
        if (nv == 4) {
            x0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)b[0].qs)),
                                    _mm256_loadu_si256((const __m256i*)b[1].qs), 1);
            x1 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)b[2].qs)),
                                    _mm256_loadu_si256((const __m256i*)b[3].qs), 1);
        } else {
            alignas(64) int8_t nat[128] = {};
            for (int j = 0; j < nv; ++j) std::memcpy(nat + 32 * j, b[j].qs, 32);
            x0 = _mm512_load_si512(nat);
            x1 = _mm512_load_si512(nat + 64);
        }
        for (int j = 0; j < nv; ++j) {
            d[j] = b[j].d;
            hs[2 * j] = b[j].sum[0];
            hs[2 * j + 1] = b[j].sum[1];
        }
        PGroup& o = out[g];
        _mm512_store_si512(o.v0, _mm512_permutex2var_epi8(x0, idx0, x1));
        _mm512_store_si512(o.v1, _mm512_permutex2var_epi8(x0, idx1, x1));
        const __m512 d4 = _mm512_castps256_ps512(_mm256_load_ps(d));
        _mm512_store_ps(o.da, _mm512_permutexvar_ps(blk, d4));
        const __m512i hsv = _mm512_load_si512(hs);  // lanes 8..15 are zero
        const __m512i cia = _mm512_permutexvar_epi32(ca, hsv), cib = _mm512_permutexvar_epi32(cb, hsv);
        _mm512_store_si512(o.ci, _mm512_mullo_epi32(_mm512_add_epi32(cia, cib), noff));
        const __m512 ms = _mm512_mul_ps(_mm512_cvtepi32_ps(hsv), _mm512_permutexvar_ps(hb, d4));
        _mm512_store_ps(o.ms, ms);
        if (g & 1) std::memcpy(out[g - 1].ms + 8, o.ms, 8 * sizeof(float));
        std::memcpy(o.d, d, sizeof(o.d));
        std::memcpy(o.hs, hs, sizeof(o.hs));
    }
}

// Multi-column path: the int32 lanes of K columns are added pairwise into one vector (compress4/compress2
// below) so that one int->float conversion and one scale multiply serve K columns. A QGroup holds, for K
// consecutive columns and one group, the lane scales / corrections / minimum terms of that compressed layout:
//  K = 4 (one weight scale per block): lane 4L + j = column j, block sigma(L) (whole block);
//  K = 2 (one scale per 16-element half, layout B): lane 4L + q = column q % 2, block L, half q / 2.
struct alignas(64) QGroup {
    float da[16];
    int32_t ci[16];
    float ms[16];
};

template <int K>
void pack_quads(const PGroup* cols, int64_t ng, int nquads, const LayoutTables& t, int off, QGroup* out) {
    for (int q = 0; q < nquads; ++q)
        for (int64_t g = 0; g < ng; ++g) {
            QGroup& o = out[q * ng + g];
            for (int p = 0; p < 16; ++p) {
                const int L = p / 4, j = p % 4;
                if constexpr (K == 4) {
                    const PGroup& c = cols[(q * 4 + j) * ng + g];
                    const int b = t.blk.v[4 * L];
                    const int32_t s = c.hs[2 * b] + c.hs[2 * b + 1];
                    o.da[p] = c.d[b];
                    o.ci[p] = -off * s;
                    o.ms[p] = c.d[b] * float(s);
                } else {
                    const PGroup& c = cols[(q * 2 + j % 2) * ng + g];
                    const int32_t s = c.hs[2 * L + j / 2];
                    o.da[p] = c.d[L];
                    o.ci[p] = -off * s;
                    o.ms[p] = c.d[L] * float(s);
                }
            }
        }
}

enum MinKind { kNoMin, kGroupMin, kSuperMin };

// ---------------------------------------------------------------------------------------------------------
// Weight formats. unpack<kCol>() gets the start of a 4-block group (32-element formats) or of a super-block
// plus the half (K-quants) and returns the unsigned codes W0, W1 in the format's layout and the lane scales S.
// Minimums come as lane vectors M with their sign (x = d * q + M): for the decode path (kCol = false) M is
// per 16-element half in natural order (lanes 0..7 of a group, or 0..15 of a super-block from prep()), for
// the multi-column path (kCol = true) M is in the compressed layout (see QGroup).
// ---------------------------------------------------------------------------------------------------------
struct NoPrep {};

// ---- Q4_0 ----
constexpr Bytes64 kQ40Q = make_bytes([](int i) { return two_src(18 * (i / 16) + 2 + i % 16, 56); });
constexpr Bytes64 kQ40D = make_bytes([](int i) { return i < 32 ? two_src(18 * (i / 8) + (i & 1), 56) : 0; });
struct Q4_0T {
    static constexpr int kBlockBytes = 18;
    static constexpr bool kSuper = false;
    static constexpr int kOff = 8;
    static constexpr MinKind kMin = kNoMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m512i& w0, __m512i& w1, __m512& s, __m512&) {
        const __m512i l0 = ld(p), l1 = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i*)(p + 56)));
        const __m512i q = _mm512_permutex2var_epi8(l0, ldt(kQ40Q), l1);
        const __m512i m = bc8(0x0F);
        w0 = _mm512_and_si512(q, m);
        w1 = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
        s = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ40D), l1)));
    }
};

// ---- IQ4_NL: Q4_0's layout, codes looked up in the level table (+128 to make them unsigned) ----
constexpr Bytes64 kIQ4NLLut = make_bytes([](int i) { return quant::kIQ4NL[i % 16] + 128; });
struct IQ4_NLT {
    static constexpr int kBlockBytes = 18;
    static constexpr bool kSuper = false;
    static constexpr int kOff = 128;
    static constexpr MinKind kMin = kNoMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m512i& w0, __m512i& w1, __m512& s, __m512&) {
        const __m512i l0 = ld(p), l1 = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i*)(p + 56)));
        const __m512i q = _mm512_permutex2var_epi8(l0, ldt(kQ40Q), l1);
        const __m512i m = bc8(0x0F), lut = ldt(kIQ4NLLut);
        w0 = _mm512_shuffle_epi8(lut, _mm512_and_si512(q, m));
        w1 = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(q, 4), m));
        s = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ40D), l1)));
    }
};

// ---- Q4_1 ----
constexpr Bytes64 kQ41Q = make_bytes([](int i) { return two_src(20 * (i / 16) + 4 + i % 16, 64); });
constexpr Bytes64 kQ41D = make_bytes([](int i) { return i < 32 ? two_src(20 * (i / 8) + (i & 1), 64) : 0; });
constexpr Bytes64 kQ41M = make_bytes([](int i) { return i < 16 ? two_src(20 * (i / 4) + 2 + (i & 1), 64) : 0; });
constexpr Bytes64 kQ41MC = make_bytes([](int i) { return i < 32 ? two_src(20 * (i / 8) + 2 + (i & 1), 64) : 0; });
struct Q4_1T {
    static constexpr int kBlockBytes = 20;
    static constexpr bool kSuper = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kGroupMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512& mn) {
        const __m512i l0 = ld(p), l1 = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i*)(p + 64)));
        const __m512i q = _mm512_permutex2var_epi8(l0, ldt(kQ41Q), l1);
        const __m512i m = bc8(0x0F);
        w0 = _mm512_and_si512(q, m);
        w1 = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
        s = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ41D), l1)));
        if constexpr (kCol)
            mn = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ41MC), l1)));
        else
            mn = _mm512_cvtph_ps(
                _mm512_castsi512_si256(_mm512_maskz_permutex2var_epi8(0xFFFFull, l0, ldt(kQ41M), l1)));
    }
};

// ---- Q5_0 ----
constexpr Bytes64 kQ50Q = make_bytes([](int i) { return two_src(22 * (i / 16) + 6 + i % 16, 56); });
constexpr Bytes64 kQ50D = make_bytes([](int i) { return i < 32 ? two_src(22 * (i / 8) + (i & 1), 56) : 0; });
constexpr Bytes64 kQ50H0 = make_bytes([](int i) { return two_src(22 * (i / 16) + 2 + (i % 16) / 8, 56); });
constexpr Bytes64 kQ50H1 = make_bytes([](int i) { return two_src(22 * (i / 16) + 4 + (i % 16) / 8, 56); });
constexpr Bytes64 kBit8 = make_bytes([](int i) { return 1 << (i % 8); });
struct Q5_0T {
    static constexpr int kBlockBytes = 22;
    static constexpr bool kSuper = false;
    static constexpr int kOff = 16;
    static constexpr MinKind kMin = kNoMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m512i& w0, __m512i& w1, __m512& s, __m512&) {
        const __m512i l0 = ld(p), l1 = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(p + 56)));
        const __m512i q = _mm512_permutex2var_epi8(l0, ldt(kQ50Q), l1);
        const __m512i m = bc8(0x0F), b16 = bc8(0x10), bits = ldt(kBit8);
        const __mmask64 k0 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(l0, ldt(kQ50H0), l1), bits);
        const __mmask64 k1 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(l0, ldt(kQ50H1), l1), bits);
        const __m512i lo = _mm512_and_si512(q, m), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
        w0 = _mm512_mask_add_epi8(lo, k0, lo, b16);
        w1 = _mm512_mask_add_epi8(hi, k1, hi, b16);
        s = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ50D), l1)));
    }
};

// ---- Q5_1 ----
constexpr Bytes64 kQ51Q = make_bytes([](int i) { return two_src(24 * (i / 16) + 8 + i % 16, 64); });
constexpr Bytes64 kQ51D = make_bytes([](int i) { return i < 32 ? two_src(24 * (i / 8) + (i & 1), 64) : 0; });
constexpr Bytes64 kQ51M = make_bytes([](int i) { return i < 16 ? two_src(24 * (i / 4) + 2 + (i & 1), 64) : 0; });
constexpr Bytes64 kQ51MC = make_bytes([](int i) { return i < 32 ? two_src(24 * (i / 8) + 2 + (i & 1), 64) : 0; });
constexpr Bytes64 kQ51H0 = make_bytes([](int i) { return two_src(24 * (i / 16) + 4 + (i % 16) / 8, 64); });
constexpr Bytes64 kQ51H1 = make_bytes([](int i) { return two_src(24 * (i / 16) + 6 + (i % 16) / 8, 64); });
struct Q5_1T {
    static constexpr int kBlockBytes = 24;
    static constexpr bool kSuper = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kGroupMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512& mn) {
        const __m512i l0 = ld(p), l1 = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(p + 64)));
        const __m512i q = _mm512_permutex2var_epi8(l0, ldt(kQ51Q), l1);
        const __m512i m = bc8(0x0F), b16 = bc8(0x10), bits = ldt(kBit8);
        const __mmask64 k0 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(l0, ldt(kQ51H0), l1), bits);
        const __mmask64 k1 = _mm512_test_epi8_mask(_mm512_permutex2var_epi8(l0, ldt(kQ51H1), l1), bits);
        const __m512i lo = _mm512_and_si512(q, m), hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
        w0 = _mm512_mask_add_epi8(lo, k0, lo, b16);
        w1 = _mm512_mask_add_epi8(hi, k1, hi, b16);
        s = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ51D), l1)));
        if constexpr (kCol)
            mn = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi8(l0, ldt(kQ51MC), l1)));
        else
            mn = _mm512_cvtph_ps(
                _mm512_castsi512_si256(_mm512_maskz_permutex2var_epi8(0xFFFFull, l0, ldt(kQ51M), l1)));
    }
};

// ---- Q8_0 (codes + 128) ----
// The 32 codes of each block are loaded as one ymm (no wider overlapping loads: decode is bound by how fast
// the loads are served), pairs of blocks joined into zmm and the 128-bit halves regrouped with vshufi64x2.
// The four f16 scales are read as scalars and spread to the lanes with vpermw.
HK_INLINE uint16_t rd16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
struct alignas(32) Words16 {
    uint16_t w[16];
};
constexpr Words16 kQuadIdx = [] {
    Words16 r{};
    for (int i = 0; i < 16; ++i) r.w[i] = static_cast<uint16_t>(i / 4);
    return r;
}();
struct Q8_0T {
    static constexpr int kBlockBytes = 34;
    static constexpr bool kSuper = false;
    static constexpr int kOff = 128;
    static constexpr MinKind kMin = kNoMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m512i& w0, __m512i& w1, __m512& s, __m512&) {
        const __m512i x01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(p + 2))),
                                               _mm256_loadu_si256((const __m256i*)(p + 36)), 1);
        const __m512i x23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(p + 70))),
                                               _mm256_loadu_si256((const __m256i*)(p + 104)), 1);
        const __m512i x80 = bc8(0x80);
        w0 = _mm512_xor_si512(_mm512_shuffle_i64x2(x01, x23, 0x88), x80);  // first 16 codes of blocks 0..3
        w1 = _mm512_xor_si512(_mm512_shuffle_i64x2(x01, x23, 0xDD), x80);  // last 16
        const uint64_t d4 = uint64_t(rd16(p)) | uint64_t(rd16(p + 34)) << 16 | uint64_t(rd16(p + 68)) << 32 |
                            uint64_t(rd16(p + 102)) << 48;
        const __m256i idx = _mm256_load_si256(reinterpret_cast<const __m256i*>(kQuadIdx.w));
        s = _mm512_cvtph_ps(_mm256_permutexvar_epi16(idx, _mm256_castsi128_si256(_mm_cvtsi64_si128(int64_t(d4)))));
    }
};

// ---- K-quants ----
// Q4_K / Q5_K: half g of the super-block holds sub-blocks 4g..4g+3, placed in lanes as 4g, 4g+2, 4g+1, 4g+3.
constexpr int kSig0213[4] = {0, 2, 1, 3};
constexpr Ints16 kQ4KS0 = make_ints([](int p) { return kSig0213[p / 4]; });
constexpr Ints16 kQ4KS1 = make_ints([](int p) { return 4 + kSig0213[p / 4]; });
constexpr Ints16 kQ4KM = make_ints([](int p) { return 8 + p / 2; });                  // halves, natural order
constexpr Ints16 kQ4KMC0 = make_ints([](int p) { return 8 + kSig0213[p / 4]; });      // compressed layout
constexpr Ints16 kQ4KMC1 = make_ints([](int p) { return 12 + kSig0213[p / 4]; });
struct KPrep {
    __m512 s[2];
    __m512 m[2];  // decode path: m[0] = -dmin * min of the 16 halves; multi-column path: per half super-block
};
// Scales and minimums of a Q4_K / Q5_K super-block, all in vector registers: the 16-byte header (d, dmin,
// 12 scale bytes) is shuffled so that one pass of masks and shifts yields sc[0..7], mn[0..7] as bytes.
constexpr Bytes16 kKScA = make_bytes16([](int i) {  // low-bit sources: sc0..3, sc4..7 (nibble), mn0..3, mn4..7
    const int src[16] = {4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15};
    return src[i];
});
constexpr Bytes16 kKScB = make_bytes16([](int i) {  // top-2-bit sources for sc4..7 / mn4..7
    return i >= 4 && i < 8 ? i : i >= 12 ? i - 4 : 0x80;
});
constexpr Bytes16 kKScMaskLo = make_bytes16([](int i) { return i < 4 || (i >= 8 && i < 12) ? 63 : i < 8 ? 15 : 0; });
constexpr Bytes16 kKScMaskHi = make_bytes16([](int i) { return i >= 12 ? 15 : 0; });
constexpr Ints16 kKDD = make_ints([](int i) { return i < 8 ? 0 : 1; });
template <bool kCol>
HK_INLINE void k_scales_prep(const uint8_t* sp, KPrep& pr) {
    const __m128i x = _mm_loadu_si128((const __m128i*)sp);
    const __m128i a = _mm_shuffle_epi8(x, ldt(kKScA)), b = _mm_shuffle_epi8(x, ldt(kKScB));
    const __m128i lo = _mm_and_si128(a, ldt(kKScMaskLo));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(a, 4), ldt(kKScMaskHi));
    const __m128i top = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
    const __m128i scm = _mm_or_si128(_mm_or_si128(lo, hi), top);  // sc0..7, mn0..7
    const __m128 dm = _mm_mul_ps(_mm_cvtph_ps(x), _mm_setr_ps(1.0f, -1.0f, 0.0f, 0.0f));  // d, -dmin
    const __m512 dd = _mm512_permutexvar_ps(ldt(kKDD), _mm512_castps128_ps512(dm));
    const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(scm)), dd);  // d*sc, -dmin*mn
    pr.s[0] = _mm512_permutexvar_ps(ldt(kQ4KS0), f);
    pr.s[1] = _mm512_permutexvar_ps(ldt(kQ4KS1), f);
    if constexpr (kCol) {
        pr.m[0] = _mm512_permutexvar_ps(ldt(kQ4KMC0), f);
        pr.m[1] = _mm512_permutexvar_ps(ldt(kQ4KMC1), f);
    } else {
        pr.m[0] = _mm512_permutexvar_ps(ldt(kQ4KM), f);
    }
}
struct Q4_KT {
    static constexpr int kBlockBytes = 144;
    static constexpr bool kSuper = true;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kSuperMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA0213;
    using Prep = KPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) { k_scales_prep<kCol>(sp, pr); }
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512& mn) {
        const __m512i q = ld(sp + 16 + 64 * g);
        const __m512i m = bc8(0x0F);
        const __m512i t = _mm512_and_si512(q, m), h = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
        w0 = _mm512_shuffle_i64x2(t, h, 0x88);
        w1 = _mm512_shuffle_i64x2(t, h, 0xDD);
        s = pr.s[g];
        if constexpr (kCol) mn = pr.m[g];
    }
};
constexpr Bytes64 kQ5KBit0 = make_bytes([](int i) { return 1 << kSig0213[i / 16]; });
constexpr Bytes64 kQ5KBit1 = make_bytes([](int i) { return 1 << (4 + kSig0213[i / 16]); });
struct Q5_KT {
    static constexpr int kBlockBytes = 176;
    static constexpr bool kSuper = true;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kSuperMin;
    static constexpr int kPack = 4;
    static constexpr const LayoutTables* kTab = &kTabA0213;
    using Prep = KPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) { k_scales_prep<kCol>(sp, pr); }
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512& mn) {
        const __m512i q = ld(sp + 48 + 64 * g);
        const __m512i m = bc8(0x0F), b16 = bc8(0x10);
        const __m512i t = _mm512_and_si512(q, m), h = _mm512_and_si512(_mm512_srli_epi16(q, 4), m);
        const __m512i bits = g ? ldt(kQ5KBit1) : ldt(kQ5KBit0);
        const __m512i qh0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)(sp + 16)));
        const __m512i qh1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i*)(sp + 32)));
        const __m512i lo = _mm512_shuffle_i64x2(t, h, 0x88), hi = _mm512_shuffle_i64x2(t, h, 0xDD);
        w0 = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh0, bits), lo, b16);
        w1 = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(qh1, bits), hi, b16);
        s = pr.s[g];
        if constexpr (kCol) mn = pr.m[g];
    }
};

// Layout-B formats: codes of a half super-block arrive as T (elements 0..63) and H (64..127); V0 / V1 pick
// dwords from them with one vpermt2d each (see layout_b).
constexpr Ints16 kBV0 = make_ints([](int p) { return kLayoutB.e0[p] / 4; });
constexpr Ints16 kBV1 = make_ints([](int p) { return kLayoutB.e1[p] / 4; });
// Sub-block (16-element half) of lane p within half super-block g: decode path (lanes in layout B) and
// multi-column path (compressed: lane 4L + q holds half q / 2 of block L).
constexpr Bytes16 b_halves(int g, bool col) {
    Bytes16 r{};
    for (int p = 0; p < 16; ++p) r.b[p] = static_cast<uint8_t>(8 * g + 2 * (p / 4) + (col ? (p % 4) / 2 : (p % 4) % 2));
    return r;
}
constexpr Bytes16 kBHalf[2][2] = {{b_halves(0, false), b_halves(1, false)}, {b_halves(0, true), b_halves(1, true)}};
HK_INLINE void split_b(__m512i t, __m512i h, __m512i& w0, __m512i& w1) {
    w0 = _mm512_permutex2var_epi32(t, ldt(kBV0), h);
    w1 = _mm512_permutex2var_epi32(t, ldt(kBV1), h);
}
// Lane scales of both halves from 16 int8 scales (signed, or unsigned 0..15) and a factor.
template <bool kCol>
HK_INLINE void sixteen_scales(__m128i sc, float d, __m512 s[2]) {
    const __m512 dv = _mm512_set1_ps(d);
    s[0] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_shuffle_epi8(sc, ldt(kBHalf[kCol][0])))), dv);
    s[1] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_shuffle_epi8(sc, ldt(kBHalf[kCol][1])))), dv);
}
// 16-bit lane shift counts: lower 256 bits a, upper b.
constexpr Bytes64 shift_pair(int a, int b) {
    Bytes64 r{};
    for (int i = 0; i < 64; i += 2) {
        r.b[i] = static_cast<uint8_t>(i < 32 ? a : b);
        r.b[i + 1] = 0;
    }
    return r;
}
constexpr Bytes64 kSh42 = shift_pair(4, 2);
constexpr Bytes64 kSh02 = shift_pair(0, 2);
constexpr Bytes64 kSh46 = shift_pair(4, 6);

struct SPrep {
    __m512 s[2];
};
struct Q6_KT {
    static constexpr int kBlockBytes = 210;
    static constexpr bool kSuper = true;
    static constexpr int kOff = 32;
    static constexpr MinKind kMin = kNoMin;
    static constexpr int kPack = 2;
    static constexpr const LayoutTables* kTab = &kTabB;
    using Prep = SPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) {
        sixteen_scales<kCol>(_mm_loadu_si128((const __m128i*)(sp + 192)), h2f(sp + 208), pr.s);
    }
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512&) {
        const __m512i ql = ld(sp + 64 * g);
        const __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(sp + 128 + 32 * g)));
        const __m512i m = bc8(0x0F), m30 = bc8(0x30);
        const __m512i t = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, m), _mm512_sllv_epi16(z, ldt(kSh42)), m30,
                                                    0xF8);
        const __m512i h = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m),
                                                    _mm512_srlv_epi16(z, ldt(kSh02)), m30, 0xF8);
        split_b(t, h, w0, w1);
        s = pr.s[g];
    }
};

constexpr Bytes64 q3_bits(int b0, int b1) {
    Bytes64 r{};
    for (int i = 0; i < 64; ++i) r.b[i] = static_cast<uint8_t>(1 << (i < 32 ? b0 : b1));
    return r;
}
constexpr Bytes64 kQ3BitT0 = q3_bits(0, 1), kQ3BitH0 = q3_bits(2, 3), kQ3BitT1 = q3_bits(4, 5),
                  kQ3BitH1 = q3_bits(6, 7);
struct Q3_KT {
    static constexpr int kBlockBytes = 110;
    static constexpr bool kSuper = true;
    static constexpr int kOff = 4;
    static constexpr MinKind kMin = kNoMin;
    static constexpr int kPack = 2;
    static constexpr const LayoutTables* kTab = &kTabB;
    using Prep = SPrep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) {
        const uint32_t a0 = rd32(sp + 96), a1 = rd32(sp + 100), t = rd32(sp + 104);
        const uint32_t s0 = (a0 & 0x0f0f0f0fu) | ((t & 0x03030303u) << 4);
        const uint32_t s1 = (a1 & 0x0f0f0f0fu) | (((t >> 2) & 0x03030303u) << 4);
        const uint32_t s2 = ((a0 >> 4) & 0x0f0f0f0fu) | (((t >> 4) & 0x03030303u) << 4);
        const uint32_t s3 = ((a1 >> 4) & 0x0f0f0f0fu) | (((t >> 6) & 0x03030303u) << 4);
        const __m128i sc = _mm_sub_epi8(_mm_set_epi32(int(s3), int(s2), int(s1), int(s0)), _mm_set1_epi8(32));
        sixteen_scales<kCol>(sc, h2f(sp + 108), pr.s);
    }
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512&) {
        const __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(sp + 32 + 32 * g)));
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)sp));
        const __m512i m3 = bc8(0x03), b4 = bc8(0x04);
        __m512i t = _mm512_and_si512(_mm512_srlv_epi16(z, ldt(kSh02)), m3);
        __m512i h = _mm512_and_si512(_mm512_srlv_epi16(z, ldt(kSh46)), m3);
        t = _mm512_mask_add_epi8(t, _mm512_test_epi8_mask(hm, g ? ldt(kQ3BitT1) : ldt(kQ3BitT0)), t, b4);
        h = _mm512_mask_add_epi8(h, _mm512_test_epi8_mask(hm, g ? ldt(kQ3BitH1) : ldt(kQ3BitH0)), h, b4);
        split_b(t, h, w0, w1);
        s = pr.s[g];
    }
};

struct Q2Prep {
    __m512 s[2];
    __m512 m[2];  // decode path: m[0] = -dmin * min of the 16 halves; multi-column path: per half super-block
};
struct Q2_KT {
    static constexpr int kBlockBytes = 84;
    static constexpr bool kSuper = true;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kSuperMin;
    static constexpr int kPack = 2;
    static constexpr const LayoutTables* kTab = &kTabB;
    using Prep = Q2Prep;
    template <bool kCol>
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) {
        const __m128i x = _mm_loadu_si128((const __m128i*)sp);
        const __m128i m = _mm_set1_epi8(0x0F);
        sixteen_scales<kCol>(_mm_and_si128(x, m), h2f(sp + 80), pr.s);
        const __m128i mn = _mm_and_si128(_mm_srli_epi16(x, 4), m);
        if constexpr (kCol)
            sixteen_scales<true>(mn, -h2f(sp + 82), pr.m);
        else
            pr.m[0] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(mn)), _mm512_set1_ps(-h2f(sp + 82)));
    }
    template <bool kCol>
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m512i& w0, __m512i& w1, __m512& s,
                                 __m512& mn) {
        const __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(sp + 16 + 32 * g)));
        const __m512i m3 = bc8(0x03);
        const __m512i t = _mm512_and_si512(_mm512_srlv_epi16(z, ldt(kSh02)), m3);
        const __m512i h = _mm512_and_si512(_mm512_srlv_epi16(z, ldt(kSh46)), m3);
        split_b(t, h, w0, w1);
        s = pr.s[g];
        if constexpr (kCol) mn = pr.m[g];
    }
};

// Decode reads each weight once, straight from DRAM: software prefetches keep the rows of the tile
// kPrefetchTiles tiles ahead in flight (the hardware prefetchers do poorly on many short interleaved rows).
constexpr int kPrefetchTiles = 2;
constexpr int kDecodeRows = 4;  // rows per decode tile

// ---------------------------------------------------------------------------------------------------------
// Quantized gemm, decode path: R rows x C columns, each weight group unpacked on the fly and used for C
// columns; lane-wise scaling per column.
// ---------------------------------------------------------------------------------------------------------
// kTail: the partial last group of a 32-element format; the lanes of the blocks past the end of the row read
// whatever follows (or zeros), so their scales / minimums are masked to zero (their activations are zero).
template <class T, int R, int C, bool kTail = false>
HK_INLINE void q_body(int64_t g, int64_t ng, const uint8_t* const* gp, const PGroup* const* ac, typename T::Prep* prep,
                      __m512 (&acc)[R][C], __mmask16 smask = 0xFFFF, __mmask16 mmask = 0xFFFF) {
    __m512i a0[C], a1[C];
    __m512 da[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
        a0[c] = _mm512_load_si512(ac[c][g].v0);
        a1[c] = _mm512_load_si512(ac[c][g].v1);
        da[c] = _mm512_load_ps(ac[c][g].da);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        __m512i w0, w1;
        __m512 s, mn;
        T::template unpack<false>(gp[r], int(g & 1), prep[r], w0, w1, s, mn);
        if constexpr (kTail) {
            s = _mm512_maskz_mov_ps(smask, s);
            if constexpr (T::kMin == kGroupMin) mn = _mm512_maskz_mov_ps(mmask, mn);
        }
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            __m512i i;
            if constexpr (T::kOff != 0)
                i = _mm512_load_si512(ac[c][g].ci);
            else
                i = _mm512_setzero_si512();
            i = _mm512_dpbusd_epi32(i, w0, a0[c]);
            i = _mm512_dpbusd_epi32(i, w1, a1[c]);
            acc[r][c] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i), da[c]), s, acc[r][c]);
        }
        if constexpr (T::kMin == kGroupMin) {
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(mn, _mm512_load_ps(ac[c][g].ms), acc[r][c]);
        }
        if constexpr (T::kMin == kSuperMin) {
            if (g & 1) {
#pragma GCC unroll 8
                for (int c = 0; c < C; ++c)
                    acc[r][c] = _mm512_fmadd_ps(prep[r].m[0], _mm512_load_ps(ac[c][g - 1].ms), acc[r][c]);
            }
        }
        // Scales of the next super-block, one group ahead of their use (hides the conversion latency).
        if constexpr (T::kSuper) {
            if ((g & 1) && g + 1 < ng) T::template prep<false>(gp[r] + T::kBlockBytes, prep[r]);
        }
    }
}

// R weight rows x C packed activation columns, full reduction length. The partial last group (if any) of the
// first safe_rows rows is read in place (the caller guarantees 4 blocks' worth of readable bytes after it);
// other rows go through a zero-padded copy.
template <class T, int R, int C>
void q_tile(const uint8_t* w, size_t ws, int64_t nblocks, const PGroup* act, int64_t act_groups, float* out,
            size_t os, int safe_rows) {
    constexpr int BB = T::kBlockBytes;
    const int64_t ng = (nblocks + 3) / 4;
    const int64_t ng_full = T::kSuper ? ng : nblocks / 4;
    __m512 acc[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    typename T::Prep prep[R];
    const PGroup* ac[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) ac[c] = act + c * act_groups;
    const uint8_t* gp[R];
    if constexpr (T::kSuper) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) T::template prep<false>(w + r * ws, prep[r]);
    }
    const size_t pf = kPrefetchTiles * size_t(R) * ws;
    constexpr int kGroupBytes = T::kSuper ? BB / 2 : 4 * BB;
    for (int64_t g = 0; g < ng_full; ++g) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            gp[r] = T::kSuper ? w + r * ws + (g >> 1) * BB : w + r * ws + g * 4 * BB;
            const char* p = reinterpret_cast<const char*>(gp[r]) + pf + (T::kSuper ? (g & 1) * kGroupBytes : 0);
            _mm_prefetch(p, _MM_HINT_T0);
            _mm_prefetch(p + 64, _MM_HINT_T0);
            if constexpr (kGroupBytes > 128) _mm_prefetch(p + 128, _MM_HINT_T0);
        }
        q_body<T, R, C>(g, ng, gp, ac, prep, acc);
    }
    if (ng_full < ng) {  // partial last group (32-element formats only)
        alignas(64) uint8_t tail[R][4 * BB + 64];
        const int rem = int(nblocks - 4 * ng_full);
        for (int r = 0; r < R; ++r) {
            gp[r] = w + r * ws + ng_full * 4 * BB;
            if (r >= safe_rows) {
                std::memset(tail[r], 0, sizeof(tail[r]));
                std::memcpy(tail[r], gp[r], size_t(rem) * BB);
                gp[r] = tail[r];
            }
        }
        q_body<T, R, C, true>(ng_full, ng, gp, ac, prep, acc, __mmask16((1u << (4 * rem)) - 1),
                              __mmask16((1u << (2 * rem)) - 1));
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) out[r * os + c] = _mm512_reduce_add_ps(acc[r][c]);
}

template <class T, int R>
void q_row_tiles(const uint8_t* w, size_t ws, int64_t nblocks, const PGroup* act, int64_t act_groups, int nc,
                 float* out, size_t os, int safe_rows) {
    int c = 0;
    for (; c + 3 <= nc; c += 3)
        q_tile<T, R, 3>(w, ws, nblocks, act + c * act_groups, act_groups, out + c, os, safe_rows);
    if (nc - c == 2)
        q_tile<T, R, 2>(w, ws, nblocks, act + c * act_groups, act_groups, out + c, os, safe_rows);
    else if (nc - c == 1)
        q_tile<T, R, 1>(w, ws, nblocks, act + c * act_groups, act_groups, out + c, os, safe_rows);
}

// ---------------------------------------------------------------------------------------------------------
// Quantized gemm, multi-column path. The weights of R rows are unpacked once (per column chunk) into WGroups
// in L1/L2; the microkernel then runs over K-column packs, adds the int32 lanes of the K columns pairwise
// (vpunpck + vpaddd, which do not compete with vpdpbusd for the multiply pipes) and scales one vector per K
// columns.
// ---------------------------------------------------------------------------------------------------------
struct alignas(64) WGroup {
    uint8_t w0[64];
    uint8_t w1[64];
    float s[16];
    float m[16];
};

template <class T>
void unpack_rows(const uint8_t* w, size_t ws, int nrows, int64_t nblocks, WGroup* out) {
    constexpr int BB = T::kBlockBytes;
    const int64_t ng = (nblocks + 3) / 4;
    const int64_t ng_full = T::kSuper ? ng : nblocks / 4;
    for (int r = 0; r < nrows; ++r) {
        const uint8_t* row = w + r * ws;
        typename T::Prep prep;
        WGroup* o = out + r * ng;
        for (int64_t g = 0; g < ng; ++g) {
            const uint8_t* gp;
            alignas(64) uint8_t tail[4 * BB + 64];
            if (g < ng_full) {
                gp = T::kSuper ? row + (g >> 1) * BB : row + g * 4 * BB;
            } else {
                std::memset(tail, 0, sizeof(tail));
                std::memcpy(tail, row + g * 4 * BB, size_t(nblocks - 4 * g) * BB);
                gp = tail;
            }
            if (g < ng_full) {  // the same group of the next row tile
                const char* pf = reinterpret_cast<const char*>(gp) + size_t(nrows) * ws + (T::kSuper ? (g & 1) * (BB / 2) : 0);
                _mm_prefetch(pf, _MM_HINT_T0);
                _mm_prefetch(pf + 64, _MM_HINT_T0);
                if constexpr ((T::kSuper ? BB / 2 : 4 * BB) > 128) _mm_prefetch(pf + 128, _MM_HINT_T0);
            }
            if constexpr (T::kSuper) {
                if ((g & 1) == 0) T::template prep<true>(gp, prep);
            }
            __m512i w0, w1;
            __m512 s, mn = _mm512_setzero_ps();
            T::template unpack<true>(gp, int(g & 1), prep, w0, w1, s, mn);
            _mm512_store_si512(o[g].w0, w0);
            _mm512_store_si512(o[g].w1, w1);
            _mm512_store_ps(o[g].s, s);
            _mm512_store_ps(o[g].m, mn);
        }
    }
}

// Pairwise lane sums: K = 4 columns -> lane 4L + j = column j (all 4 lanes of block L); K = 2 -> lane
// 4L + q = column q % 2, lanes (0 + 2) / (1 + 3) of each column (the two halves in layout B).
HK_INLINE __m512i compress4(__m512i i0, __m512i i1, __m512i i2, __m512i i3) {
    const __m512i x01 = _mm512_add_epi32(_mm512_unpacklo_epi32(i0, i1), _mm512_unpackhi_epi32(i0, i1));
    const __m512i x23 = _mm512_add_epi32(_mm512_unpacklo_epi32(i2, i3), _mm512_unpackhi_epi32(i2, i3));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(x01, x23), _mm512_unpackhi_epi64(x01, x23));
}
HK_INLINE __m512i compress2(__m512i i0, __m512i i1) {
    return _mm512_add_epi32(_mm512_unpacklo_epi32(i0, i1), _mm512_unpackhi_epi32(i0, i1));
}

// R rows (unpacked in wt, ng groups each) x CQ packs of K columns.
template <class T, int R, int CQ>
void qc_tile(const WGroup* wt, int64_t ng, const PGroup* act, const QGroup* quads, float* out, size_t os,
             int ncols) {
    constexpr int K = T::kPack;
    constexpr bool kMin = T::kMin != kNoMin;
    __m512 acc[R][CQ];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int q = 0; q < CQ; ++q) acc[r][q] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
#pragma GCC unroll 8
        for (int q = 0; q < CQ; ++q) {
            __m512i a0[K], a1[K];
#pragma GCC unroll 4
            for (int k = 0; k < K; ++k) {
                const PGroup& pg = act[(q * K + k) * ng + g];
                a0[k] = _mm512_load_si512(pg.v0);
                a1[k] = _mm512_load_si512(pg.v1);
            }
            const QGroup& qg = quads[q * ng + g];
            const __m512 da = _mm512_load_ps(qg.da);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const WGroup& wg = wt[r * ng + g];
                const __m512i w0 = _mm512_load_si512(wg.w0), w1 = _mm512_load_si512(wg.w1);
                __m512i ik[K];
#pragma GCC unroll 4
                for (int k = 0; k < K; ++k)
                    ik[k] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, a0[k]), w1, a1[k]);
                __m512i y;
                if constexpr (K == 4)
                    y = compress4(ik[0], ik[1], ik[2], ik[3]);
                else
                    y = compress2(ik[0], ik[1]);
                if constexpr (T::kOff != 0) y = _mm512_add_epi32(y, _mm512_load_si512(qg.ci));
                acc[r][q] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(y), da), _mm512_load_ps(wg.s), acc[r][q]);
                if constexpr (kMin) acc[r][q] = _mm512_fmadd_ps(_mm512_load_ps(wg.m), _mm512_load_ps(qg.ms), acc[r][q]);
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int q = 0; q < CQ; ++q) {
            const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[r][q]), _mm512_extractf32x8_ps(acc[r][q], 1));
            const __m128 v = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            alignas(16) float f[4];
            _mm_store_ps(f, v);
            float* o = out + r * os + q * K;
            if constexpr (K == 4) {
                for (int j = 0; j < 4; ++j)
                    if (q * 4 + j < ncols) o[j] = f[j];
            } else {
                if (q * 2 < ncols) o[0] = f[0] + f[2];
                if (q * 2 + 1 < ncols) o[1] = f[1] + f[3];
            }
        }
}

template <class T, int R>
void qc_row_tiles(const WGroup* wt, int64_t ng, const PGroup* act, const QGroup* quads, int nquads, int ncols,
                  float* out, size_t os) {
    constexpr int K = T::kPack;
    constexpr int CQ = K == 4 ? 2 : 4;
    int q = 0;
    for (; q + CQ <= nquads; q += CQ)
        qc_tile<T, R, CQ>(wt, ng, act + q * K * ng, quads + q * ng, out + q * K, os, ncols - q * K);
    for (; q < nquads; ++q) qc_tile<T, R, 1>(wt, ng, act + q * K * ng, quads + q * ng, out + q * K, os, ncols - q * K);
}

constexpr size_t kActBudget = 640 * 1024;  // packed activation bytes per column chunk (stays in L2)
constexpr int kColRows = 4;                // rows per multi-column tile

// ---------------------------------------------------------------------------------------------------------
// Quantized gemm, row-quad path, for the formats with one scale per 32-element block and no minimum (Q4_0,
// Q5_0, Q8_0, IQ4_NL: layout A). The multi-column path above spends more instructions adding lanes together
// (compress4) and scaling than multiplying. Here the lanes of every vpdpbusd already belong to one (row,
// block) pair of one column: int32 lane 4L + r holds row r of a quad of rows, block L of a group, so eight
// vpdpbusd (4 codes each) finish the group's 32-code dot products, and one conversion, one multiply and one
// fma scale them. The weights of 4 rows are interleaved once per row quad (a 4 x 4 transpose of dwords in
// each 128-bit lane); each activation dword is spread over the 4 row lanes in registers (vpshufd).
// ---------------------------------------------------------------------------------------------------------
template <class T>
constexpr bool kRowQuadFormat = T::kPack == 4 && T::kMin == kNoMin && !T::kSuper && T::kTab == &kTabA;

struct alignas(64) RQWeights {  // 4 rows x one group of 4 blocks
    uint8_t v[8][64];  // v[p] lane 4L + r: codes 4p .. 4p + 3 of block L of row r (unsigned: code + kOff)
    float s[16];       // lane 4L + r: the scale of block L of row r
};
struct alignas(64) RQAct {  // one column x one group of 4 blocks
    int8_t v0[64];   // layout A: 128-bit lane L holds codes 0..15 of block L
    int8_t v1[64];   // codes 16..31
    float da[16];    // lane 4L + r: d_a of block L
    int32_t ci[16];  // lane 4L + r: -kOff * (sum of block L's codes), which removes the weights' offset
};

HK_INLINE void transpose_dwords4(__m512i& a, __m512i& b, __m512i& c, __m512i& d) {
    const __m512i t0 = _mm512_unpacklo_epi32(a, b), t1 = _mm512_unpackhi_epi32(a, b);
    const __m512i t2 = _mm512_unpacklo_epi32(c, d), t3 = _mm512_unpackhi_epi32(c, d);
    a = _mm512_unpacklo_epi64(t0, t2);
    b = _mm512_unpackhi_epi64(t0, t2);
    c = _mm512_unpacklo_epi64(t1, t3);
    d = _mm512_unpackhi_epi64(t1, t3);
}

// Group g of a row quad; rows r >= nrows of the quad are zeros (their outputs are not written). Prefetches the
// same group `ahead` bytes further on into L1.
template <class T>
HK_INLINE void unpack_row_quad_group(const uint8_t* w, size_t ws, int nrows, int64_t nblocks, int64_t g, size_t ahead,
                                     RQWeights& o) {
    constexpr int BB = T::kBlockBytes;
    const int64_t ng_full = nblocks / 4;
    typename T::Prep prep{};
    __m512i w0[4], w1[4];
    __m512 sc[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
        if (r >= nrows) {
            w0[r] = w1[r] = _mm512_setzero_si512();
            sc[r] = _mm512_setzero_ps();
            continue;
        }
        const uint8_t* gp = w + r * ws + g * 4 * BB;
        alignas(64) uint8_t tail[4 * BB + 64];
        if (g >= ng_full) {
            std::memset(tail, 0, sizeof(tail));
            std::memcpy(tail, gp, size_t(nblocks - 4 * g) * BB);
            gp = tail;
        } else {
            const char* pf = reinterpret_cast<const char*>(gp) + ahead;
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            if constexpr (4 * BB > 128) _mm_prefetch(pf + 128, _MM_HINT_T0);
        }
        __m512 mn;
        T::template unpack<true>(gp, 0, prep, w0[r], w1[r], sc[r], mn);
    }
    transpose_dwords4(w0[0], w0[1], w0[2], w0[3]);
    transpose_dwords4(w1[0], w1[1], w1[2], w1[3]);
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
        _mm512_store_si512(o.v[p], w0[p]);
        _mm512_store_si512(o.v[4 + p], w1[p]);
    }
    __m512 sv = _mm512_mask_blend_ps(0x2222, sc[0], sc[1]);
    sv = _mm512_mask_blend_ps(0x4444, sv, sc[2]);
    _mm512_store_ps(o.s, _mm512_mask_blend_ps(0x8888, sv, sc[3]));
}

// One activation row of nblocks Q8A blocks, straight from the blocks; a null row packs zeros.
void pack_row_quad_act(const BlockQ8A* a, int64_t nblocks, int off, RQAct* out) {
    const int64_t ng = (nblocks + 3) / 4;
    const __m512i quad = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    for (int64_t g = 0; g < ng; ++g) {
        RQAct& o = out[g];
        const int nv = !a ? 0 : nblocks - 4 * g >= 4 ? 4 : int(nblocks - 4 * g);
        alignas(16) float d[4] = {0, 0, 0, 0};
        alignas(16) int32_t ci[4] = {0, 0, 0, 0};
        if (nv < 4) {
            std::memset(o.v0, 0, sizeof(o.v0));
            std::memset(o.v1, 0, sizeof(o.v1));
        }
        for (int L = 0; L < nv; ++L) {
            const BlockQ8A& b = a[4 * g + L];
            std::memcpy(o.v0 + 16 * L, b.qs, 16);
            std::memcpy(o.v1 + 16 * L, b.qs + 16, 16);
            d[L] = b.d;
            ci[L] = -off * (int32_t(b.sum[0]) + int32_t(b.sum[1]));
        }
        _mm512_store_ps(o.da, _mm512_permutexvar_ps(quad, _mm512_castps128_ps512(_mm_load_ps(d))));
        _mm512_store_si512(o.ci, _mm512_permutexvar_epi32(quad, _mm512_castsi128_si512(_mm_load_si128((const __m128i*)ci))));
    }
}

// RQ row quads (rq_w[q * ng + g]) x C columns (act[c * ng + g]); writes rows < nrows, columns < ncols.
// each_group(g) runs at the start of every group: the caller prefetches the rows after next there, so that
// their loads from memory overlap these multiplications.
// kTrans: out[c * os + r] instead of out[r * os + c].
template <int RQ, int C, bool kTrans, class EachGroup>
void rq_tile(const RQWeights* rq_w, int64_t ng, const RQAct* act, float* out, size_t os, int nrows, int ncols,
             EachGroup each_group) {
    __m512 acc[RQ][C];
#pragma GCC unroll 8
    for (int q = 0; q < RQ; ++q)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[q][c] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
        each_group(g);
        __m512i isum[RQ][C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            const __m512i ci = _mm512_load_si512(act[c * ng + g].ci);
#pragma GCC unroll 8
            for (int q = 0; q < RQ; ++q) isum[q][c] = ci;
        }
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
            __m512i a[C];
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) a[c] = _mm512_load_si512(h ? act[c * ng + g].v1 : act[c * ng + g].v0);
#pragma GCC unroll 4
            for (int p = 0; p < 4; ++p) {
                __m512i ap[C];
#pragma GCC unroll 8
                for (int c = 0; c < C; ++c) ap[c] = _mm512_shuffle_epi32(a[c], static_cast<_MM_PERM_ENUM>(p * 0x55));
#pragma GCC unroll 8
                for (int q = 0; q < RQ; ++q) {
                    const __m512i wv = _mm512_load_si512(rq_w[q * ng + g].v[4 * h + p]);
#pragma GCC unroll 8
                    for (int c = 0; c < C; ++c) isum[q][c] = _mm512_dpbusd_epi32(isum[q][c], wv, ap[c]);
                }
            }
        }
#pragma GCC unroll 8
        for (int q = 0; q < RQ; ++q) {
            const __m512 sw = _mm512_load_ps(rq_w[q * ng + g].s);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c)
                acc[q][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[q][c]),
                                            _mm512_mul_ps(sw, _mm512_load_ps(act[c * ng + g].da)), acc[q][c]);
        }
    }
#pragma GCC unroll 8
    for (int q = 0; q < RQ; ++q)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) {
            if (c >= ncols) continue;
            // Lane 4L + r: add the four blocks' lanes of each row.
            const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(acc[q][c]), _mm512_extractf32x8_ps(acc[q][c], 1));
            const __m128 v = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
            if (kTrans && 4 * q + 4 <= nrows) {
                _mm_storeu_ps(out + size_t(c) * os + size_t(4 * q), v);
                continue;
            }
            alignas(16) float f[4];
            _mm_store_ps(f, v);
            for (int r = 0; r < 4; ++r)
                if (4 * q + r < nrows) out[kTrans ? size_t(c) * os + size_t(4 * q + r) : size_t(4 * q + r) * os + size_t(c)] = f[r];
        }
}

template <class T, bool kTrans>
void gemm_row_quads(int64_t n, const uint8_t* wb, size_t w_stride, const uint8_t* ab, size_t act_stride, float* out,
                    size_t out_stride, int nr, int nc) {
    constexpr int RQ = 2, C = 4;
    const int64_t nblocks = n / 32;
    const int64_t ng = (nblocks + 3) / 4;
    const size_t per_col = size_t(ng) * sizeof(RQAct);
    int cb = int(kActBudget / per_col);
    cb -= cb % C;
    if (cb < C) cb = C;
    const int nc_pad = (nc + C - 1) / C * C;
    if (cb > nc_pad) cb = nc_pad;
    RQWeights* rq_w = static_cast<RQWeights*>(scratch(1, size_t(RQ) * ng * sizeof(RQWeights)));
    RQAct* cols = static_cast<RQAct*>(scratch(2, size_t(cb) * per_col));
    for (int c0 = 0; c0 < nc; c0 += cb) {
        const int ncc = nc - c0 < cb ? nc - c0 : cb;
        const int ncc_pad = (ncc + C - 1) / C * C;
        for (int c = 0; c < ncc_pad; ++c)
            pack_row_quad_act(c < ncc ? reinterpret_cast<const BlockQ8A*>(ab + size_t(c0 + c) * act_stride) : nullptr,
                              nblocks, T::kOff, cols + size_t(c) * ng);
        // Row octets. Unpacking one prefetches the next into L1; while it multiplies, the octet after that is
        // prefetched into L2 a few lines per group, so that the weights stream from memory all the time
        // (without the spread prefetch a single-thread 8192 x 2048 Q8_0 product of 16 columns took 2.0 ms
        // against 1.6 with it).
        float* o = kTrans ? out + size_t(c0) * out_stride : out + c0;
        const size_t oct_bytes = size_t(4 * RQ) * w_stride;
        for (int r = 0; r < nr; r += 4 * RQ) {
            const int rows = nr - r < 4 * RQ ? nr - r : 4 * RQ;
            for (int q = 0; q < RQ; ++q) {
                const int qrows = rows - 4 * q;
                for (int64_t g = 0; g < ng; ++g)
                    unpack_row_quad_group<T>(wb + size_t(r + 4 * q) * w_stride, w_stride,
                                             qrows < 0 ? 0 : qrows < 4 ? qrows : 4, nblocks, g, oct_bytes,
                                             rq_w[size_t(q) * ng + size_t(g)]);
            }
            const int next_rows = nr - r - 8 * RQ < 4 * RQ ? nr - r - 8 * RQ : 4 * RQ;
            const char* next = reinterpret_cast<const char*>(wb + size_t(r + 8 * RQ) * w_stride);
            const int64_t lines = next_rows > 0 ? int64_t((size_t(next_rows) * w_stride + 63) / 64) : 0;
            const int tiles = (ncc + C - 1) / C;
            const int64_t steps = int64_t(tiles) * ng;
            for (int c = 0; c < ncc; c += C) {
                const int64_t step0 = int64_t(c / C) * ng;
                float* oc = kTrans ? o + size_t(c) * out_stride + size_t(r) : o + size_t(r) * out_stride + size_t(c);
                rq_tile<RQ, C, kTrans>(rq_w, ng, cols + size_t(c) * ng, oc, out_stride, rows, ncc - c, [&](int64_t g) {
                                   const int64_t k = step0 + g;
                                   for (int64_t l = k * lines / steps; l < (k + 1) * lines / steps; ++l)
                                       _mm_prefetch(next + 64 * l, _MM_HINT_T1);
                               });
            }
        }
    }
}

template <class T>
void gemm_q(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride, float* out,
            size_t out_stride, int nr, int nc) {
    if (nr <= 0 || nc <= 0) return;
    if (n < 32) {  // empty reduction
        for (int r = 0; r < nr; ++r)
            for (int c = 0; c < nc; ++c) out[size_t(r) * out_stride + size_t(c)] = 0.0f;
        return;
    }
    constexpr int K = T::kPack;
    const int64_t nblocks = n / 32;
    const int64_t ng = (nblocks + 3) / 4;
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    if (nc < K) {  // decode path
        const size_t per_col = size_t(ng) * sizeof(PGroup);
        PGroup* buf = static_cast<PGroup*>(scratch(0, size_t(nc) * per_col));
        for (int c = 0; c < nc; ++c)
            pack_act(reinterpret_cast<const BlockQ8A*>(ab + size_t(c) * act_stride), nblocks, *T::kTab, T::kOff,
                     buf + c * ng);
        // Rows whose partial last group may be read in place: all but the call's last row, if a whole group
        // fits in the row stride (the bytes after a row's end up to the next row's end are readable).
        const bool in_place = w_stride >= size_t(4 * T::kBlockBytes);
        const auto safe = [&](int r0, int rows) { return !in_place ? 0 : r0 + rows < nr ? rows : rows - 1; };
        int r = 0;
        if (nc == 1)
            for (; r + kDecodeRows <= nr; r += kDecodeRows)
                q_tile<T, kDecodeRows, 1>(wb + r * w_stride, w_stride, nblocks, buf, ng, out + r * out_stride,
                                          out_stride, safe(r, kDecodeRows));
        for (; r + 4 <= nr; r += 4)
            q_row_tiles<T, 4>(wb + r * w_stride, w_stride, nblocks, buf, ng, nc, out + r * out_stride, out_stride,
                              safe(r, 4));
        for (; r + 2 <= nr; r += 2)
            q_row_tiles<T, 2>(wb + r * w_stride, w_stride, nblocks, buf, ng, nc, out + r * out_stride, out_stride,
                              safe(r, 2));
        for (; r < nr; ++r)
            q_row_tiles<T, 1>(wb + r * w_stride, w_stride, nblocks, buf, ng, nc, out + r * out_stride, out_stride,
                              safe(r, 1));
        return;
    }
    if constexpr (kRowQuadFormat<T>) {
        gemm_row_quads<T, false>(n, wb, w_stride, ab, act_stride, out, out_stride, nr, nc);
        return;
    }
    // Multi-column path: column chunks padded to whole K-column packs with zero columns.
    const size_t per_col = size_t(ng) * (sizeof(PGroup) + sizeof(QGroup) / K);
    int cb = int(kActBudget / per_col);
    cb -= cb % (2 * K);
    if (cb < 2 * K) cb = 2 * K;
    const int nc_pad = (nc + K - 1) / K * K;
    if (cb > nc_pad) cb = nc_pad;
    PGroup* cols = static_cast<PGroup*>(scratch(0, size_t(cb) * ng * (sizeof(PGroup) + sizeof(QGroup) / K)));
    QGroup* quads = reinterpret_cast<QGroup*>(cols + size_t(cb) * ng);
    WGroup* wt = static_cast<WGroup*>(scratch(1, size_t(kColRows) * ng * sizeof(WGroup)));
    for (int c0 = 0; c0 < nc; c0 += cb) {
        const int ncc = nc - c0 < cb ? nc - c0 : cb;
        const int nq = (ncc + K - 1) / K;
        for (int c = 0; c < nq * K; ++c)
            pack_act(c < ncc ? reinterpret_cast<const BlockQ8A*>(ab + size_t(c0 + c) * act_stride) : nullptr, nblocks,
                     *T::kTab, T::kOff, cols + c * ng);
        pack_quads<K>(cols, ng, nq, *T::kTab, T::kOff, quads);
        float* o = out + c0;
        int r = 0;
        for (; r + kColRows <= nr; r += kColRows) {
            unpack_rows<T>(wb + r * w_stride, w_stride, kColRows, nblocks, wt);
            qc_row_tiles<T, kColRows>(wt, ng, cols, quads, nq, ncc, o + r * out_stride, out_stride);
        }
        for (; r < nr; ++r) {
            unpack_rows<T>(wb + r * w_stride, w_stride, 1, nblocks, wt);
            qc_row_tiles<T, 1>(wt, ng, cols, quads, nq, ncc, o + r * out_stride, out_stride);
        }
    }
}

// gemm_t of the row-quad formats: written transposed by the row-quad kernel; fewer than 4 columns (or an
// empty reduction) through gemm_q and a transposing copy.
template <class T>
void gemm_q_t(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride, float* out,
              size_t out_stride, int nr, int nc) {
    static_assert(kRowQuadFormat<T>);
    if (nr <= 0 || nc <= 0) return;
    if (n < 32 || nc < 4) {
        thread_local std::vector<float> tmp;
        if (tmp.size() < size_t(nr) * size_t(nc)) tmp.resize(size_t(nr) * size_t(nc));
        gemm_q<T>(n, w, w_stride, act, act_stride, tmp.data(), size_t(nc), nr, nc);
        for (int c = 0; c < nc; ++c)
            for (int r = 0; r < nr; ++r) out[size_t(c) * out_stride + size_t(r)] = tmp[size_t(r) * size_t(nc) + size_t(c)];
        return;
    }
    gemm_row_quads<T, true>(n, static_cast<const uint8_t*>(w), w_stride, static_cast<const uint8_t*>(act), act_stride,
                            out, out_stride, nr, nc);
}

template <class T>
float dot_q(const void* w, const void* act, int64_t n) {
    float out = 0;
    gemm_q<T>(n, w, 0, act, 0, &out, 0, 1, 1);
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Float weights
// ---------------------------------------------------------------------------------------------------------
struct F32W {
    using E = float;
    static HK_INLINE __m512 load(const E* p) { return _mm512_loadu_ps(p); }
    static HK_INLINE __m512 load_mask(const E* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct F16W {
    using E = uint16_t;
    static HK_INLINE __m512 load(const E* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
    static HK_INLINE __m512 load_mask(const E* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct BF16W {
    using E = uint16_t;
    static HK_INLINE __m512 widen(__m256i x) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16));
    }
    static HK_INLINE __m512 load(const E* p) { return widen(_mm256_loadu_si256((const __m256i*)p)); }
    static HK_INLINE __m512 load_mask(const E* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

template <class W, int R, int C>
void f_tile(int64_t n, const uint8_t* w, size_t ws, const uint8_t* act, size_t as, float* out, size_t os) {
    using E = typename W::E;
    __m512 acc[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    const E* wr[R];
    const float* ar[C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const E*>(w + r * ws);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) ar[c] = reinterpret_cast<const float*>(act + c * as);
    int64_t k = 0;
    // Decode streams the weights from DRAM: prefetch the same columns kPrefetchTiles row tiles ahead.
    const size_t pf = kPrefetchTiles * size_t(R) * ws;
    for (; k + 16 <= n; k += 16) {
        __m512 a[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) a[c] = _mm512_loadu_ps(ar[c] + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            if constexpr (C == 1) _mm_prefetch(reinterpret_cast<const char*>(wr[r] + k) + pf, _MM_HINT_T0);
            const __m512 x = W::load(wr[r] + k);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(x, a[c], acc[r][c]);
        }
    }
    if (k < n) {
        const __mmask16 m = __mmask16((1u << (n - k)) - 1);
        __m512 a[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) a[c] = _mm512_maskz_loadu_ps(m, ar[c] + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 x = W::load_mask(wr[r] + k, m);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) acc[r][c] = _mm512_fmadd_ps(x, a[c], acc[r][c]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) out[r * os + c] = _mm512_reduce_add_ps(acc[r][c]);
}

template <class W, int R>
void f_row_tiles(int64_t n, const uint8_t* w, size_t ws, const uint8_t* act, size_t as, int nc, float* out,
                 size_t os) {
    int c = 0;
    for (; c + 4 <= nc; c += 4) f_tile<W, R, 4>(n, w, ws, act + c * as, as, out + c, os);
    switch (nc - c) {
        case 3: f_tile<W, R, 3>(n, w, ws, act + c * as, as, out + c, os); break;
        case 2: f_tile<W, R, 2>(n, w, ws, act + c * as, as, out + c, os); break;
        case 1: f_tile<W, R, 1>(n, w, ws, act + c * as, as, out + c, os); break;
        default: break;
    }
}

template <class W>
void gemm_f(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride, float* out,
            size_t out_stride, int nr, int nc) {
    if (nr <= 0 || nc <= 0) return;
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    int cb = int(kActBudget / (size_t(n) * sizeof(float) + 1));
    if (cb < 4) cb = 4;
    cb -= cb % 4;
    for (int c0 = 0; c0 < nc; c0 += cb) {
        const int ncc = nc - c0 < cb ? nc - c0 : cb;
        const uint8_t* a = ab + size_t(c0) * act_stride;
        float* o = out + c0;
        int r = 0;
        for (; r + 4 <= nr; r += 4)
            f_row_tiles<W, 4>(n, wb + r * w_stride, w_stride, a, act_stride, ncc, o + r * out_stride, out_stride);
        for (; r < nr; ++r)
            f_row_tiles<W, 1>(n, wb + r * w_stride, w_stride, a, act_stride, ncc, o + r * out_stride, out_stride);
    }
}

template <class W>
float dot_f(const void* w, const void* act, int64_t n) {
    float out = 0;
    gemm_f<W>(n, w, 0, act, 0, &out, 0, 1, 1);
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Activation quantizer: bit-identical to quantize_act_ref (d = amax / 127, q = lround(x * (1 / d))).
// ---------------------------------------------------------------------------------------------------------
HK_INLINE __m512i round_away(__m512 v) {
    // lround: truncate, then step away from zero when the dropped fraction is >= 0.5 (v - trunc(v) is exact).
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(_mm512_set1_ps(1.0f)),
                        _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(0x80000000u)))));
    return _mm512_cvttps_epi32(_mm512_mask_add_ps(t, up, t, one));
}

void quantize_act(const float* x, BlockQ8A* y, int64_t n) {
    for (int64_t i = 0; i < n / 32; ++i) {
        const __m512 a = _mm512_loadu_ps(x + 32 * i), b = _mm512_loadu_ps(x + 32 * i + 16);
        // max(v, acc) returns acc when v is NaN, like fmax in the reference.
        const __m512 m = _mm512_max_ps(_mm512_abs_ps(b), _mm512_max_ps(_mm512_abs_ps(a), _mm512_setzero_ps()));
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        const __m128i qa = _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(a, vid)));
        const __m128i qb = _mm512_cvtepi32_epi8(round_away(_mm512_mul_ps(b, vid)));
        y[i].d = d;
        y[i].sum[0] = int16_t(_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(qa)));
        y[i].sum[1] = int16_t(_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(qb)));
        _mm_storeu_si128((__m128i*)y[i].qs, qa);
        _mm_storeu_si128((__m128i*)(y[i].qs + 16), qb);
    }
}

// ---------------------------------------------------------------------------------------------------------
// SwiGLU: 16 lanes at a time with a polynomial e^x (libm's scalar expf was most of this loop's time).
// ---------------------------------------------------------------------------------------------------------
void swiglu(float* g, const float* u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
    }
    if (i < n) {
        const __mmask16 m = __mmask16((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_mask_storeu_ps(g + i, m,
                              _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

// The conversion instruction rounds to nearest even, as f32_to_f16 does.
void f32_to_f16_row(const float* x, f16_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(dst + i, m,
                                 _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------------------------
constexpr KernelTable make_table() {
    KernelTable t{};
    t.isa = Isa::Avx512;
    t.name = "avx512";
    t.quantize_act = quantize_act;
    t.swiglu = swiglu;
    t.f32_to_f16_row = f32_to_f16_row;
    t.sgemm = {kSgemmAvx512Mr, kSgemmAvx512Nr, sgemm_tile_avx512};
    t.sgemm_bf16 = {kSgemmAvx512Mr, kSgemmAvx512Nr, sgemm_bf16_tile_avx512, pack_bf16_pairs_avx512};
    t.exp_shift_sum = exp_shift_sum_avx512;
    t.swiglu_backward = swiglu_backward_avx512;
    t.rms_norm_row = rms_norm_row_avx512;
    t.rms_norm_backward = rms_norm_backward_avx512;
    t.norm_weight_grad = norm_weight_grad_avx512;
    t.adamw = adamw_avx512;
    t.softmax_backward = softmax_backward_avx512;
    t.dot_f32 = dot_f32_avx512;
    t.max_f32 = max_f32_avx512;
    t.scale_f32 = scale_f32_avx512;
    t.rope_pairs = rope_pairs_avx512;
    const auto set = [&t](DType type, DotFn dot, GemmFn gemm) {
        t.dot[static_cast<uint32_t>(type)] = dot;
        t.gemm[static_cast<uint32_t>(type)] = gemm;
    };
    set(DType::F32, dot_f<F32W>, gemm_f<F32W>);
    set(DType::F16, dot_f<F16W>, gemm_f<F16W>);
    set(DType::BF16, dot_f<BF16W>, gemm_f<BF16W>);
    set(DType::Q8_0, dot_q<Q8_0T>, gemm_q<Q8_0T>);
    set(DType::Q4_0, dot_q<Q4_0T>, gemm_q<Q4_0T>);
    set(DType::Q4_1, dot_q<Q4_1T>, gemm_q<Q4_1T>);
    set(DType::Q5_0, dot_q<Q5_0T>, gemm_q<Q5_0T>);
    set(DType::Q5_1, dot_q<Q5_1T>, gemm_q<Q5_1T>);
    set(DType::IQ4_NL, dot_q<IQ4_NLT>, gemm_q<IQ4_NLT>);
    set(DType::Q2_K, dot_q<Q2_KT>, gemm_q<Q2_KT>);
    set(DType::Q3_K, dot_q<Q3_KT>, gemm_q<Q3_KT>);
    set(DType::Q4_K, dot_q<Q4_KT>, gemm_q<Q4_KT>);
    set(DType::Q5_K, dot_q<Q5_KT>, gemm_q<Q5_KT>);
    set(DType::Q6_K, dot_q<Q6_KT>, gemm_q<Q6_KT>);
    t.gemm_t[static_cast<uint32_t>(DType::Q8_0)] = gemm_q_t<Q8_0T>;
    t.gemm_t[static_cast<uint32_t>(DType::Q4_0)] = gemm_q_t<Q4_0T>;
    t.gemm_t[static_cast<uint32_t>(DType::Q5_0)] = gemm_q_t<Q5_0T>;
    t.gemm_t[static_cast<uint32_t>(DType::IQ4_NL)] = gemm_q_t<IQ4_NLT>;
    return t;
}

constinit const KernelTable kTable = make_table();

}  // namespace

const KernelTable& avx512_table() { return kTable; }

}  // namespace hearth::kernels
