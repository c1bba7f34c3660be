// AVX2 kernels (AVX2, FMA, F16C, BMI2). Only reached through dispatch.cpp when the CPU and the OS support these;
// nothing here runs at static-initialisation time (the table is constant-initialised) and every helper has
// internal linkage. The file is compiled with -mavxvnni too, but this path must run on plain AVX2 CPUs: it uses
// no AVX-VNNI intrinsic (integer dot products are vpmaddubsw / vpmaddwd); with gcc 12 the object holds no
// vpdp* instruction (check: objdump -d avx2.cpp.o | grep vpdp).
//
// Same scheme as avx512.cpp (read its header comment), at half the width: the activation rows are repacked
// into groups of 64 elements (2 blocks) holding two 32-byte code vectors V0, V1 arranged so that int32 lane p
// of madd(maddubs(W0, V0) + maddubs(W1, V1), 1) stays inside one activation block and one weight scale group,
// plus the lane scales d_a, the integer offset correction and the activation half sums.
// vpmaddubsw saturates at int16: unsigned codes up to 63 (Q6_K + 32) keep |2 * 63 * 127 * 2| < 32768 when the
// two products are added in int16, so all offset formats add W0 and W1 products before widening. Q8_0 and
// IQ4_NL have signed codes up to +-128 and use the sign trick instead: |w| times (a with w's sign), widened
// separately.
// Every gemm uses tiles of 4 rows x up to 2 columns with the weights unpacked on the fly (avx512.cpp's
// pre-unpacked multi-column microkernel is not ported here); row tiles two ahead are prefetched for decode.
#include <immintrin.h>
// GCC 12's _mm512_undefined_*() / _mm256_undefined_*() self-initialise, which -Wuninitialized reports at every
// inlined use (GCC bug 105593); the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tensor/kernels.h"
#include "tensor/kernels/train.h"
#include "tensor/quantize.h"  // only for the IQ4_NL level table (a constant, no code)


namespace hearth::kernels {
namespace {

#define HK_INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------------------------------------------------
// Thread-local scratch (packed activations).
// ---------------------------------------------------------------------------------------------------------
struct Scratch {
    void* p = nullptr;
    size_t cap = 0;
    ~Scratch() { std::free(p); }
};
thread_local Scratch t_scratch;

void* scratch(size_t bytes) {
    if (bytes > t_scratch.cap) {
        std::free(t_scratch.p);
        const size_t cap = (bytes + 4095) & ~size_t(4095);
        t_scratch.p = std::aligned_alloc(64, cap);
        if (!t_scratch.p) std::abort();
        t_scratch.cap = cap;
    }
    return t_scratch.p;
}

HK_INLINE uint16_t rd16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
HK_INLINE uint32_t rd32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
HK_INLINE float h2f(const uint8_t* p) { return _cvtsh_ss(rd16(p)); }
HK_INLINE __m256i ld(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
HK_INLINE __m128i ld128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
HK_INLINE __m256i bc8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
HK_INLINE __m256i two128(const uint8_t* lo, const uint8_t* hi) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(ld128(lo)), ld128(hi), 1);
}
// Moves bit b of every byte of x (a single-bit mask already applied) to bit `to` (|b - to| <= 7 and the
// 16-bit shift never carries a set bit across bytes since only one bit per byte is set and it stays in-byte).
HK_INLINE __m256i move_bit(__m256i x, int b, int to) {
    return b <= to ? _mm256_sll_epi16(x, _mm_cvtsi32_si128(to - b)) : _mm256_srl_epi16(x, _mm_cvtsi32_si128(b - to));
}
HK_INLINE __m256i srl16(__m256i x, int n) { return _mm256_srl_epi16(x, _mm_cvtsi32_si128(n)); }

// ---------------------------------------------------------------------------------------------------------
// Constant tables
// ---------------------------------------------------------------------------------------------------------
struct alignas(32) Bytes32 {
    uint8_t b[32];
};
struct alignas(32) Ints8 {
    int32_t v[8];
};
template <class F>
constexpr Bytes32 make_bytes(F f) {
    Bytes32 r{};
    for (int i = 0; i < 32; ++i) r.b[i] = static_cast<uint8_t>(f(i));
    return r;
}
template <class F>
constexpr Ints8 make_ints(F f) {
    Ints8 r{};
    for (int i = 0; i < 8; ++i) r.v[i] = f(i);
    return r;
}
HK_INLINE __m256i ldt(const Bytes32& t) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(t.b)); }
HK_INLINE __m256i ldt(const Ints8& t) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(t.v)); }

// Activation layouts: element offset (within the 64-element group, a multiple of 4) of each dword of V0/V1.
struct Layout {
    uint8_t e0[8];
    uint8_t e1[8];
};
constexpr Layout layout_a() {  // lane L of V0 = first 16 codes of block L, of V1 = last 16
    Layout l{};
    for (int p = 0; p < 8; ++p) {
        l.e0[p] = static_cast<uint8_t>(32 * (p / 4) + 4 * (p % 4));
        l.e1[p] = static_cast<uint8_t>(l.e0[p] + 16);
    }
    return l;
}
constexpr Layout layout_s() {  // what _mm256_shuffle_ps(x0, x1, 0x88 / 0xDD) of two 32-code blocks gives
    Layout l{};
    for (int p = 0; p < 8; ++p) {
        const int h = p / 4, q = p % 4;
        l.e0[p] = static_cast<uint8_t>(32 * (q / 2) + 16 * h + 8 * (q % 2));
        l.e1[p] = static_cast<uint8_t>(l.e0[p] + 4);
    }
    return l;
}
struct LayoutTables {
    Ints8 src0, src1;  // source dword (0..15) of V0 / V1 lane
    Ints8 blk;         // block of each lane
    Ints8 ca, cb;      // half-sum index (0..3) added into ci, 4 = none
};
constexpr LayoutTables make_layout_tables(const Layout& l) {
    LayoutTables t{};
    bool done[4] = {};
    for (int p = 0; p < 8; ++p) {
        t.src0.v[p] = l.e0[p] / 4;
        t.src1.v[p] = l.e1[p] / 4;
        t.blk.v[p] = l.e0[p] / 32;
        t.ca.v[p] = 4;
        t.cb.v[p] = 4;
        const int h0 = l.e0[p] / 16, h1 = l.e1[p] / 16;
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
constexpr LayoutTables kTabA = make_layout_tables(layout_a());
constexpr LayoutTables kTabS = make_layout_tables(layout_s());

// ---------------------------------------------------------------------------------------------------------
// Packed activations
// ---------------------------------------------------------------------------------------------------------
struct alignas(32) PGroup {
    int8_t v0[32];
    int8_t v1[32];
    float da[8];
    int32_t ci[8];
    float ms[8];  // d_a * half sum: lanes 0..3 this group's halves; 4..7 the next group's (even groups)
};
static_assert(sizeof(PGroup) == 160);

HK_INLINE __m256i pick_dwords(__m256i x0, __m256i x1, __m256i src) {
    const __m256i i = _mm256_and_si256(src, _mm256_set1_epi32(7));
    const __m256i hi = _mm256_cmpgt_epi32(src, _mm256_set1_epi32(7));
    return _mm256_blendv_epi8(_mm256_permutevar8x32_epi32(x0, i), _mm256_permutevar8x32_epi32(x1, i), hi);
}

void pack_act(const BlockQ8A* a, int64_t nblocks, const LayoutTables& t, int off, PGroup* out) {
    const int64_t ng = (nblocks + 1) / 2;
    const __m256i s0 = ldt(t.src0), s1 = ldt(t.src1);
    for (int64_t g = 0; g < ng; ++g) {
        const BlockQ8A* b = a + 2 * g;
        const int nv = nblocks - 2 * g >= 2 ? 2 : 1;
        const __m256i x0 = ld(b[0].qs);
        const __m256i x1 = nv == 2 ? ld(b[1].qs) : _mm256_setzero_si256();
        float d[2] = {b[0].d, nv == 2 ? b[1].d : 0.0f};
        int32_t hs[5] = {b[0].sum[0], b[0].sum[1], nv == 2 ? b[1].sum[0] : 0, nv == 2 ? b[1].sum[1] : 0, 0};
        PGroup& o = out[g];
        _mm256_store_si256(reinterpret_cast<__m256i*>(o.v0), pick_dwords(x0, x1, s0));
        _mm256_store_si256(reinterpret_cast<__m256i*>(o.v1), pick_dwords(x0, x1, s1));
        for (int p = 0; p < 8; ++p) {
            o.da[p] = d[t.blk.v[p]];
            o.ci[p] = -off * (hs[t.ca.v[p]] + hs[t.cb.v[p]]);
        }
        for (int h = 0; h < 4; ++h) {
            o.ms[h] = d[h / 2] * float(hs[h]);
            o.ms[4 + h] = 0.0f;
        }
        if (g & 1) std::memcpy(out[g - 1].ms + 4, o.ms, 4 * sizeof(float));
    }
}

enum MinKind { kNoMin, kGroupMin, kSuperMin };

// Lane scale pattern [x0 x0 x0 x0 x1 x1 x1 x1] from two f16 values.
constexpr Bytes32 kPat0011 = make_bytes([](int i) { return i < 16 ? (i < 8 ? (i & 1) : 2 + (i & 1)) : 0x80; });
// [m0 m0 m1 m1 0 0 0 0] from two f16 values (the per-half minimums of Q4_1 / Q5_1).
constexpr Bytes32 kPatM = make_bytes([](int i) { return i < 8 ? (i < 4 ? (i & 1) : 2 + (i & 1)) : 0x80; });
HK_INLINE __m256 f16_pair(const uint8_t* p0, const uint8_t* p1, const Bytes32& pat) {
    const __m128i v = _mm_cvtsi32_si128(int(uint32_t(rd16(p0)) | (uint32_t(rd16(p1)) << 16)));
    return _mm256_cvtph_ps(_mm_shuffle_epi8(v, _mm256_castsi256_si128(ldt(pat))));
}

struct NoPrep {};

// ---- Q4_0 / IQ4_NL ----
struct Q4_0T {
    static constexpr int kBlockBytes = 18;
    static constexpr bool kSuper = false, kSigned = false;
    static constexpr int kOff = 8;
    static constexpr MinKind kMin = kNoMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m256i& w0, __m256i& w1, __m256& s, __m256&) {
        const __m256i q = two128(p + 2, p + 20), m = bc8(0x0F);
        w0 = _mm256_and_si256(q, m);
        w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
        s = f16_pair(p, p + 18, kPat0011);
    }
};
constexpr Bytes32 kIQ4NLLut = make_bytes([](int i) { return quant::kIQ4NL[i % 16]; });
struct IQ4_NLT {
    static constexpr int kBlockBytes = 18;
    static constexpr bool kSuper = false, kSigned = true;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kNoMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m256i& w0, __m256i& w1, __m256& s, __m256&) {
        const __m256i q = two128(p + 2, p + 20), m = bc8(0x0F), lut = ldt(kIQ4NLLut);
        w0 = _mm256_shuffle_epi8(lut, _mm256_and_si256(q, m));
        w1 = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(q, 4), m));
        s = f16_pair(p, p + 18, kPat0011);
    }
};
// ---- Q4_1 ----
struct Q4_1T {
    static constexpr int kBlockBytes = 20;
    static constexpr bool kSuper = false, kSigned = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kGroupMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256& mn) {
        const __m256i q = two128(p + 4, p + 24), m = bc8(0x0F);
        w0 = _mm256_and_si256(q, m);
        w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
        s = f16_pair(p, p + 20, kPat0011);
        mn = f16_pair(p + 2, p + 22, kPatM);
    }
};
// ---- Q5_0 / Q5_1: fifth bits spread to bytes with a shuffle + bit test ----
constexpr Bytes32 kQh0 = make_bytes([](int i) { return (i % 16) / 8; });
constexpr Bytes32 kQh1 = make_bytes([](int i) { return 2 + (i % 16) / 8; });
constexpr Bytes32 kBit8 = make_bytes([](int i) { return 1 << (i % 8); });
HK_INLINE void add_fifth_bits(const uint8_t* qh0, const uint8_t* qh1, __m256i& w0, __m256i& w1) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtsi32_si128(int(rd32(qh0)))),
                                              _mm_cvtsi32_si128(int(rd32(qh1))), 1);
    const __m256i bits = ldt(kBit8), b16 = bc8(0x10);
    const __m256i h0 = _mm256_and_si256(_mm256_shuffle_epi8(v, ldt(kQh0)), bits);
    const __m256i h1 = _mm256_and_si256(_mm256_shuffle_epi8(v, ldt(kQh1)), bits);
    w0 = _mm256_or_si256(w0, _mm256_and_si256(_mm256_cmpeq_epi8(h0, bits), b16));
    w1 = _mm256_or_si256(w1, _mm256_and_si256(_mm256_cmpeq_epi8(h1, bits), b16));
}
struct Q5_0T {
    static constexpr int kBlockBytes = 22;
    static constexpr bool kSuper = false, kSigned = false;
    static constexpr int kOff = 16;
    static constexpr MinKind kMin = kNoMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m256i& w0, __m256i& w1, __m256& s, __m256&) {
        const __m256i q = two128(p + 6, p + 28), m = bc8(0x0F);
        w0 = _mm256_and_si256(q, m);
        w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
        add_fifth_bits(p + 2, p + 24, w0, w1);
        s = f16_pair(p, p + 22, kPat0011);
    }
};
struct Q5_1T {
    static constexpr int kBlockBytes = 24;
    static constexpr bool kSuper = false, kSigned = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kGroupMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256& mn) {
        const __m256i q = two128(p + 8, p + 32), m = bc8(0x0F);
        w0 = _mm256_and_si256(q, m);
        w1 = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
        add_fifth_bits(p + 4, p + 28, w0, w1);
        s = f16_pair(p, p + 24, kPat0011);
        mn = f16_pair(p + 2, p + 26, kPatM);
    }
};
// ---- Q8_0 (signed) ----
struct Q8_0T {
    static constexpr int kBlockBytes = 34;
    static constexpr bool kSuper = false, kSigned = true;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kNoMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = NoPrep;
    static HK_INLINE void prep(const uint8_t*, Prep&) {}
    static HK_INLINE void unpack(const uint8_t* p, int, const Prep&, __m256i& w0, __m256i& w1, __m256& s, __m256&) {
        const __m256i y0 = ld(p + 2), y1 = ld(p + 36);
        w0 = _mm256_permute2x128_si256(y0, y1, 0x20);
        w1 = _mm256_permute2x128_si256(y0, y1, 0x31);
        s = f16_pair(p, p + 34, kPat0011);
    }
};

// ---- K-quants: a super-block is 4 groups; g = 0..3 ----
struct KPrep {
    __m256 sc;      // d * scale of the 8 sub-blocks
    __m256 m[2];    // dmin * min per half (16 halves in two registers)
};
constexpr Ints8 kDup0 = make_ints([](int i) { return i / 2; });
constexpr Ints8 kDup1 = make_ints([](int i) { return 4 + i / 2; });
// Scales and minimums of a Q4_K / Q5_K super-block in vector registers: the 16-byte header (d, dmin, 12 scale
// bytes) is shuffled so that one pass of masks and shifts yields sc[0..7], mn[0..7] as bytes.
constexpr Bytes32 kKScA = make_bytes([](int i) {  // low-bit sources: sc0..3, sc4..7 (nibble), mn0..3, mn4..7
    const int src[16] = {4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15};
    return i < 16 ? src[i] : 0;
});
constexpr Bytes32 kKScB = make_bytes([](int i) { return i >= 4 && i < 8 ? i : i >= 12 && i < 16 ? i - 4 : 0x80; });
constexpr Bytes32 kKScMaskLo = make_bytes([](int i) { return i < 4 || (i >= 8 && i < 12) ? 63 : i < 8 ? 15 : 0; });
constexpr Bytes32 kKScMaskHi = make_bytes([](int i) { return i >= 12 && i < 16 ? 15 : 0; });
HK_INLINE __m128i ldt16(const Bytes32& t) { return _mm_load_si128(reinterpret_cast<const __m128i*>(t.b)); }
HK_INLINE void k_scales_prep(const uint8_t* sp, KPrep& pr) {
    const __m128i x = ld128(sp);
    const __m128i a = _mm_shuffle_epi8(x, ldt16(kKScA)), b = _mm_shuffle_epi8(x, ldt16(kKScB));
    const __m128i lo = _mm_and_si128(a, ldt16(kKScMaskLo));
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(a, 4), ldt16(kKScMaskHi));
    const __m128i top = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
    const __m128i scm = _mm_or_si128(_mm_or_si128(lo, hi), top);  // sc0..7, mn0..7
    const __m128 dm = _mm_cvtph_ps(x);                              // d, dmin, ...
    pr.sc = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(scm)), _mm256_broadcastss_ps(dm));
    const __m256 mn = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(scm, 8))),
                                    _mm256_broadcastss_ps(_mm_movehdup_ps(dm)));
    pr.m[0] = _mm256_permutevar8x32_ps(mn, ldt(kDup0));
    pr.m[1] = _mm256_permutevar8x32_ps(mn, ldt(kDup1));
}
HK_INLINE __m256i pair_idx(int g) {  // [2g x4, 2g+1 x4]
    return _mm256_add_epi32(_mm256_set1_epi32(2 * g), _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
}
struct Q4_KT {
    static constexpr int kBlockBytes = 144;
    static constexpr bool kSuper = true, kSigned = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kSuperMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = KPrep;
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) { k_scales_prep(sp, pr); }
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256&) {
        const __m256i q = ld(sp + 16 + 32 * g), m = bc8(0x0F);
        const __m256i t = _mm256_and_si256(q, m), h = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
        w0 = _mm256_permute2x128_si256(t, h, 0x20);
        w1 = _mm256_permute2x128_si256(t, h, 0x31);
        s = _mm256_permutevar8x32_ps(pr.sc, pair_idx(g));
    }
};
struct Q5_KT {
    static constexpr int kBlockBytes = 176;
    static constexpr bool kSuper = true, kSigned = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kSuperMin;
    static constexpr const LayoutTables* kTab = &kTabA;
    using Prep = KPrep;
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) { k_scales_prep(sp, pr); }
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256&) {
        const __m256i q = ld(sp + 48 + 32 * g), m = bc8(0x0F);
        const __m256i qh = ld(sp + 16);
        const int b0 = 2 * g, b1 = 2 * g + 1;
        __m256i t = _mm256_and_si256(q, m), h = _mm256_and_si256(_mm256_srli_epi16(q, 4), m);
        t = _mm256_or_si256(t, move_bit(_mm256_and_si256(qh, bc8(1 << b0)), b0, 4));
        h = _mm256_or_si256(h, move_bit(_mm256_and_si256(qh, bc8(1 << b1)), b1, 4));
        w0 = _mm256_permute2x128_si256(t, h, 0x20);
        w1 = _mm256_permute2x128_si256(t, h, 0x31);
        s = _mm256_permutevar8x32_ps(pr.sc, pair_idx(g));
    }
};

// Q2_K / Q3_K / Q6_K: group g covers 32-element runs k = 2(g % 2), 2(g % 2) + 1 of half n = g / 2 of the
// super-block, built as x0 / x1 and interleaved with shuffle_ps (layout S). Lane p uses scale
// 4g + {0,0,2,2,1,1,3,3}[p].
struct SPrep {
    __m256 s[2];  // d * scale of the 16 sub-blocks
};
HK_INLINE void layout_s(__m256i x0, __m256i x1, __m256i& w0, __m256i& w1) {
    w0 = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(x0), _mm256_castsi256_ps(x1), 0x88));
    w1 = _mm256_castps_si256(_mm256_shuffle_ps(_mm256_castsi256_ps(x0), _mm256_castsi256_ps(x1), 0xDD));
}
HK_INLINE __m256 s_scale(const SPrep& pr, int g) {
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(4 * (g & 1)), _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3));
    return _mm256_permutevar8x32_ps(pr.s[g >> 1], idx);
}
HK_INLINE void sixteen_scales(__m128i sc, float d, __m256 s[2]) {
    const __m256 dv = _mm256_set1_ps(d);
    s[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), dv);
    s[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))), dv);
}
struct Q6_KT {
    static constexpr int kBlockBytes = 210;
    static constexpr bool kSuper = true, kSigned = false;
    static constexpr int kOff = 32;
    static constexpr MinKind kMin = kNoMin;
    static constexpr const LayoutTables* kTab = &kTabS;
    using Prep = SPrep;
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) { sixteen_scales(ld128(sp + 192), h2f(sp + 208), pr.s); }
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256&) {
        const int n = g >> 1;
        const __m256i qa = ld(sp + 64 * n), qb = ld(sp + 64 * n + 32), z = ld(sp + 128 + 32 * n);
        const __m256i m = bc8(0x0F), m30 = bc8(0x30);
        __m256i x0, x1;
        if ((g & 1) == 0) {
            x0 = _mm256_or_si256(_mm256_and_si256(qa, m), _mm256_and_si256(_mm256_slli_epi16(z, 4), m30));
            x1 = _mm256_or_si256(_mm256_and_si256(qb, m), _mm256_and_si256(_mm256_slli_epi16(z, 2), m30));
        } else {
            x0 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), m), _mm256_and_si256(z, m30));
            x1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), m),
                                 _mm256_and_si256(_mm256_srli_epi16(z, 2), m30));
        }
        layout_s(x0, x1, w0, w1);
        s = s_scale(pr, g);
    }
};
struct Q3_KT {
    static constexpr int kBlockBytes = 110;
    static constexpr bool kSuper = true, kSigned = false;
    static constexpr int kOff = 4;
    static constexpr MinKind kMin = kNoMin;
    static constexpr const LayoutTables* kTab = &kTabS;
    using Prep = SPrep;
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) {
        const uint32_t a0 = rd32(sp + 96), a1 = rd32(sp + 100), t = rd32(sp + 104);
        const uint32_t s0 = (a0 & 0x0f0f0f0fu) | ((t & 0x03030303u) << 4);
        const uint32_t s1 = (a1 & 0x0f0f0f0fu) | (((t >> 2) & 0x03030303u) << 4);
        const uint32_t s2 = ((a0 >> 4) & 0x0f0f0f0fu) | (((t >> 4) & 0x03030303u) << 4);
        const uint32_t s3 = ((a1 >> 4) & 0x0f0f0f0fu) | (((t >> 6) & 0x03030303u) << 4);
        const __m128i sc = _mm_sub_epi8(_mm_set_epi32(int(s3), int(s2), int(s1), int(s0)), _mm_set1_epi8(32));
        sixteen_scales(sc, h2f(sp + 108), pr.s);
    }
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256&) {
        const int n = g >> 1, j0 = 2 * (g & 1), j1 = j0 + 1;
        const __m256i q = ld(sp + 32 + 32 * n), hm = ld(sp);
        const __m256i m3 = bc8(0x03);
        __m256i x0 = _mm256_and_si256(srl16(q, 2 * j0), m3);
        __m256i x1 = _mm256_and_si256(srl16(q, 2 * j1), m3);
        const int b0 = 4 * n + j0, b1 = 4 * n + j1;
        x0 = _mm256_or_si256(x0, move_bit(_mm256_and_si256(hm, bc8(1 << b0)), b0, 2));
        x1 = _mm256_or_si256(x1, move_bit(_mm256_and_si256(hm, bc8(1 << b1)), b1, 2));
        layout_s(x0, x1, w0, w1);
        s = s_scale(pr, g);
    }
};
struct Q2Prep {
    __m256 s[2];
    __m256 m[2];  // dmin * min of the 16 halves
};
struct Q2_KT {
    static constexpr int kBlockBytes = 84;
    static constexpr bool kSuper = true, kSigned = false;
    static constexpr int kOff = 0;
    static constexpr MinKind kMin = kSuperMin;
    static constexpr const LayoutTables* kTab = &kTabS;
    using Prep = Q2Prep;
    static HK_INLINE void prep(const uint8_t* sp, Prep& pr) {
        const __m128i x = ld128(sp), m = _mm_set1_epi8(0x0F);
        SPrep sp2;
        sixteen_scales(_mm_and_si128(x, m), h2f(sp + 80), sp2.s);
        pr.s[0] = sp2.s[0];
        pr.s[1] = sp2.s[1];
        sixteen_scales(_mm_and_si128(_mm_srli_epi16(x, 4), m), h2f(sp + 82), pr.m);
    }
    static HK_INLINE void unpack(const uint8_t* sp, int g, const Prep& pr, __m256i& w0, __m256i& w1, __m256& s,
                                 __m256&) {
        const int n = g >> 1, j0 = 2 * (g & 1), j1 = j0 + 1;
        const __m256i q = ld(sp + 16 + 32 * n), m3 = bc8(0x03);
        layout_s(_mm256_and_si256(srl16(q, 2 * j0), m3), _mm256_and_si256(srl16(q, 2 * j1), m3), w0, w1);
        const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(4 * (g & 1)), _mm256_setr_epi32(0, 0, 2, 2, 1, 1, 3, 3));
        s = _mm256_permutevar8x32_ps(pr.s[g >> 1], idx);
    }
};

// ---------------------------------------------------------------------------------------------------------
// Quantized gemm
// ---------------------------------------------------------------------------------------------------------
template <class T, int R, int C>
HK_INLINE void q_body(int64_t g, int64_t ng, const uint8_t* const* gp, const PGroup* const* ac,
                      typename T::Prep* prep, __m256 (&acc)[R][C]) {
    const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
        __m256i w0, w1;
        __m256 s, mn;
        T::unpack(gp[r], int(g & 3), prep[r], w0, w1, s, mn);
        if constexpr (T::kSigned) {
            const __m256i aw0 = _mm256_sign_epi8(w0, w0), aw1 = _mm256_sign_epi8(w1, w1);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                const PGroup& a = ac[c][g];
                const __m256i p0 = _mm256_maddubs_epi16(aw0, _mm256_sign_epi8(_mm256_load_si256((const __m256i*)a.v0), w0));
                const __m256i p1 = _mm256_maddubs_epi16(aw1, _mm256_sign_epi8(_mm256_load_si256((const __m256i*)a.v1), w1));
                const __m256i i = _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
                acc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i), _mm256_load_ps(a.da)), s, acc[r][c]);
            }
        } else {
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) {
                const PGroup& a = ac[c][g];
                const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, _mm256_load_si256((const __m256i*)a.v0)),
                                                   _mm256_maddubs_epi16(w1, _mm256_load_si256((const __m256i*)a.v1)));
                __m256i i = _mm256_madd_epi16(p, ones);
                if constexpr (T::kOff != 0) i = _mm256_add_epi32(i, _mm256_load_si256((const __m256i*)a.ci));
                acc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i), _mm256_load_ps(a.da)), s, acc[r][c]);
            }
        }
        if constexpr (T::kMin == kGroupMin) {
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(mn, _mm256_load_ps(ac[c][g].ms), acc[r][c]);
        }
        if constexpr (T::kMin == kSuperMin) {
            if (g & 1) {
                const __m256 m = prep[r].m[(g >> 1) & 1];
#pragma GCC unroll 8
                for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fnmadd_ps(m, _mm256_load_ps(ac[c][g - 1].ms), acc[r][c]);
            }
        }
        // Scales of the next super-block, one group ahead of their use (hides the conversion latency).
        if constexpr (T::kSuper) {
            if ((g & 3) == 3 && g + 1 < ng) T::prep(gp[r] + T::kBlockBytes, prep[r]);
        }
    }
}

HK_INLINE float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

constexpr int kPrefetchTiles = 2;

template <class T, int R, int C>
void q_tile(const uint8_t* w, size_t ws, int64_t nblocks, const PGroup* act, int64_t act_groups, float* out,
            size_t os) {
    constexpr int BB = T::kBlockBytes;
    const int64_t ng = (nblocks + 1) / 2;
    const int64_t ng_full = T::kSuper ? ng : nblocks / 2;
    __m256 acc[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    typename T::Prep prep[R];
    const PGroup* ac[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) ac[c] = act + c * act_groups;
    const uint8_t* gp[R];
    if constexpr (T::kSuper) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) T::prep(w + r * ws, prep[r]);
    }
    // Software prefetch of the same group kPrefetchTiles row tiles ahead (decode streams weights from DRAM).
    const size_t pf = kPrefetchTiles * size_t(R) * ws;
    constexpr int kGroupBytes = T::kSuper ? BB / 4 : 2 * BB;
    for (int64_t g = 0; g < ng_full; ++g) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            gp[r] = T::kSuper ? w + r * ws + (g >> 2) * BB : w + r * ws + g * 2 * BB;
            const char* p = reinterpret_cast<const char*>(gp[r]) + pf + (T::kSuper ? (g & 3) * kGroupBytes : 0);
            _mm_prefetch(p, _MM_HINT_T0);
            if constexpr (kGroupBytes > 64) _mm_prefetch(p + 64, _MM_HINT_T0);
        }
        q_body<T, R, C>(g, ng, gp, ac, prep, acc);
    }
    if (ng_full < ng) {  // odd block count: zero-padded copy of the last block
        alignas(32) uint8_t tail[R][2 * BB + 32];
        for (int r = 0; r < R; ++r) {
            std::memset(tail[r], 0, sizeof(tail[r]));
            std::memcpy(tail[r], w + r * ws + ng_full * 2 * BB, BB);
            gp[r] = tail[r];
        }
        q_body<T, R, C>(ng_full, ng, gp, ac, prep, acc);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) out[r * os + c] = hsum(acc[r][c]);
}

template <class T, int R>
void q_row_tiles(const uint8_t* w, size_t ws, int64_t nblocks, const PGroup* act, int64_t act_groups, int nc,
                 float* out, size_t os) {
    int c = 0;
    for (; c + 2 <= nc; c += 2) q_tile<T, R, 2>(w, ws, nblocks, act + c * act_groups, act_groups, out + c, os);
    if (c < nc) q_tile<T, R, 1>(w, ws, nblocks, act + c * act_groups, act_groups, out + c, os);
}

constexpr size_t kActBudget = 384 * 1024;

template <class T>
void gemm_q(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride, float* out,
            size_t out_stride, int nr, int nc) {
    if (nr <= 0 || nc <= 0) return;
    if (n < 32) {  // empty reduction
        for (int r = 0; r < nr; ++r)
            for (int c = 0; c < nc; ++c) out[size_t(r) * out_stride + size_t(c)] = 0.0f;
        return;
    }
    const int64_t nblocks = n / 32;
    const int64_t ng = (nblocks + 1) / 2;
    const size_t per_col = size_t(ng) * sizeof(PGroup);
    int cb = int(kActBudget / per_col);
    if (cb < 1) cb = 1;
    if (cb > 2) cb -= cb % 2;
    if (cb > nc) cb = nc;
    PGroup* buf = static_cast<PGroup*>(scratch(size_t(cb) * per_col));
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    for (int c0 = 0; c0 < nc; c0 += cb) {
        const int ncc = nc - c0 < cb ? nc - c0 : cb;
        for (int c = 0; c < ncc; ++c)
            pack_act(reinterpret_cast<const BlockQ8A*>(ab + size_t(c0 + c) * act_stride), nblocks, *T::kTab,
                     T::kOff, buf + c * ng);
        float* o = out + c0;
        int r = 0;
        for (; r + 4 <= nr; r += 4)
            q_row_tiles<T, 4>(wb + r * w_stride, w_stride, nblocks, buf, ng, ncc, o + r * out_stride, out_stride);
        for (; r < nr; ++r)
            q_row_tiles<T, 1>(wb + r * w_stride, w_stride, nblocks, buf, ng, ncc, o + r * out_stride, out_stride);
    }
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
    static HK_INLINE __m256 load(const E* p) { return _mm256_loadu_ps(p); }
};
struct F16W {
    using E = uint16_t;
    static HK_INLINE __m256 load(const E* p) { return _mm256_cvtph_ps(ld128(p)); }
};
struct BF16W {
    using E = uint16_t;
    static HK_INLINE __m256 load(const E* p) {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(ld128(p)), 16));
    }
};
template <class W>
HK_INLINE float elem_to_f32_w(const typename W::E* p) {
    if constexpr (sizeof(typename W::E) == 4) {
        return *reinterpret_cast<const float*>(p);
    } else {
        // One element through the vector converter (F16C / shift), so that scalar tails match the vector body.
        alignas(16) typename W::E tmp[8] = {};
        tmp[0] = *p;
        return _mm256_cvtss_f32(W::load(tmp));
    }
}

template <class W, int R, int C>
void f_tile(int64_t n, const uint8_t* w, size_t ws, const uint8_t* act, size_t as, float* out, size_t os) {
    using E = typename W::E;
    __m256 acc[R][C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
    const E* wr[R];
    const float* ar[C];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wr[r] = reinterpret_cast<const E*>(w + r * ws);
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) ar[c] = reinterpret_cast<const float*>(act + c * as);
    int64_t k = 0;
    // Decode streams the weights from DRAM: prefetch the same columns kPrefetchTiles row tiles ahead.
    const size_t pf = kPrefetchTiles * size_t(R) * ws;
    for (; k + 8 <= n; k += 8) {
        __m256 a[C];
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) a[c] = _mm256_loadu_ps(ar[c] + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            if constexpr (C == 1) _mm_prefetch(reinterpret_cast<const char*>(wr[r] + k) + pf, _MM_HINT_T0);
            const __m256 x = W::load(wr[r] + k);
#pragma GCC unroll 8
            for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(x, a[c], acc[r][c]);
        }
    }
    float tail[R][C] = {};
    for (; k < n; ++k)
        for (int r = 0; r < R; ++r) {
            const float x = elem_to_f32_w<W>(wr[r] + k);
            for (int c = 0; c < C; ++c) tail[r][c] = __builtin_fmaf(x, ar[c][k], tail[r][c]);
        }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int c = 0; c < C; ++c) out[r * os + c] = hsum(acc[r][c]) + tail[r][c];
}

template <class W, int R>
void f_row_tiles(int64_t n, const uint8_t* w, size_t ws, const uint8_t* act, size_t as, int nc, float* out,
                 size_t os) {
    int c = 0;
    for (; c + 3 <= nc; c += 3) f_tile<W, R, 3>(n, w, ws, act + c * as, as, out + c, os);
    if (nc - c == 2)
        f_tile<W, R, 2>(n, w, ws, act + c * as, as, out + c, os);
    else if (nc - c == 1)
        f_tile<W, R, 1>(n, w, ws, act + c * as, as, out + c, os);
}

template <class W>
void gemm_f(int64_t n, const void* w, size_t w_stride, const void* act, size_t act_stride, float* out,
            size_t out_stride, int nr, int nc) {
    if (nr <= 0 || nc <= 0) return;
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(act);
    int cb = int(kActBudget / (size_t(n) * sizeof(float) + 1));
    if (cb < 3) cb = 3;
    cb -= cb % 3;
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
HK_INLINE __m256i round_away(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(int(0x80000000u))));
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));  // |v - trunc(v)|, exact
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 step = _mm256_and_ps(up, _mm256_or_ps(_mm256_set1_ps(1.0f), sign));
    const __m256i i = _mm256_cvttps_epi32(_mm256_add_ps(t, step));
    // Keep only the low byte, sign-extended (what a truncating int32 -> int8 conversion gives).
    return _mm256_srai_epi32(_mm256_slli_epi32(i, 24), 24);
}
HK_INLINE int32_t hsum_i32(__m256i v) {
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
    x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 0x55));
    return _mm_cvtsi128_si32(x);
}

void quantize_act(const float* x, BlockQ8A* y, int64_t n) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t i = 0; i < n / 32; ++i) {
        const float* xb = x + 32 * i;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(_mm256_and_ps(v[k], abs_mask), m);  // NaN lanes keep m, like fmax
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        const float amax = _mm_cvtss_f32(h);
        const float d = amax / 127.0f;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; ++k) q[k] = round_away(_mm256_mul_ps(v[k], vid));
        const __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        const __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23),
                                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        y[i].d = d;
        y[i].sum[0] = int16_t(hsum_i32(_mm256_add_epi32(q[0], q[1])));
        y[i].sum[1] = int16_t(hsum_i32(_mm256_add_epi32(q[2], q[3])));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), b);
    }
}

// F16C's conversion rounds to nearest even, as f32_to_f16 does.
void f32_to_f16_row(const float* x, f16_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; ++i) dst[i] = f32_to_f16(x[i]);
}

// ---------------------------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------------------------
constexpr KernelTable make_table() {
    KernelTable t{};
    t.isa = Isa::Avx2;
    t.name = "avx2";
    t.quantize_act = quantize_act;
    t.swiglu = swiglu_ref;  // elementwise, a small share of the work: the reference serves AVX2
    t.f32_to_f16_row = f32_to_f16_row;
    t.sgemm = {kSgemmAvx2Mr, kSgemmAvx2Nr, sgemm_tile_avx2};
    set_reference_train_rows(t);  // a small share of a training step: the references serve AVX2
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
    return t;
}

constinit const KernelTable kTable = make_table();

}  // namespace

const KernelTable& avx2_table() { return kTable; }

}  // namespace hearth::kernels
