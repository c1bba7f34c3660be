// Tests of the SIMD kernel tables (kernels/avx2.cpp, kernels/avx512.cpp) and the run-time dispatch
// (kernels/dispatch.cpp) against the scalar reference (kernels/ref.cpp):
//  * quantize_act must be bit-identical to quantize_act_ref;
//  * dot and gemm must match vec_dot_ref / the reference gemm up to float reassociation, i.e. within
//    1e-5 * sum_i |w_i * a_i| (dequantized weights times dequantized activations);
// for every type, on weights quantized from random floats and on random block bytes with sane scales, for
// lengths that are and are not multiples of the kernels' internal group sizes, odd tile shapes, padded strides
// and misaligned rows. An ISA the CPU lacks is skipped (GTEST_SKIP), never faked.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "tensor/kernels.h"

namespace hearth {
namespace {

using kernels::Isa;
using kernels::KernelTable;

const DType kTypes[] = {DType::F32,    DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                        DType::Q4_1,   DType::Q5_0, DType::Q5_1, DType::IQ4_NL, DType::Q2_K,
                        DType::Q3_K,   DType::Q4_K, DType::Q5_K, DType::Q6_K};
const Isa kIsas[] = {Isa::Avx2, Isa::Avx512};

const char* isa_str(Isa isa) { return isa == Isa::Avx2 ? "avx2" : isa == Isa::Avx512 ? "avx512" : "ref"; }

const KernelTable* table_or_skip(Isa isa) {
    if (!kernels::cpu_supports(isa)) return nullptr;
    const KernelTable* t = kernels::table_for(isa);
    return t;
}
#define REQUIRE_ISA(isa, tab)                                                       \
    const KernelTable* tab = table_or_skip(isa);                                    \
    if (!tab) GTEST_SKIP() << "this CPU cannot run the " << isa_str(isa) << " kernels"

uint32_t tid(DType t) { return static_cast<uint32_t>(t); }
bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
int block_elems(DType t) { return dtype_info(t).block_elems; }
// Byte offset that breaks vector alignment but keeps the element type's own alignment.
size_t misalign(DType t) { return is_float(t) ? size_t(dtype_info(t).block_bytes) : 1; }

std::vector<float> normal(int64_t n, uint32_t seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng);
    return v;
}

// A weight row of n elements. mode 0: random floats quantized by the reference quantizer; mode 1: random
// bytes for every code and sub-scale bit, with finite random f16 scales (exercises every bit pattern,
// including Q8_0's -128 and the extreme K-quant sub-scales).
std::vector<uint8_t> make_weights(DType t, int64_t n, int mode, uint32_t seed) {
    std::vector<uint8_t> w(row_bytes(t, n));
    if (mode == 0 || is_float(t)) {
        const std::vector<float> x = normal(n, seed, 0.5f);
        kernels::quantize_row(t, x.data(), w.data(), n);
        return w;
    }
    std::mt19937 rng(seed);
    for (auto& b : w) b = uint8_t(rng());
    std::uniform_real_distribution<float> mag(1e-3f, 0.1f);
    const int bb = dtype_info(t).block_bytes;
    for (int64_t b = 0; b < n / block_elems(t); ++b)
        for (int off : f16_scale_offsets(t)) {
            const float v = (rng() & 1) ? mag(rng) : -mag(rng);
            const f16_t h = f32_to_f16(v);
            std::memcpy(w.data() + b * bb + off, &h, 2);
        }
    return w;
}

// An activation row in the format the weight type takes (floats, or Q8A blocks from the reference
// quantizer), plus its dequantized values.
struct Act {
    std::vector<uint8_t> bytes;
    std::vector<float> values;
};
Act make_act(DType t, int64_t n, uint32_t seed) {
    Act a;
    std::vector<float> x = normal(n, seed);
    if (kernels::act_kind(t) == kernels::ActKind::F32) {
        a.bytes.resize(size_t(n) * 4);
        std::memcpy(a.bytes.data(), x.data(), a.bytes.size());
        a.values = x;
        return a;
    }
    a.bytes.resize(kernels::act_row_bytes(t, n));
    auto* q = reinterpret_cast<BlockQ8A*>(a.bytes.data());
    kernels::quantize_act_ref(x.data(), q, n);
    a.values.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) a.values[size_t(i)] = q[i / 32].d * float(q[i / 32].qs[i % 32]);
    return a;
}

// sum |w_i * a_i| in double: the scale of the rounding error a reordered float sum may make.
double abs_terms(DType t, const uint8_t* w, const std::vector<float>& a, int64_t n) {
    std::vector<float> wf(static_cast<size_t>(n));
    kernels::dequantize_row(t, w, wf.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs(double(wf[size_t(i)]) * double(a[size_t(i)]));
    return s;
}

constexpr double kRelTol = 1e-5;

// ---------------------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------------------
TEST(KernelsSimd, DispatchTables) {
    EXPECT_TRUE(kernels::cpu_supports(Isa::Ref));
    EXPECT_EQ(kernels::table_for(Isa::Ref), &kernels::ref_table());
    if (kernels::cpu_supports(Isa::Avx512)) {
        EXPECT_TRUE(kernels::cpu_supports(Isa::Avx2));
    }
    for (Isa isa : {Isa::Ref, Isa::Avx2, Isa::Avx512}) {
        const KernelTable* t = kernels::table_for(isa);
        EXPECT_EQ(t != nullptr, kernels::cpu_supports(isa)) << isa_str(isa);
        if (!t) continue;
        EXPECT_EQ(t->isa, isa);
        EXPECT_STREQ(t->name, isa_str(isa));
        EXPECT_NE(t->quantize_act, nullptr);
        EXPECT_NE(t->swiglu, nullptr);
        EXPECT_NE(t->f32_to_f16_row, nullptr);
        for (DType ty : kTypes) {
            EXPECT_NE(t->dot[tid(ty)], nullptr) << isa_str(isa) << " " << dtype_name(ty);
            EXPECT_NE(t->gemm[tid(ty)], nullptr) << isa_str(isa) << " " << dtype_name(ty);
        }
    }
    // Without HEARTH_ISA (the test environment does not set it) active() is the best supported table.
    if (!std::getenv("HEARTH_ISA")) {
        const Isa best = kernels::cpu_supports(Isa::Avx512) ? Isa::Avx512
                         : kernels::cpu_supports(Isa::Avx2) ? Isa::Avx2
                                                            : Isa::Ref;
        EXPECT_EQ(kernels::active().isa, best);
    }
    EXPECT_EQ(&kernels::active(), &kernels::active());
}

// Run by the test below in a child process with HEARTH_ISA set: prints the active table's name.
TEST(KernelsSimdEnv, DISABLED_PrintActive) { std::printf("hearth-active-isa=%s\n", kernels::active().name); }

// Runs this test binary again with HEARTH_ISA=env_value, only the printing test above; returns its stdout and
// stderr together (the dispatcher's warning goes to stderr).
std::string run_child(const std::string& env_value) {
    char exe[4096];
    const ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0) return "";
    exe[len] = 0;
    const std::string cmd = "HEARTH_ISA='" + env_value + "' '" + exe +
                            "' --gtest_also_run_disabled_tests --gtest_filter=KernelsSimdEnv.DISABLED_PrintActive 2>&1";
    std::string out;
    if (FILE* p = popen(cmd.c_str(), "r")) {
        char buf[512];
        while (std::fgets(buf, sizeof(buf), p)) out += buf;
        pclose(p);
    }
    return out;
}

TEST(KernelsSimdEnv, HearthIsaForcesAndClamps) {
    const std::string best = kernels::cpu_supports(Isa::Avx512) ? "avx512"
                             : kernels::cpu_supports(Isa::Avx2) ? "avx2"
                                                                : "ref";
    for (Isa isa : {Isa::Ref, Isa::Avx2, Isa::Avx512}) {
        const std::string out = run_child(isa_str(isa));
        ASSERT_NE(out.find("hearth-active-isa="), std::string::npos) << out;
        if (kernels::cpu_supports(isa)) {
            EXPECT_NE(out.find(std::string("hearth-active-isa=") + isa_str(isa) + "\n"), std::string::npos) << out;
            EXPECT_EQ(out.find("hearth: warning"), std::string::npos) << out;
        } else {  // clamped to the best the CPU has, with a warning
            EXPECT_NE(out.find("hearth-active-isa=" + best + "\n"), std::string::npos) << out;
            EXPECT_NE(out.find("hearth: warning"), std::string::npos) << out;
        }
    }
    const std::string out = run_child("sse9");
    EXPECT_NE(out.find("hearth-active-isa=" + best + "\n"), std::string::npos) << out;
    EXPECT_NE(out.find("hearth: warning: HEARTH_ISA=sse9"), std::string::npos) << out;
}

// ---------------------------------------------------------------------------------------------------------
// quantize_act: bit-identical to the reference
// ---------------------------------------------------------------------------------------------------------
class KernelsSimdIsa : public testing::TestWithParam<Isa> {};

TEST_P(KernelsSimdIsa, QuantizeActBitIdentical) {
    REQUIRE_ISA(GetParam(), tab);
    for (int64_t n : {32, 256, 4096, 4352}) {
        std::vector<float> x = normal(n, uint32_t(n), 3.0f);
        // Special blocks: all zero, exact .5 ties after scaling, tiny (subnormal) values, one huge value,
        // a NaN (ignored by amax like fmax does), values that all scale to exact integers.
        if (n >= 256) {
            for (int i = 0; i < 32; ++i) x[size_t(i)] = 0.0f;
            for (int i = 0; i < 32; ++i) x[size_t(32 + i)] = float(i - 16) * 0.5f;  // amax 8: q = x * 127/8
            x[size_t(64 + 5)] = 127.0f;
            for (int i = 0; i < 32; ++i) x[size_t(64 + i)] = i == 5 ? 127.0f : float(i % 7) - 3.5f;  // ties
            for (int i = 0; i < 32; ++i) x[size_t(96 + i)] = float(i + 1) * 1e-41f;                  // subnormal
            for (int i = 0; i < 32; ++i) x[size_t(128 + i)] = (i == 3) ? 1e30f : float(i);
            x[size_t(160 + 7)] = std::nanf("");
            for (int i = 0; i < 32; ++i) x[size_t(192 + i)] = float(i * 4 - 64) / 127.0f * 2.0f;
        }
        std::vector<BlockQ8A> ref(size_t(n / 32)), simd(size_t(n / 32));
        std::memset(simd.data(), 0x5a, simd.size() * sizeof(BlockQ8A));
        kernels::quantize_act_ref(x.data(), ref.data(), n);
        tab->quantize_act(x.data(), simd.data(), n);
        for (int64_t b = 0; b < n / 32; ++b) {
            const BlockQ8A &r = ref[size_t(b)], &s = simd[size_t(b)];
            ASSERT_EQ(std::memcmp(&r.d, &s.d, 4), 0) << "n=" << n << " block " << b << " d " << r.d << " vs " << s.d;
            ASSERT_EQ(r.sum[0], s.sum[0]) << "n=" << n << " block " << b;
            ASSERT_EQ(r.sum[1], s.sum[1]) << "n=" << n << " block " << b;
            for (int e = 0; e < 32; ++e)
                ASSERT_EQ(r.qs[e], s.qs[e]) << "n=" << n << " block " << b << " element " << e;
        }
    }
}

// swiglu: within 1e-6 relative of the reference (a polynomial e^x instead of libm's expf), over ordinary
// values, the extremes where e^-x overflows or vanishes, and lengths with a partial last vector.
TEST_P(KernelsSimdIsa, SwigluMatchesReference) {
    REQUIRE_ISA(GetParam(), tab);
    for (int64_t n : {1, 15, 16, 17, 1536, 8195}) {
        std::vector<float> g = normal(n, uint32_t(n) + 7, 4.0f), u = normal(n, uint32_t(n) + 8, 1.0f);
        const float extremes[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 20.0f, -20.0f, 87.0f, -87.0f, 88.5f, -88.5f,
                                  100.0f, -100.0f, 1e30f, -1e30f};
        for (size_t i = 0; i < std::size(extremes) && i < size_t(n); ++i) g[size_t(n) - 1 - i] = extremes[i];
        std::vector<float> ref = g, simd = g;
        kernels::swiglu_ref(ref.data(), u.data(), n);
        const float sentinel = 12345.0f;
        simd.push_back(sentinel);  // the partial last vector must not write past n
        tab->swiglu(simd.data(), u.data(), n);
        ASSERT_EQ(simd[size_t(n)], sentinel) << "n=" << n;
        for (int64_t i = 0; i < n; ++i)
            ASSERT_NEAR(simd[size_t(i)], ref[size_t(i)], 1e-6f * std::abs(ref[size_t(i)]) + 1e-30f)
                << "n=" << n << " i=" << i << " g=" << g[size_t(i)] << " u=" << u[size_t(i)];
    }
}

// f32 -> f16 rows: the same bits as the scalar f32_to_f16 (nearest, ties to even) for ordinary values, exact
// ties between two halves, subnormal halves, overflow to infinity and the infinities; a NaN stays a NaN. The
// partial last vector must not write past n.
TEST_P(KernelsSimdIsa, F32ToF16RowMatchesTheScalarConversion) {
    REQUIRE_ISA(GetParam(), tab);
    std::vector<float> x = normal(4096, 21, 3.0f);
    const float specials[] = {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, -70000.0f, 1e-5f, -3e-6f, 6.0e-8f, 2.9e-8f,
                              1e-9f, INFINITY, -INFINITY, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 2049.0f, 2051.0f};
    for (size_t i = 0; i < std::size(specials); ++i) x[i * 7] = specials[i];
    for (size_t i = 0; i < 512; ++i) {  // exact ties in the subnormal range and between normal halves
        uint32_t bits = 0x33800000u + uint32_t(i) * 0x1000u;
        std::memcpy(&x[1000 + i], &bits, 4);
        bits = 0x3f800000u + uint32_t(i) * 0x2000u + 0x1000u;
        std::memcpy(&x[2000 + i], &bits, 4);
    }
    for (int64_t n : {1, 7, 15, 16, 17, 100, 4096}) {
        std::vector<f16_t> out(size_t(n) + 1, 0x1234);
        tab->f32_to_f16_row(x.data(), out.data(), n);
        ASSERT_EQ(out[size_t(n)], 0x1234) << "n=" << n;
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], f32_to_f16(x[size_t(i)])) << "n=" << n << " x=" << x[size_t(i)];
    }
    const float nan = std::nanf("");
    f16_t h = 0;
    tab->f32_to_f16_row(&nan, &h, 1);
    EXPECT_EQ(h & 0x7c00, 0x7c00);
    EXPECT_NE(h & 0x03ff, 0);
}

// Ties: every x * id that lands exactly on k + 0.5 must round away from zero, like lround.
TEST_P(KernelsSimdIsa, QuantizeActRoundsHalfAwayFromZero) {
    REQUIRE_ISA(GetParam(), tab);
    // amax = 127 gives d = 1 and id = 1 exactly, so q = lround(x).
    std::vector<float> x(64);
    for (int i = 0; i < 64; ++i) x[size_t(i)] = float(i % 32) - 15.5f;
    x[0] = 127.0f;
    x[32] = -127.0f;
    std::vector<BlockQ8A> s(2);
    tab->quantize_act(x.data(), s.data(), 64);
    for (int i = 1; i < 32; ++i) {
        EXPECT_EQ(int(s[0].qs[i]), int(std::lround(x[size_t(i)]))) << i;
        EXPECT_EQ(int(s[1].qs[i]), int(std::lround(x[size_t(32 + i)]))) << i;
    }
    EXPECT_EQ(s[0].qs[1], -15);  // -14.5 -> -15
    EXPECT_EQ(s[0].qs[16], 1);   // 0.5 -> 1
}

INSTANTIATE_TEST_SUITE_P(KernelsSimd, KernelsSimdIsa, testing::ValuesIn(kIsas),
                         [](const testing::TestParamInfo<Isa>& i) { return std::string(isa_str(i.param)); });

// ---------------------------------------------------------------------------------------------------------
// dot and gemm per type
// ---------------------------------------------------------------------------------------------------------
class KernelsSimdType : public testing::TestWithParam<std::tuple<Isa, DType>> {};

std::string type_param_name(const testing::TestParamInfo<std::tuple<Isa, DType>>& i) {
    return std::string(isa_str(std::get<0>(i.param))) + "_" + dtype_name(std::get<1>(i.param));
}

std::vector<int64_t> dot_lengths(DType t) {
    std::vector<int64_t> ns = {256, 512, 4096, 4352};
    if (block_elems(t) == 32) ns.insert(ns.end(), {32, 64, 96, 160, 4352 + 96});  // partial 4-block groups
    if (is_float(t)) ns.insert(ns.end(), {1, 7, 17, 4355});                          // partial vectors
    return ns;
}

TEST_P(KernelsSimdType, DotMatchesReference) {
    const auto [isa, t] = GetParam();
    REQUIRE_ISA(isa, tab);
    uint32_t seed = 1000 + tid(t);
    for (int mode = 0; mode < 2; ++mode)
        for (int64_t n : dot_lengths(t)) {
            const std::vector<uint8_t> wv = make_weights(t, n, mode, ++seed);
            // Copy of the row at an offset that breaks vector alignment (GGUF rows of odd byte size start
            // anywhere; float rows stay aligned to their element size).
            const size_t off = misalign(t);
            std::vector<uint8_t> wbuf(wv.size() + off);
            std::memcpy(wbuf.data() + off, wv.data(), wv.size());
            const uint8_t* w = wbuf.data() + off;
            const Act a = make_act(t, n, ++seed);
            const double ref = kernels::vec_dot_ref(t, w, a.bytes.data(), n);
            const double got = tab->dot[tid(t)](w, a.bytes.data(), n);
            const double tol = kRelTol * abs_terms(t, w, a.values, n) + 1e-30;
            ASSERT_NEAR(got, ref, tol) << dtype_name(t) << " " << isa_str(isa) << " n=" << n << " mode=" << mode;
        }
}

TEST_P(KernelsSimdType, DotOfZeroActivationIsZero) {
    const auto [isa, t] = GetParam();
    REQUIRE_ISA(isa, tab);
    const int64_t n = 512;
    const std::vector<uint8_t> w = make_weights(t, n, 1, 77);
    std::vector<float> zero(size_t(n), 0.0f);
    std::vector<uint8_t> act(kernels::act_row_bytes(t, n));
    if (kernels::act_kind(t) == kernels::ActKind::F32)
        std::memcpy(act.data(), zero.data(), act.size());
    else
        kernels::quantize_act_ref(zero.data(), reinterpret_cast<BlockQ8A*>(act.data()), n);
    EXPECT_EQ(tab->dot[tid(t)](w.data(), act.data(), n), 0.0f);
}

TEST_P(KernelsSimdType, GemmOfEmptyRowsIsZero) {
    const auto [isa, t] = GetParam();
    REQUIRE_ISA(isa, tab);
    const uint8_t w[64] = {}, act[64] = {};
    for (int nc : {1, 8}) {
        std::vector<float> out(size_t(3 * nc), -1.0f);
        tab->gemm[tid(t)](0, w, 0, act, 0, out.data(), size_t(nc), 3, nc);
        for (float v : out) EXPECT_EQ(v, 0.0f) << "nc=" << nc;
    }
}

struct GemmCase {
    int64_t n;
    int nr, nc;
};

TEST_P(KernelsSimdType, GemmMatchesReference) {
    const auto [isa, t] = GetParam();
    REQUIRE_ISA(isa, tab);
    std::vector<GemmCase> cases;
    for (int nr : {1, 3, 5, 8, 17})
        for (int nc : {1, 2, 3, 5, 8, 17}) cases.push_back({512, nr, nc});
    cases.push_back({4352, 9, 70});  // more columns than one packed-activation chunk holds
    cases.push_back({4352, 9, 80});  // the same for the row-quad path (Q4_0, Q5_0, Q8_0, IQ4_NL); a row octet and a row
    cases.push_back({512, 30, 16});  // row octets and a partial quad at the end, 16 columns (batched decode)
    cases.push_back({256, 33, 4});
    if (block_elems(t) == 32) {  // partial last group of 4 blocks in every row, decode and multi-column paths
        cases.push_back({160, 7, 5});
        cases.push_back({160, 9, 1});
        cases.push_back({96, 6, 3});
        cases.push_back({4448, 5, 1});
    }
    if (is_float(t)) cases.push_back({259, 6, 7});

    uint32_t seed = 5000 + tid(t);
    for (const GemmCase& gc : cases) {
        const int64_t n = gc.n;
        const size_t rb = row_bytes(t, n);
        const size_t ab = kernels::act_row_bytes(t, n);
        // Padded strides: rows are not contiguous and not vector-aligned, outputs leave gaps.
        const size_t off = misalign(t);
        const size_t w_stride = rb + 11 * off;
        const size_t act_stride = ab + 12;
        const size_t out_stride = size_t(gc.nc) + 3;
        // The padding between rows holds 0xFF bytes: f16 NaNs where a kernel might read past a row's end.
        std::vector<uint8_t> w(w_stride * size_t(gc.nr) + off, 0xFF);
        for (int r = 0; r < gc.nr; ++r) {
            const std::vector<uint8_t> row = make_weights(t, n, r % 2, ++seed);
            std::memcpy(w.data() + off + r * w_stride, row.data(), rb);
        }
        std::vector<uint8_t> act(act_stride * size_t(gc.nc));
        std::vector<std::vector<float>> avals(size_t(gc.nc));
        for (int c = 0; c < gc.nc; ++c) {
            Act a = make_act(t, n, ++seed);
            std::memcpy(act.data() + c * act_stride, a.bytes.data(), ab);
            avals[size_t(c)] = std::move(a.values);
        }
        const float sentinel = -12345.0f;
        std::vector<float> out(out_stride * size_t(gc.nr), sentinel), ref(out.size(), sentinel);
        tab->gemm[tid(t)](n, w.data() + off, w_stride, act.data(), act_stride, out.data(), out_stride, gc.nr, gc.nc);
        kernels::ref_table().gemm[tid(t)](n, w.data() + off, w_stride, act.data(), act_stride, ref.data(), out_stride,
                                          gc.nr, gc.nc);
        for (int r = 0; r < gc.nr; ++r) {
            for (int c = 0; c < gc.nc; ++c) {
                const size_t o = size_t(r) * out_stride + size_t(c);
                const double tol =
                    kRelTol * abs_terms(t, w.data() + off + r * w_stride, avals[size_t(c)], n) + 1e-30;
                ASSERT_NEAR(out[o], ref[o], tol) << dtype_name(t) << " " << isa_str(isa) << " n=" << n
                                                 << " nr=" << gc.nr << " nc=" << gc.nc << " r=" << r << " c=" << c;
            }
            for (size_t o = size_t(r) * out_stride + size_t(gc.nc); o < size_t(r + 1) * out_stride; ++o)
                ASSERT_EQ(out[o], sentinel) << "gemm wrote outside its output tile";
        }
        // The transposed variant, where the table has one: the same numbers at out[c * stride + r].
        if (const kernels::GemmFn gemm_t = tab->gemm_t[tid(t)]) {
            const size_t t_stride = size_t(gc.nr) + 2;
            std::vector<float> out_t(t_stride * size_t(gc.nc), sentinel);
            gemm_t(n, w.data() + off, w_stride, act.data(), act_stride, out_t.data(), t_stride, gc.nr, gc.nc);
            for (int c = 0; c < gc.nc; ++c) {
                for (int r = 0; r < gc.nr; ++r)
                    ASSERT_EQ(out_t[size_t(c) * t_stride + size_t(r)], out[size_t(r) * out_stride + size_t(c)])
                        << dtype_name(t) << " gemm_t n=" << n << " nr=" << gc.nr << " nc=" << gc.nc << " r=" << r << " c=" << c;
                for (size_t o = size_t(c) * t_stride + size_t(gc.nr); o < size_t(c + 1) * t_stride; ++o)
                    ASSERT_EQ(out_t[o], sentinel) << "gemm_t wrote outside its output tile";
            }
        }
    }
}

// dot must agree with gemm's (1 x 1) result exactly: decode and prefill see the same numbers.
TEST_P(KernelsSimdType, DotEqualsSingleGemm) {
    const auto [isa, t] = GetParam();
    REQUIRE_ISA(isa, tab);
    const int64_t n = 4352;
    const std::vector<uint8_t> w = make_weights(t, n, 0, 31);
    const Act a = make_act(t, n, 32);
    float g = 0;
    tab->gemm[tid(t)](n, w.data(), 0, a.bytes.data(), 0, &g, 1, 1, 1);
    EXPECT_EQ(tab->dot[tid(t)](w.data(), a.bytes.data(), n), g);
}

INSTANTIATE_TEST_SUITE_P(KernelsSimd, KernelsSimdType, testing::Combine(testing::ValuesIn(kIsas), testing::ValuesIn(kTypes)),
                         type_param_name);

}  // namespace
}  // namespace hearth
