// The training matrix product (tensor/gemm.h) against the plain triple loop, for every kernel table the CPU
// runs, every transposition, edge sizes (not multiples of the register tile or of the cache blocks), padded
// strides and accumulation; and the property training relies on: the result does not depend on the thread
// count, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tensor/gemm.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

std::vector<float> random_vec(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = d(rng);
    return v;
}

struct Case {
    int64_t m, n, k;
};

void check_all(const kernels::KernelTable& table) {
    const Case cases[] = {{1, 1, 1}, {5, 7, 3}, {12, 32, 256}, {13, 33, 257}, {150, 70, 300}, {64, 2100, 40},
                          {300, 17, 600}, {37, 96, 1}};
    for (const Case& cs : cases)
        for (Trans ta : {Trans::No, Trans::Yes})
            for (Trans tb : {Trans::No, Trans::Yes})
                for (bool acc : {false, true}) {
                    SCOPED_TRACE(testing::Message() << table.name << " m=" << cs.m << " n=" << cs.n << " k=" << cs.k
                                                    << " ta=" << int(ta) << " tb=" << int(tb) << " acc=" << acc);
                    GemmArgs g;
                    g.ta = ta, g.tb = tb, g.m = cs.m, g.n = cs.n, g.k = cs.k;
                    g.lda = (ta == Trans::No ? cs.k : cs.m) + 3;  // padded strides
                    g.ldb = (tb == Trans::No ? cs.n : cs.k) + 5;
                    g.ldc = cs.n + 2;
                    const auto A = random_vec((ta == Trans::No ? cs.m : cs.k) * g.lda, 1);
                    const auto B = random_vec((tb == Trans::No ? cs.k : cs.n) * g.ldb, 2);
                    std::vector<float> C = random_vec(cs.m * g.ldc, 3), R = C;
                    g.a = A.data(), g.b = B.data(), g.accumulate = acc, g.kernel = &table.sgemm;
                    g.c = C.data();
                    sgemm(g, 2);
                    g.c = R.data();
                    sgemm_naive(g);
                    for (int64_t i = 0; i < cs.m; ++i)
                        for (int64_t j = 0; j < g.ldc; ++j) {
                            const float got = C[i * g.ldc + j], want = R[i * g.ldc + j];
                            if (j >= cs.n) {  // the padding is never written
                                ASSERT_EQ(got, want) << "padding written at " << i << "," << j;
                                continue;
                            }
                            // Reassociation error bound: k roundings of terms of size ~1 (sum of |a b| ~ k).
                            ASSERT_NEAR(got, want, 1e-5 * (static_cast<double>(cs.k) + std::fabs(want)) + 1e-6)
                                << i << "," << j;
                        }
                }
}

TEST(Gemm, ReferenceTileMatchesTripleLoop) { check_all(kernels::ref_table()); }

TEST(Gemm, SimdTilesMatchTripleLoop) {
    int tested = 0;
    for (kernels::Isa isa : {kernels::Isa::Avx2, kernels::Isa::Avx512}) {
        const kernels::KernelTable* t = kernels::table_for(isa);
        if (!t) continue;
        check_all(*t);
        ++tested;
    }
    if (tested == 0) GTEST_SKIP() << "this CPU runs neither the AVX2 nor the AVX-512 kernels";
}

TEST(Gemm, SameBitsForAnyThreadCount) {
    const int64_t m = 203, n = 333, k = 700;
    const auto A = random_vec(m * k, 4), B = random_vec(n * k, 5);
    std::vector<float> c1(m * n), c2(m * n), c3(m * n);
    GemmArgs g;
    g.tb = Trans::Yes, g.m = m, g.n = n, g.k = k, g.a = A.data(), g.lda = k, g.b = B.data(), g.ldb = k, g.ldc = n;
    g.c = c1.data();
    sgemm(g, 1);
    g.c = c2.data();
    sgemm(g, 2);
    g.c = c3.data();
    sgemm(g, 3);
    EXPECT_EQ(c1, c2);
    EXPECT_EQ(c1, c3);
    // Splitting by columns instead of rows (n > m) too.
    GemmArgs h = g;
    h.m = n, h.n = m, h.a = B.data(), h.b = A.data(), h.ldc = m;
    std::vector<float> d1(m * n), d2(m * n);
    h.c = d1.data();
    sgemm(h, 1);
    h.c = d2.data();
    sgemm(h, 2);
    EXPECT_EQ(d1, d2);
}

TEST(Gemm, Bf16TileMatchesTripleLoopOnRoundedInputs) {
    const kernels::KernelTable* t = kernels::table_for(kernels::Isa::Avx512);
    if (!t || !t->sgemm_bf16.tile) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    const Case cases[] = {{1, 1, 1}, {13, 33, 257}, {150, 70, 1100}, {64, 2100, 40}, {37, 96, 3}};
    for (const Case& cs : cases)
        for (Trans ta : {Trans::No, Trans::Yes})
            for (Trans tb : {Trans::No, Trans::Yes}) {
                SCOPED_TRACE(testing::Message() << "m=" << cs.m << " n=" << cs.n << " k=" << cs.k << " ta=" << int(ta)
                                                << " tb=" << int(tb));
                GemmArgs g;
                g.ta = ta, g.tb = tb, g.m = cs.m, g.n = cs.n, g.k = cs.k, g.bf16 = true;
                g.lda = ta == Trans::No ? cs.k : cs.m;
                g.ldb = tb == Trans::No ? cs.n : cs.k;
                g.ldc = cs.n;
                const auto A = random_vec((ta == Trans::No ? cs.m : cs.k) * g.lda, 11);
                const auto B = random_vec((tb == Trans::No ? cs.k : cs.n) * g.ldb, 12);
                std::vector<float> C(cs.m * cs.n), R(cs.m * cs.n);
                g.a = A.data(), g.b = B.data(), g.bf16_kernel = &t->sgemm_bf16;
                g.c = C.data();
                sgemm(g, 2);
                g.c = R.data();
                sgemm_naive(g);
                for (int64_t i = 0; i < cs.m * cs.n; ++i)
                    ASSERT_NEAR(C[i], R[i], 1e-5 * (static_cast<double>(cs.k) + std::fabs(R[i])) + 1e-6) << i;
            }
}

TEST(Gemm, Bf16PackingMatchesTheReference) {
    const kernels::KernelTable* t = kernels::table_for(kernels::Isa::Avx512);
    if (!t || !t->sgemm_bf16.pack) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    const auto src = random_vec(80 * 600, 13);  // up to 2 r + 7 = 71 lanes 600 apart
    for (int r : {12, 32})
        for (int lanes : {1, 5, 12, r, r + 1, 2 * r + 7, 64})
            for (int64_t kc : {1, 2, 15, 31, 32, 33, 257})
                for (bool lanes_contiguous : {false, true}) {
                    const int64_t ls = lanes_contiguous ? 1 : 600, ks = lanes_contiguous ? 64 : 1;
                    const size_t size = static_cast<size_t>((kc + 1) / 2 * r * ((lanes + r - 1) / r));
                    std::vector<uint32_t> got(size, 7u), want(size, 9u);
                    t->sgemm_bf16.pack(src.data(), ls, ks, lanes, r, kc, got.data());
                    kernels::pack_bf16_pairs_ref(src.data(), ls, ks, lanes, r, kc, want.data());
                    ASSERT_EQ(got, want) << "r " << r << " lanes " << lanes << " kc " << kc << " contiguous lanes "
                                         << lanes_contiguous;
                }
}

TEST(Gemm, EmptyInnerDimensionGivesZeros) {
    std::vector<float> C(6, 7.0f);
    GemmArgs g;
    g.m = 2, g.n = 3, g.k = 0, g.c = C.data(), g.ldc = 3;
    sgemm(g, 2);
    for (float x : C) EXPECT_EQ(x, 0.0f);
    std::fill(C.begin(), C.end(), 7.0f);
    g.accumulate = true;
    sgemm(g, 2);
    for (float x : C) EXPECT_EQ(x, 7.0f);
}

TEST(TrainKernels, ExpShiftSumAndSwigluBackwardMatchReference) {
    const auto x = random_vec(1000, 6), u = random_vec(1000, 7), dh = random_vec(1000, 8);
    for (kernels::Isa isa : {kernels::Isa::Avx2, kernels::Isa::Avx512}) {
        const kernels::KernelTable* t = kernels::table_for(isa);
        if (!t) continue;
        for (int64_t n : {1, 15, 16, 17, 1000}) {
            std::vector<float> y(n), yr(n);
            const float s = t->exp_shift_sum(x.data(), 0.7f, 1.5f, y.data(), n);
            const float sr = kernels::exp_shift_sum_ref(x.data(), 0.7f, 1.5f, yr.data(), n);
            EXPECT_NEAR(s, sr, 1e-6 * sr * n);
            for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], yr[i], 1e-6f * yr[i]) << t->name << " " << i;
            std::vector<float> dg(n), du(n), dgr(n), dur(n);
            t->swiglu_backward(x.data(), u.data(), dh.data(), dg.data(), du.data(), n);
            kernels::swiglu_backward_ref(x.data(), u.data(), dh.data(), dgr.data(), dur.data(), n);
            for (int64_t i = 0; i < n; ++i) {
                ASSERT_NEAR(dg[i], dgr[i], 1e-5f * (1 + std::fabs(dgr[i]))) << t->name << " " << i;
                ASSERT_NEAR(du[i], dur[i], 1e-5f * (1 + std::fabs(dur[i]))) << t->name << " " << i;
            }
        }
    }
}

TEST(TrainKernels, RowKernelsMatchReference) {
    const auto x = random_vec(1000, 16), w = random_vec(1000, 17), dy = random_vec(1000, 18), g = random_vec(1000, 19);
    for (kernels::Isa isa : {kernels::Isa::Avx2, kernels::Isa::Avx512}) {
        const kernels::KernelTable* t = kernels::table_for(isa);
        if (!t) continue;
        for (int64_t n : {1, 15, 16, 17, 64, 384, 1000}) {
            SCOPED_TRACE(testing::Message() << t->name << " n " << n);
            std::vector<float> y(n), yr(n);
            const float r = t->rms_norm_row(x.data(), w.data(), y.data(), n, 1e-5f);
            const float rr = kernels::rms_norm_row_ref(x.data(), w.data(), yr.data(), n, 1e-5f);
            EXPECT_NEAR(r, rr, 1e-6f * rr);
            for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], yr[i], 1e-6f * (1 + std::fabs(yr[i]))) << i;
            for (bool acc : {false, true}) {
                std::vector<float> dx(n, 0.5f), dxr(n, 0.5f);
                t->rms_norm_backward(x.data(), 0.8f, w.data(), dy.data(), dx.data(), n, acc);
                kernels::rms_norm_backward_ref(x.data(), 0.8f, w.data(), dy.data(), dxr.data(), n, acc);
                for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(dx[i], dxr[i], 1e-5f * (1 + std::fabs(dxr[i]))) << i;
            }
            std::vector<float> p(x.begin(), x.begin() + n), m(w.begin(), w.begin() + n), v(n);
            for (int64_t i = 0; i < n; ++i) v[i] = std::fabs(dy[i]);
            auto pr = p, mr = m, vr = v;
            const kernels::AdamWScalars s{0.9f, 0.95f, 1e-8f, 3e-3f, 1.3f, 0.999f};
            t->adamw(p.data(), g.data(), m.data(), v.data(), n, s);
            kernels::adamw_ref(pr.data(), g.data(), mr.data(), vr.data(), n, s);
            for (int64_t i = 0; i < n; ++i) {
                ASSERT_NEAR(p[i], pr[i], 1e-6f * (1 + std::fabs(pr[i]))) << i;
                ASSERT_NEAR(m[i], mr[i], 1e-6f * (1 + std::fabs(mr[i]))) << i;
                ASSERT_NEAR(v[i], vr[i], 1e-6f * (1 + std::fabs(vr[i]))) << i;
            }
            std::vector<float> dp(dy.begin(), dy.begin() + n), dpr = dp;
            t->softmax_backward(w.data(), dp.data(), 0.3f, 0.125f, n);
            kernels::softmax_backward_ref(w.data(), dpr.data(), 0.3f, 0.125f, n);
            for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(dp[i], dpr[i], 1e-6f * (1 + std::fabs(dpr[i]))) << i;
            EXPECT_NEAR(t->dot_f32(x.data(), w.data(), n), kernels::dot_f32_ref(x.data(), w.data(), n), 1e-5 * n);
            EXPECT_EQ(t->max_f32(x.data(), n), kernels::max_f32_ref(x.data(), n));
            std::vector<float> sc(x.begin(), x.begin() + n), scr = sc;
            t->scale_f32(sc.data(), -0.37f, n);
            kernels::scale_f32_ref(scr.data(), -0.37f, n);
            EXPECT_EQ(sc, scr);
            if (n % 2 == 0)
                for (float sign : {1.0f, -1.0f}) {
                    std::vector<float> ro(x.begin(), x.begin() + n), ror = ro;
                    t->rope_pairs(ro.data(), w.data(), g.data(), n / 2, sign);
                    kernels::rope_pairs_ref(ror.data(), w.data(), g.data(), n / 2, sign);
                    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(ro[i], ror[i], 1e-5f * (1 + std::fabs(ror[i]))) << i;
                }
        }
        // The norm weight's gradient over strips of columns, rows in order: a strip's sums are each column's.
        const int64_t rows = 20, ld = 50;
        std::vector<float> rstd(rows);
        for (int64_t i = 0; i < rows; ++i) rstd[i] = 0.5f + 0.1f * static_cast<float>(i);
        for (int64_t cols : {1, 7, 16, 31, 32, 33, 50}) {
            std::vector<double> acc(cols, 0.25), accr(cols, 0.25);
            t->norm_weight_grad(x.data(), rstd.data(), dy.data(), rows, ld, cols, acc.data());
            kernels::norm_weight_grad_ref(x.data(), rstd.data(), dy.data(), rows, ld, cols, accr.data());
            for (int64_t j = 0; j < cols; ++j) ASSERT_NEAR(acc[j], accr[j], 1e-12 * (1 + std::fabs(accr[j]))) << t->name << " " << j;
        }
    }
}

TEST(TrainKernels, SwigluBackwardMatchesFiniteDifferences) {
    // d/dg [silu(g) u] and d/du, by central differences in double.
    for (double g : {-6.0, -1.3, -0.2, 0.0, 0.4, 2.5, 9.0})
        for (double u : {-1.5, 0.7}) {
            auto h = [](double g, double u) { return g / (1 + std::exp(-g)) * u; };
            const double e = 1e-5;
            const double dg_num = (h(g + e, u) - h(g - e, u)) / (2 * e), du_num = (h(g, u + e) - h(g, u - e)) / (2 * e);
            const float gf = static_cast<float>(g), uf = static_cast<float>(u), one = 1.0f;
            float dg, du;
            kernels::swiglu_backward_ref(&gf, &uf, &one, &dg, &du, 1);
            EXPECT_NEAR(dg, dg_num, 1e-5) << g << " " << u;
            EXPECT_NEAR(du, du_num, 1e-5) << g << " " << u;
        }
}

}  // namespace
}  // namespace hearth
