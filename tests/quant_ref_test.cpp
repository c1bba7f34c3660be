// Tests of the scalar reference kernels (kernels/ref.cpp) and the quantizers (tensor/quantize.cpp):
// bit layouts against per-element formulas written independently from the GGML format descriptions,
// codec round trips, quantization error bounds, integer dot products against float ones, the kernel table,
// and the llama.cpp-quantized conformance files against their F16 source.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tensor/kernels.h"
#include "tensor/quantize.h"
#include "test_util.h"

namespace hearth {
namespace {

using kernels::ActKind;

const DType kQuantTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL,
                             DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};
const DType kAllTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0,   DType::Q4_0,
                           DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::Q2_K,
                           DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::string type_name(const testing::TestParamInfo<DType>& info) { return dtype_name(info.param); }

std::vector<float> normal_data(int64_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    return v;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = uint8_t(rng());
    return v;
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> out(row_bytes(t, int64_t(x.size())));
    kernels::quantize_row(t, x.data(), out.data(), int64_t(x.size()));
    return out;
}

std::vector<float> dequantize(DType t, const void* data, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    kernels::dequantize_row(t, data, out.data(), n);
    return out;
}

// sqrt(sum (a - b)^2 / sum b^2)
double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

float f16(uint16_t h) { return f16_to_f32(h); }
uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }

// ---- independent per-element decoders, straight from the format descriptions ----------------------------
// Each returns element e (0 <= e < block size) of the block at p, computing the float exactly as ggml does.

float elem_q8_0(const uint8_t* p, int e) { return float(int8_t(p[2 + e])) * f16(rd16(p)); }
int nib(const uint8_t* qs, int e) { return e < 16 ? (qs[e] & 15) : (qs[e - 16] >> 4); }
float elem_q4_0(const uint8_t* p, int e) { return float(nib(p + 2, e) - 8) * f16(rd16(p)); }
float elem_q4_1(const uint8_t* p, int e) { return float(nib(p + 4, e)) * f16(rd16(p)) + f16(rd16(p + 2)); }
int bit(const uint8_t* bytes, int i) { return (bytes[i / 8] >> (i % 8)) & 1; }
float elem_q5_0(const uint8_t* p, int e) {
    return float((nib(p + 6, e) | (bit(p + 2, e) << 4)) - 16) * f16(rd16(p));
}
float elem_q5_1(const uint8_t* p, int e) {
    return float(nib(p + 8, e) | (bit(p + 4, e) << 4)) * f16(rd16(p)) + f16(rd16(p + 2));
}
float elem_iq4_nl(const uint8_t* p, int e) {
    static const int kv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    return f16(rd16(p)) * float(kv[nib(p + 2, e)]);
}
// Q2_K: scales[16] | qs[64] | d | dmin
float elem_q2_k(const uint8_t* p, int e) {
    const uint8_t* qs = p + 16;
    const int q = (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    const uint8_t sm = p[e / 16];
    const float d = f16(rd16(p + 80)), dmin = f16(rd16(p + 82));
    return d * float(sm & 15) * float(q) - dmin * float(sm >> 4);
}
// Q3_K: hmask[32] | qs[64] | scales[12] | d. Scales decoded the way ggml describes it: 4 uint32 words
// assembled from the 12 bytes with masks, read back as 16 signed bytes minus 32.
float elem_q3_k(const uint8_t* p, int e) {
    const uint8_t* hmask = p;
    const uint8_t* qs = p + 32;
    uint32_t aux[4];
    std::memcpy(aux, p + 96, 12);
    const uint32_t tmp = aux[2];
    const uint32_t k1 = 0x03030303, k2 = 0x0f0f0f0f;
    aux[2] = ((aux[0] >> 4) & k2) | (((tmp >> 4) & k1) << 4);
    aux[3] = ((aux[1] >> 4) & k2) | (((tmp >> 6) & k1) << 4);
    aux[0] = (aux[0] & k2) | (((tmp >> 0) & k1) << 4);
    aux[1] = (aux[1] & k2) | (((tmp >> 2) & k1) << 4);
    int8_t scales[16];
    std::memcpy(scales, aux, 16);
    const int h = e / 128, j = (e % 128) / 32, l = e % 32;
    const int lo = (qs[32 * h + l] >> (2 * j)) & 3;
    const int q = lo - (((hmask[l] >> (4 * h + j)) & 1) ? 0 : 4);
    const float dl = f16(rd16(p + 108)) * float(scales[e / 16] - 32);
    return dl * float(q);
}
void scale_min_k4(int j, const uint8_t* q, int& d, int& m) {
    if (j < 4) {
        d = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
    }
}
// Q4_K: d | dmin | scales[12] | qs[128]
float elem_q4_k(const uint8_t* p, int e) {
    int sc, m;
    scale_min_k4(e / 32, p + 4, sc, m);
    const uint8_t b = p[16 + 32 * (e / 64) + e % 32];
    const int q = (e % 64) < 32 ? (b & 15) : (b >> 4);
    const float d1 = f16(rd16(p)) * float(sc), m1 = f16(rd16(p + 2)) * float(m);
    return d1 * float(q) - m1;
}
// Q5_K: d | dmin | scales[12] | qh[32] | qs[128]
float elem_q5_k(const uint8_t* p, int e) {
    int sc, m;
    scale_min_k4(e / 32, p + 4, sc, m);
    const uint8_t b = p[48 + 32 * (e / 64) + e % 32];
    int q = (e % 64) < 32 ? (b & 15) : (b >> 4);
    q += ((p[16 + e % 32] >> (e / 32)) & 1) ? 16 : 0;
    const float d1 = f16(rd16(p)) * float(sc), m1 = f16(rd16(p + 2)) * float(m);
    return d1 * float(q) - m1;
}
// Q6_K: ql[128] | qh[64] | scales[16] | d
float elem_q6_k(const uint8_t* p, int e) {
    const uint8_t* ql = p;
    const uint8_t* qh = p + 128;
    const int8_t sc = int8_t(p[192 + e / 16]);
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lb = ql[64 * h + l + (k % 2 ? 32 : 0)];
    const int lo = k < 2 ? (lb & 15) : (lb >> 4);
    const int q = (lo | (((qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
    return f16(rd16(p + 208)) * float(sc) * float(q);
}

using ElemFn = float (*)(const uint8_t*, int);
ElemFn elem_fn(DType t) {
    switch (t) {
        case DType::Q8_0: return elem_q8_0;
        case DType::Q4_0: return elem_q4_0;
        case DType::Q4_1: return elem_q4_1;
        case DType::Q5_0: return elem_q5_0;
        case DType::Q5_1: return elem_q5_1;
        case DType::IQ4_NL: return elem_iq4_nl;
        case DType::Q2_K: return elem_q2_k;
        case DType::Q3_K: return elem_q3_k;
        case DType::Q4_K: return elem_q4_k;
        case DType::Q5_K: return elem_q5_k;
        case DType::Q6_K: return elem_q6_k;
        default: return nullptr;
    }
}

// nblocks blocks of random bytes whose f16 fields hold random finite values in [-2, 2].
std::vector<uint8_t> random_blocks(DType t, int64_t nblocks, uint32_t seed) {
    const DTypeInfo& info = dtype_info(t);
    std::vector<uint8_t> v = random_bytes(size_t(nblocks) * size_t(info.block_bytes), seed);
    std::mt19937 rng(seed ^ 0x9e3779b9u);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    for (int64_t b = 0; b < nblocks; ++b)
        for (int off : f16_scale_offsets(t)) {
            const uint16_t h = f32_to_f16(dist(rng));
            v[size_t(b) * info.block_bytes + off] = uint8_t(h & 0xFF);
            v[size_t(b) * info.block_bytes + off + 1] = uint8_t(h >> 8);
        }
    return v;
}

class QuantRefType : public testing::TestWithParam<DType> {};

// Every element of dequantize_row equals the independent per-element formula, bit for bit.
TEST_P(QuantRefType, DequantMatchesFormatDescription) {
    const DType t = GetParam();
    const DTypeInfo& info = dtype_info(t);
    const int64_t nblocks = 37;
    const std::vector<uint8_t> blocks = random_blocks(t, nblocks, 1234);
    const std::vector<float> y = dequantize(t, blocks.data(), nblocks * info.block_elems);
    const ElemFn f = elem_fn(t);
    ASSERT_NE(f, nullptr);
    for (int64_t b = 0; b < nblocks; ++b)
        for (int e = 0; e < info.block_elems; ++e) {
            const float want = f(blocks.data() + b * info.block_bytes, e);
            const float got = y[size_t(b * info.block_elems + e)];
            ASSERT_EQ(std::memcmp(&want, &got, 4), 0)
                << "block " << b << " element " << e << ": " << got << " vs " << want;
        }
}

// Random data quantizes with a relative RMS error below the type's bound, deterministically, and
// re-quantizing the dequantized values gives (nearly) the same values back.
TEST_P(QuantRefType, QuantizeErrorOnNormalData) {
    const DType t = GetParam();
    struct Bound {
        DType t;
        double max_err;
    };
    // Measured on N(0,1): Q8_0 0.0054, Q4_0 0.0858, Q4_1 0.0778, Q5_0 0.0426, Q5_1 0.0381, IQ4_NL 0.0734,
    // Q2_K 0.264, Q3_K 0.144, Q4_K 0.0700, Q5_K 0.0345, Q6_K 0.0165. The bounds leave ~10% headroom.
    static const Bound kBounds[] = {{DType::Q8_0, 0.006}, {DType::Q4_0, 0.095}, {DType::Q4_1, 0.086},
                                    {DType::Q5_0, 0.047}, {DType::Q5_1, 0.042}, {DType::IQ4_NL, 0.081},
                                    {DType::Q2_K, 0.29},  {DType::Q3_K, 0.16},  {DType::Q4_K, 0.077},
                                    {DType::Q5_K, 0.038}, {DType::Q6_K, 0.018}};
    double bound = 0;
    for (const auto& b : kBounds)
        if (b.t == t) bound = b.max_err;
    ASSERT_GT(bound, 0);

    const int64_t n = 256 * 64;
    for (const float sigma : {1.0f, 0.02f}) {
        const std::vector<float> x = normal_data(n, 42, sigma);
        const std::vector<uint8_t> q = quantize(t, x);
        EXPECT_EQ(q, quantize(t, x)) << "quantization is not deterministic";
        const std::vector<float> y = dequantize(t, q.data(), n);
        const double err = rel_rms(y, x);
        EXPECT_LT(err, bound) << dtype_name(t) << " sigma " << sigma;
        if (sigma == 1.0f) std::printf("[ %-6s ] N(0,1) relative RMS error %.4f\n", dtype_name(t), err);

        // Values already on the grid: quantizing again changes them far less than the original error.
        const std::vector<float> y2 = dequantize(t, quantize(t, y).data(), n);
        EXPECT_LT(rel_rms(y2, y), 0.25 * bound) << dtype_name(t) << " re-quantization";
    }
}

// Degenerate inputs: zeros, constants, a single spike, tiny and huge magnitudes stay finite and sane.
TEST_P(QuantRefType, QuantizeDegenerateBlocks) {
    const DType t = GetParam();
    const int64_t n = 256;
    const std::vector<float> zeros(n, 0.0f);
    for (float v : dequantize(t, quantize(t, zeros).data(), n)) EXPECT_EQ(v, 0.0f) << dtype_name(t);

    for (const float c : {0.37f, -1.5f, 0.01f, 3000.0f}) {
        const std::vector<float> x(n, c);
        const std::vector<float> y = dequantize(t, quantize(t, x).data(), n);
        for (float v : y) {
            ASSERT_TRUE(std::isfinite(v));
            // Constant blocks land on or next to the constant (Q2_K/Q3_K's coarse grids the loosest).
            EXPECT_NEAR(v, c, std::fabs(c) * 0.35f) << dtype_name(t) << " constant " << c;
        }
    }
    std::vector<float> spike(n, 0.0f);
    spike[77] = -5.0f;
    const std::vector<float> y = dequantize(t, quantize(t, spike).data(), n);
    EXPECT_NEAR(y[77], -5.0f, 5.0f * 0.1f) << dtype_name(t);
    for (int64_t i = 0; i < n; ++i)
        if (i != 77) {
            EXPECT_NEAR(y[size_t(i)], 0.0f, 0.5f) << dtype_name(t) << " element " << i;
        }
}

// Non-finite inputs produce some block without crashing, and leave the other blocks of the row untouched
// (every block is quantized on its own).
TEST_P(QuantRefType, NonFiniteInputStaysInItsBlock) {
    const DType t = GetParam();
    const int be = dtype_info(t).block_elems;
    const int64_t n = 4 * int64_t(be);
    const std::vector<float> clean = normal_data(n, 5);
    std::vector<float> dirty = clean;
    dirty[3] = std::numeric_limits<float>::quiet_NaN();
    dirty[size_t(be) + 1] = std::numeric_limits<float>::infinity();
    dirty[size_t(2 * be) + 2] = -std::numeric_limits<float>::infinity();
    const std::vector<uint8_t> qc = quantize(t, clean), qd = quantize(t, dirty);
    const size_t bb = size_t(dtype_info(t).block_bytes);
    EXPECT_EQ(std::vector<uint8_t>(qc.begin() + 3 * bb, qc.end()),
              std::vector<uint8_t>(qd.begin() + 3 * bb, qd.end()));
    (void)dequantize(t, qd.data(), n);  // decodable (checked for memory errors by the sanitizer build)
}

// vec_dot_ref (integer products inside blocks) equals the float dot of the dequantized weight row with the
// dequantized activation row, up to float rounding.
TEST_P(QuantRefType, VecDotMatchesDequantizedDot) {
    const DType t = GetParam();
    ASSERT_EQ(kernels::act_kind(t), ActKind::Q8A);
    const int be = dtype_info(t).block_elems;
    for (const int64_t n : {int64_t(be), int64_t(256), int64_t(768), int64_t(4096)}) {
        for (uint32_t seed = 0; seed < 3; ++seed) {
            const std::vector<float> wf = normal_data(n, 100 + seed, 0.05f);
            std::vector<float> af = normal_data(n, 200 + seed, 1.0f);
            if (seed == 2)  // a mean offset exercises the min / offset terms through sum[]
                for (auto& v : af) v += 0.7f;
            const std::vector<uint8_t> w = quantize(t, wf);
            std::vector<uint8_t> act(kernels::act_row_bytes(t, n));
            ASSERT_EQ(act.size(), size_t(n / 32) * sizeof(BlockQ8A));
            kernels::quantize_act_ref(af.data(), reinterpret_cast<BlockQ8A*>(act.data()), n);

            const std::vector<float> wd = dequantize(t, w.data(), n);
            const auto* ab = reinterpret_cast<const BlockQ8A*>(act.data());
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; ++i) {
                const double a = double(ab[i / 32].d) * ab[i / 32].qs[i % 32];
                ref += double(wd[size_t(i)]) * a;
                mag += std::fabs(double(wd[size_t(i)]) * a);
            }
            const float got = kernels::vec_dot_ref(t, w.data(), act.data(), n);
            EXPECT_LE(std::fabs(got - ref), 1e-4 * std::fabs(ref) + 1e-6 * mag)
                << dtype_name(t) << " n " << n << " seed " << seed << ": " << got << " vs " << ref;
            EXPECT_EQ(got, kernels::ref_table().dot[uint32_t(t)](w.data(), act.data(), n));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(QuantRef, QuantRefType, testing::ValuesIn(kQuantTypes), type_name);

// unpack_* then pack_* reproduces any block's bytes (every bit of the payload is a code or scale bit).
TEST(QuantRef, CodecsRoundTripEveryBit) {
    for (uint32_t seed = 0; seed < 20; ++seed) {
        {
            std::vector<uint8_t> b = random_bytes(16, seed), out(16);
            uint8_t q[32];
            quant::unpack_nibbles32(b.data(), q);
            quant::pack_nibbles32(q, out.data());
            EXPECT_EQ(b, out);
        }
        {
            std::vector<uint8_t> b = random_bytes(20, seed), out(20);
            uint8_t q[32];
            quant::unpack_q5(b.data(), b.data() + 4, q);
            for (uint8_t v : q) ASSERT_LT(v, 32);
            quant::pack_q5(q, out.data(), out.data() + 4);
            EXPECT_EQ(b, out);
        }
        {
            std::vector<uint8_t> b = random_bytes(sizeof(BlockQ2_K), seed);
            BlockQ2_K blk, out;
            std::memcpy(&blk, b.data(), sizeof blk);
            std::memcpy(&out, b.data(), sizeof out);  // d, dmin are not part of the codec
            uint8_t q[256], sc[16], mn[16];
            quant::unpack_q2_k(blk, q, sc, mn);
            quant::pack_q2_k(q, sc, mn, out);
            EXPECT_EQ(std::memcmp(&blk, &out, sizeof blk), 0);
        }
        {
            std::vector<uint8_t> b = random_bytes(sizeof(BlockQ3_K), seed);
            BlockQ3_K blk, out;
            std::memcpy(&blk, b.data(), sizeof blk);
            std::memcpy(&out, b.data(), sizeof out);
            int8_t q[256], sc[16];
            quant::unpack_q3_k(blk, q, sc);
            for (int i = 0; i < 256; ++i) ASSERT_TRUE(q[i] >= -4 && q[i] <= 3);
            for (int i = 0; i < 16; ++i) ASSERT_TRUE(sc[i] >= -32 && sc[i] <= 31);
            std::memset(out.qs, 0xAA, sizeof out.qs);
            std::memset(out.hmask, 0x55, sizeof out.hmask);
            std::memset(out.scales, 0xFF, sizeof out.scales);
            quant::pack_q3_k(q, sc, out);
            EXPECT_EQ(std::memcmp(&blk, &out, sizeof blk), 0);
        }
        {
            std::vector<uint8_t> b = random_bytes(sizeof(BlockQ4_K), seed);
            BlockQ4_K blk, out;
            std::memcpy(&blk, b.data(), sizeof blk);
            std::memcpy(&out, b.data(), sizeof out);
            uint8_t q[256], sc[8], mn[8];
            quant::unpack_q4_k(blk, q, sc, mn);
            for (int i = 0; i < 8; ++i) ASSERT_TRUE(sc[i] < 64 && mn[i] < 64);
            std::memset(out.qs, 0, sizeof out.qs);
            std::memset(out.scales, 0, sizeof out.scales);
            quant::pack_q4_k(q, sc, mn, out);
            EXPECT_EQ(std::memcmp(&blk, &out, sizeof blk), 0);
        }
        {
            std::vector<uint8_t> b = random_bytes(sizeof(BlockQ5_K), seed);
            BlockQ5_K blk, out;
            std::memcpy(&blk, b.data(), sizeof blk);
            std::memcpy(&out, b.data(), sizeof out);
            uint8_t q[256], sc[8], mn[8];
            quant::unpack_q5_k(blk, q, sc, mn);
            for (int i = 0; i < 256; ++i) ASSERT_LT(q[i], 32);
            std::memset(out.qs, 0, sizeof out.qs);
            std::memset(out.qh, 0xFF, sizeof out.qh);
            quant::pack_q5_k(q, sc, mn, out);
            EXPECT_EQ(std::memcmp(&blk, &out, sizeof blk), 0);
        }
        {
            std::vector<uint8_t> b = random_bytes(sizeof(BlockQ6_K), seed);
            BlockQ6_K blk, out;
            std::memcpy(&blk, b.data(), sizeof blk);
            std::memcpy(&out, b.data(), sizeof out);
            int8_t q[256];
            quant::unpack_q6_k(blk, q);
            for (int i = 0; i < 256; ++i) ASSERT_TRUE(q[i] >= -32 && q[i] <= 31);
            std::memset(out.ql, 0x5A, sizeof out.ql);
            std::memset(out.qh, 0xA5, sizeof out.qh);
            quant::pack_q6_k(q, out);
            EXPECT_EQ(std::memcmp(&blk, &out, sizeof blk), 0);
        }
    }
}

// Hand-checked blocks: the simple formats pick ggml's scales and codes.
TEST(QuantRef, SimpleFormatsUseGgmlScaleRules) {
    std::vector<float> x(32);
    for (int i = 0; i < 32; ++i) x[size_t(i)] = 0.1f * float(i - 10);  // -1.0 .. 2.1, max magnitude +2.1
    {
        const auto q = quantize(DType::Q8_0, x);
        BlockQ8_0 b;
        std::memcpy(&b, q.data(), sizeof b);
        EXPECT_EQ(b.d, f32_to_f16(2.1f / 127.0f));
        EXPECT_EQ(b.qs[31], 127);
        EXPECT_EQ(b.qs[10], 0);
        EXPECT_EQ(b.qs[0], -60);  // round(-1.0 * 127 / 2.1) = round(-60.48)
    }
    {
        const auto q = quantize(DType::Q4_0, x);
        BlockQ4_0 b;
        std::memcpy(&b, q.data(), sizeof b);
        EXPECT_EQ(b.d, f32_to_f16(2.1f / -8.0f));  // the sign of the largest-magnitude element
        EXPECT_EQ(b.qs[15] >> 4, 0);               // element 31 (= +2.1) -> code 0 -> -8 * d = 2.1
        EXPECT_EQ(b.qs[10] & 15, 8);               // element 10 (= 0)
        // element 0 = -1.0: -1.0 / d + 8.5 = 3.81 + 8.5 -> 12
        EXPECT_EQ(b.qs[0] & 15, 12);
    }
    {
        const auto q = quantize(DType::Q4_1, x);
        BlockQ4_1 b;
        std::memcpy(&b, q.data(), sizeof b);
        EXPECT_EQ(b.d, f32_to_f16(3.1f / 15.0f));
        EXPECT_EQ(b.m, f32_to_f16(-1.0f));
        EXPECT_EQ(b.qs[0] & 15, 0);
        EXPECT_EQ(b.qs[15] >> 4, 15);
    }
    {
        const auto q = quantize(DType::Q5_0, x);
        BlockQ5_0 b;
        std::memcpy(&b, q.data(), sizeof b);
        EXPECT_EQ(b.d, f32_to_f16(2.1f / -16.0f));
        EXPECT_EQ(b.qs[15] >> 4, 0);
        EXPECT_EQ((b.qh[3] >> 7) & 1, 0);
        EXPECT_EQ(b.qs[10] & 15, 0);  // element 10 (= 0) -> code 16: nibble 0, fifth bit set
        EXPECT_EQ((b.qh[1] >> 2) & 1, 1);
    }
}

TEST(QuantRef, FloatTypesConvert) {
    const std::vector<float> x = normal_data(1024, 7);
    EXPECT_EQ(dequantize(DType::F32, quantize(DType::F32, x).data(), 1024), x);
    const auto h = quantize(DType::F16, x);
    const auto b = quantize(DType::BF16, x);
    const auto yh = dequantize(DType::F16, h.data(), 1024);
    const auto yb = dequantize(DType::BF16, b.data(), 1024);
    for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_EQ(yh[i], f16_to_f32(f32_to_f16(x[i])));
        EXPECT_EQ(yb[i], bf16_to_f32(f32_to_bf16(x[i])));
    }
    EXPECT_LT(rel_rms(yh, x), 5e-4);
    EXPECT_LT(rel_rms(yb, x), 4e-3);
}

TEST(QuantRef, ActivationQuantization) {
    std::vector<float> x = normal_data(4096, 9, 3.0f);
    for (int i = 0; i < 32; ++i) x[size_t(64 + i)] = 0.0f;  // an all-zero block
    std::vector<BlockQ8A> a(4096 / 32);
    kernels::quantize_act_ref(x.data(), a.data(), 4096);
    for (size_t b = 0; b < a.size(); ++b) {
        float amax = 0;
        for (int e = 0; e < 32; ++e) amax = std::max(amax, std::fabs(x[32 * b + size_t(e)]));
        EXPECT_EQ(a[b].d, amax / 127.0f);
        int s0 = 0, s1 = 0, peak = 0;
        for (int e = 0; e < 32; ++e) {
            const float xv = x[32 * b + size_t(e)];
            EXPECT_EQ(a[b].qs[e], amax > 0 ? int(std::round(xv * (1.0f / a[b].d))) : 0);
            EXPECT_LE(std::fabs(a[b].d * a[b].qs[e] - xv), 0.5f * a[b].d * 1.0001f + 1e-12f);
            (e < 16 ? s0 : s1) += a[b].qs[e];
            peak = std::max(peak, std::abs(int(a[b].qs[e])));
        }
        EXPECT_EQ(a[b].sum[0], s0);
        EXPECT_EQ(a[b].sum[1], s1);
        EXPECT_EQ(peak, amax > 0 ? 127 : 0);
    }
}

// Float-weight dots take float activations and are exact up to the final rounding.
TEST(QuantRef, FloatWeightDots) {
    for (const DType t : {DType::F32, DType::F16, DType::BF16}) {
        EXPECT_EQ(kernels::act_kind(t), ActKind::F32);
        EXPECT_EQ(kernels::act_row_bytes(t, 96), 96 * sizeof(float));
        for (const int64_t n : {1, 7, 96, 4096}) {
            const std::vector<float> wf = normal_data(n, 11, 0.1f), af = normal_data(n, 12);
            const auto w = quantize(t, wf);
            const auto wd = dequantize(t, w.data(), n);
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; ++i) {
                ref += double(wd[size_t(i)]) * af[size_t(i)];
                mag += std::fabs(double(wd[size_t(i)]) * af[size_t(i)]);
            }
            const float got = kernels::vec_dot_ref(t, w.data(), af.data(), n);
            EXPECT_LE(std::fabs(got - ref), 1e-6 * std::fabs(ref) + 1e-7 * mag)
                << dtype_name(t) << " n " << n;
        }
    }
}

// The ref table holds a dot and a gemm for exactly the supported types; gemm equals the dot for each pair.
TEST(QuantRef, TableAndGemm) {
    const kernels::KernelTable& tab = kernels::ref_table();
    EXPECT_EQ(tab.isa, kernels::Isa::Ref);
    EXPECT_STREQ(tab.name, "ref");
    EXPECT_EQ(tab.quantize_act, &kernels::quantize_act_ref);
    for (uint32_t id = 0; id < uint32_t(kernels::kMaxTypeId); ++id) {
        const DTypeInfo* info = dtype_info(id);
        const bool supported = info && info->supported;
        EXPECT_EQ(tab.dot[id] != nullptr, supported) << id;
        EXPECT_EQ(tab.gemm[id] != nullptr, supported) << id;
    }
    for (const DType t : kAllTypes) {
        const int64_t n = 512;
        const int nr = 3, nc = 5;
        const size_t wrow = row_bytes(t, n), w_stride = wrow + 16;  // padded rows
        const size_t arow = kernels::act_row_bytes(t, n), act_stride = arow + 8;
        std::vector<uint8_t> w(w_stride * nr), act(act_stride * nc);
        for (int r = 0; r < nr; ++r) {
            const auto q = quantize(t, normal_data(n, 300 + uint32_t(r), 0.05f));
            std::memcpy(w.data() + r * w_stride, q.data(), wrow);
        }
        for (int c = 0; c < nc; ++c) {
            const auto af = normal_data(n, 400 + uint32_t(c));
            if (kernels::act_kind(t) == ActKind::F32)
                std::memcpy(act.data() + c * act_stride, af.data(), arow);
            else
                kernels::quantize_act_ref(af.data(), reinterpret_cast<BlockQ8A*>(act.data() + c * act_stride),
                                          n);
        }
        const size_t out_stride = nc + 3;
        std::vector<float> out(out_stride * nr, -12345.0f);
        tab.gemm[uint32_t(t)](n, w.data(), w_stride, act.data(), act_stride, out.data(), out_stride, nr, nc);
        for (int r = 0; r < nr; ++r)
            for (size_t c = 0; c < out_stride; ++c) {
                if (c < size_t(nc)) {
                    EXPECT_EQ(out[r * out_stride + c],
                              tab.dot[uint32_t(t)](w.data() + r * w_stride, act.data() + c * act_stride, n))
                        << dtype_name(t) << " r " << r << " c " << c;
                } else {
                    EXPECT_EQ(out[r * out_stride + c], -12345.0f) << "gemm wrote past nc";
                }
            }
    }
}

// ---- conformance files: llama.cpp's quantizations of one F16 model ------------------------------------

const char* const kConfFiles[] = {"BF16",   "Q8_0", "Q4_0",   "Q4_1",   "Q5_0",   "Q5_1",
                                  "IQ4_NL", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};

std::string conf_path(const std::string& type) {
    return test::shared("conformance/llama/llama." + type + ".gguf");
}

// Largest relative RMS error of a llama.cpp tensor of this type against the F16 source (normal(0, 0.02)
// weights): about 1.25x the measured values, which are (all llama.* files together) BF16 0.00168,
// Q8_0 0.00535, Q4_0 0.0858, Q4_1 0.0781, Q5_0 0.0427, Q5_1 0.0378, IQ4_NL 0.0761, Q2_K 0.296,
// Q3_K 0.151, Q4_K 0.0712, Q5_K 0.0361, Q6_K 0.0177.
double dequant_bound(DType t) {
    switch (t) {
        case DType::BF16: return 0.0021;
        case DType::Q8_0: return 0.0067;
        case DType::Q4_0: return 0.107;
        case DType::Q4_1: return 0.098;
        case DType::Q5_0: return 0.053;
        case DType::Q5_1: return 0.047;
        case DType::IQ4_NL: return 0.095;
        case DType::Q2_K: return 0.37;
        case DType::Q3_K: return 0.19;
        case DType::Q4_K: return 0.089;
        case DType::Q5_K: return 0.045;
        case DType::Q6_K: return 0.022;
        default: return 0;
    }
}

std::vector<float> dequantize_tensor(const gguf::TensorInfo& ti) {
    return dequantize(ti.type, ti.data, ti.n_elements);
}

// Sums of squared error and of squared reference, per tensor type.
struct ErrAcc {
    double num[kernels::kMaxTypeId] = {};
    double den[kernels::kMaxTypeId] = {};
    void add(DType t, const std::vector<float>& got, const std::vector<float>& want) {
        for (size_t i = 0; i < got.size(); ++i) {
            num[uint32_t(t)] += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
            den[uint32_t(t)] += double(want[i]) * want[i];
        }
    }
    double rel(DType t) const {
        return den[uint32_t(t)] > 0 ? std::sqrt(num[uint32_t(t)] / den[uint32_t(t)]) : -1;
    }
};

// Every non-F32 tensor of each llama.cpp-quantized file dequantizes to the F16 source within the type's
// expected quantization error (a wrong bit layout gives errors near or above 1).
TEST(QuantRef, ConformanceDequantMatchesF16Source) {
    if (!std::filesystem::exists(conf_path("F16")))
        GTEST_SKIP() << "no conformance files at " << conf_path("F16");
    const gguf::File src = gguf::File::open(conf_path("F16"));
    ErrAcc total;
    int checked = 0;
    for (const char* name : kConfFiles) {
        const gguf::File f = gguf::File::open(conf_path(name));
        ErrAcc acc;
        for (const gguf::TensorInfo& ti : f.tensors()) {
            if (ti.type == DType::F32) continue;
            const gguf::TensorInfo* s = src.find_tensor(ti.name);
            ASSERT_NE(s, nullptr) << ti.name;
            ASSERT_EQ(s->dims, ti.dims) << ti.name;
            ASSERT_EQ(s->type, DType::F16);
            const std::vector<float> want = dequantize_tensor(*s), got = dequantize_tensor(ti);
            ErrAcc one;
            one.add(ti.type, got, want);
            EXPECT_LT(one.rel(ti.type), dequant_bound(ti.type))
                << name << " " << ti.name << " " << dtype_name(ti.type);
            acc.add(ti.type, got, want);
            total.add(ti.type, got, want);
            ++checked;
        }
        for (const DType t : kAllTypes)
            if (acc.rel(t) >= 0)
                std::printf("[ llama.%-6s ] %-6s dequant vs F16 relative RMS %.5f\n", name, dtype_name(t),
                            acc.rel(t));
    }
    EXPECT_GT(checked, 150);
    for (const DType t : kAllTypes)
        if (total.rel(t) >= 0)
            std::printf("[ all files    ] %-6s dequant vs F16 relative RMS %.5f\n", dtype_name(t),
                        total.rel(t));
}

// Re-quantizing a llama.cpp tensor's dequantized values with quantize_row gives the same values back:
// bit-identical blocks for the simple formats (same scale rules as ggml's reference quantizer), and a tiny
// change for the searched ones.
TEST(QuantRef, ConformanceRequantizeReproducesFile) {
    if (!std::filesystem::exists(conf_path("F16"))) GTEST_SKIP() << "no conformance files";
    ErrAcc acc;
    size_t same[kernels::kMaxTypeId] = {}, bytes[kernels::kMaxTypeId] = {};
    for (const char* name : kConfFiles) {
        const gguf::File f = gguf::File::open(conf_path(name));
        for (const gguf::TensorInfo& ti : f.tensors()) {
            if (ti.type == DType::F32) continue;
            const std::vector<float> y = dequantize_tensor(ti);
            const std::vector<uint8_t> q = quantize(ti.type, y);
            ASSERT_EQ(q.size(), ti.nbytes);
            for (size_t i = 0; i < q.size(); ++i) same[uint32_t(ti.type)] += q[i] == ti.data[i];
            bytes[uint32_t(ti.type)] += q.size();
            acc.add(ti.type, dequantize(ti.type, q.data(), ti.n_elements), y);
        }
    }
    for (const DType t : kAllTypes) {
        if (acc.rel(t) < 0) continue;
        const double identical = double(same[uint32_t(t)]) / double(bytes[uint32_t(t)]);
        std::printf(
            "[ %-6s ] re-quantized llama.cpp tensors: relative RMS change %.6f, identical bytes %.4f\n",
            dtype_name(t), acc.rel(t), identical);
        EXPECT_LT(acc.rel(t), 0.02 * dequant_bound(t)) << dtype_name(t);
        const bool simple = t == DType::BF16 || t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1 ||
                            t == DType::Q5_0 || t == DType::Q5_1;
        if (simple) {
            EXPECT_EQ(same[uint32_t(t)], bytes[uint32_t(t)]) << dtype_name(t);
        }
    }
}

// Quantizing the F16 source with quantize_row is about as accurate as llama.cpp's quantization of it.
TEST(QuantRef, ConformanceQuantizerQualityVsLlamaCpp) {
    if (!std::filesystem::exists(conf_path("F16"))) GTEST_SKIP() << "no conformance files";
    const gguf::File src = gguf::File::open(conf_path("F16"));
    ErrAcc theirs, ours;
    for (const char* name : kConfFiles) {
        const gguf::File f = gguf::File::open(conf_path(name));
        for (const gguf::TensorInfo& ti : f.tensors()) {
            if (ti.type == DType::F32) continue;
            const gguf::TensorInfo* s = src.find_tensor(ti.name);
            ASSERT_NE(s, nullptr);
            const std::vector<float> x = dequantize_tensor(*s);
            theirs.add(ti.type, dequantize_tensor(ti), x);
            ours.add(ti.type, dequantize(ti.type, quantize(ti.type, x).data(), ti.n_elements), x);
        }
    }
    for (const DType t : kAllTypes) {
        if (theirs.rel(t) < 0) continue;
        std::printf("[ %-6s ] relative RMS vs F16: llama.cpp %.5f, hearth %.5f\n", dtype_name(t),
                    theirs.rel(t), ours.rel(t));
        EXPECT_LT(ours.rel(t), 1.05 * theirs.rel(t)) << dtype_name(t);
    }
}

}  // namespace
}  // namespace hearth
