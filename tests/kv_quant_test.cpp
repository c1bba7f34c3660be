// The compressed KV cache types (runtime/kv_quant.h): the rotation, the error of each format on a block with
// outlier channels, the bytes per token, the shapes refused; the attention kernel over mixed quantized and f16
// blocks against the reference; the cache's aging of blocks, truncation into a quantized block, and the forward
// pass with each type against f16 on stories260K.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "base/error.h"
#include "model/attention.h"
#include "model/forward.h"
#include "model_test_util.h"
#include "runtime/kv_cache.h"
#include "runtime/kv_quant.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

constexpr KvType kCompressed[] = {KvType::Q8, KvType::Q4, KvType::Rot4, KvType::Rot3};

TEST(KvQuant, RotationIsOrthogonalAndInverts) {
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int n : {2, 8, 64, 128, 256}) {
        std::vector<float> x(n), y(n), z(n);
        for (auto& v : x) v = nd(rng);
        for (auto& v : y) v = nd(rng);
        double dot = 0, norm = 0;
        for (int i = 0; i < n; ++i) dot += x[i] * y[i], norm += x[i] * x[i];
        z = x;
        kv_rotate(z.data(), n);
        std::vector<float> ry = y;
        kv_rotate(ry.data(), n);
        double rdot = 0, rnorm = 0, moved = 0;
        for (int i = 0; i < n; ++i) rdot += z[i] * ry[i], rnorm += z[i] * z[i], moved += std::abs(z[i] - x[i]);
        EXPECT_NEAR(rdot, dot, 1e-4 * n) << n;  // q.k is kept: keys and queries rotate alike
        EXPECT_NEAR(rnorm, norm, 1e-4 * n) << n;
        EXPECT_GT(moved, 0.1) << n;
        kv_unrotate(z.data(), n);
        for (int i = 0; i < n; ++i) EXPECT_NEAR(z[i], x[i], 1e-5f) << n << " " << i;
    }
    // One outlier coordinate spreads over all of them.
    std::vector<float> e(64, 0.0f);
    e[5] = 8.0f;
    kv_rotate(e.data(), 64);
    for (float v : e) EXPECT_NEAR(std::abs(v), 1.0f, 1e-6f);
}

// A block of keys with outlier channels (large and offset, as real keys have) and Gaussian values, in the f16
// form the cache holds before quantizing (rotated per head for the rot types, as the cache writes them).
struct TestBlock {
    std::vector<float> k, v;  // K [kv_dim][16], V [16][kv_dim]
    std::vector<f16_t> kh, vh;
};
TestBlock make_block(std::mt19937& rng, int kv_dim, int head_dim, bool rotate) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    TestBlock b;
    b.k.resize(static_cast<size_t>(kv_dim) * 16);
    b.v.resize(b.k.size());
    std::vector<float> ch_scale(kv_dim, 1.0f), ch_shift(kv_dim, 0.0f);
    for (int ch = 0; ch < kv_dim; ch += 13) ch_scale[ch] = 12.0f, ch_shift[ch] = 5.0f;
    for (int c = 0; c < 16; ++c) {
        std::vector<float> kr(kv_dim), vr(kv_dim);
        for (int ch = 0; ch < kv_dim; ++ch) kr[ch] = nd(rng) * ch_scale[ch] + ch_shift[ch], vr[ch] = nd(rng);
        if (rotate)
            for (int h = 0; h < kv_dim; h += head_dim) kv_rotate(kr.data() + h, head_dim), kv_rotate(vr.data() + h, head_dim);
        for (int ch = 0; ch < kv_dim; ++ch) b.k[ch * 16 + c] = kr[ch], b.v[c * kv_dim + ch] = vr[ch];
    }
    for (float x : b.k) b.kh.push_back(f32_to_f16(x));
    for (float x : b.v) b.vh.push_back(f32_to_f16(x));
    return b;
}

TEST(KvQuant, ErrorOfEachFormat) {
    std::mt19937 rng(2);
    const int kv_dim = 128, head_dim = 64;
    // Relative RMS error bounds, keys / values: 8 bits ~0.4 %, 4-bit uniform steps ~7 %, 4-bit Gaussian levels
    // ~10 %, 3-bit ~19 %.
    const std::pair<KvType, std::pair<double, double>> bounds[] = {{KvType::Q8, {0.01, 0.01}},
                                                                    {KvType::Q4, {0.10, 0.12}},
                                                                    {KvType::Rot4, {0.12, 0.12}},
                                                                    {KvType::Rot3, {0.22, 0.22}}};
    for (const auto& [type, bound] : bounds) {
        const KvLayout L = kv_layout(type, kv_dim, head_dim, 16);
        double ke = 0, kn = 0, ve = 0, vn = 0;
        for (int rep = 0; rep < 20; ++rep) {
            const TestBlock b = make_block(rng, kv_dim, head_dim, kv_type_rotated(type));
            // Rot types store keys without a key mean (here the block's own channel means).
            std::vector<float> mean(kv_dim, 0.0f);
            if (kv_type_rotated(type))
                for (int ch = 0; ch < kv_dim; ++ch) {
                    for (int c = 0; c < 16; ++c) mean[ch] += f16_to_f32(b.kh[ch * 16 + c]) / 16;
                }
            std::vector<uint8_t> kq(L.k_bytes), vq(L.v_bytes);
            kv_quantize_block(L, b.kh.data(), b.vh.data(), kq.data(), vq.data(), mean.data());
            std::vector<f16_t> kd(b.kh.size()), vd(b.vh.size());
            kv_dequantize_block(L, kq.data(), vq.data(), kd.data(), vd.data(), mean.data());
            for (int ch = 0; ch < kv_dim; ++ch)
                for (int c = 0; c < 16; ++c) {
                    const float k0 = f16_to_f32(b.kh[ch * 16 + c]), v0 = f16_to_f32(b.vh[c * kv_dim + ch]);
                    const float kval = kv_k_value(L, kq.data(), ch, c) + mean[ch];
                    // The reader and the dequantized block agree.
                    ASSERT_NEAR(kval, f16_to_f32(kd[ch * 16 + c]), 1e-3 * (1 + std::abs(k0)));
                    ASSERT_NEAR(kv_v_value(L, vq.data(), c, ch), f16_to_f32(vd[c * kv_dim + ch]),
                                1e-3 * (1 + std::abs(v0)));
                    const double dk = kval - k0, dv = kv_v_value(L, vq.data(), c, ch) - v0;
                    ke += dk * dk, kn += static_cast<double>(k0) * k0, ve += dv * dv, vn += static_cast<double>(v0) * v0;
                }
        }
        const double kr = std::sqrt(ke / kn), vr = std::sqrt(ve / vn);
        EXPECT_LT(kr, bound.first) << kv_type_name(type);
        EXPECT_LT(vr, bound.second) << kv_type_name(type);
        EXPECT_GT(kr, bound.first / 20) << kv_type_name(type) << ": suspiciously exact";
    }
}

TEST(KvQuant, BytesPerTokenIncludeTheScales) {
    // SmolLM2-135M: 3 KV heads of 64. f16 holds 2 x 192 x 2 = 768 bytes per token per layer.
    EXPECT_DOUBLE_EQ(kv_layout(KvType::F16, 192, 64, 16).bytes_per_token(), 768);
    EXPECT_DOUBLE_EQ(kv_layout(KvType::F32, 192, 64, 16).bytes_per_token(), 1536);
    EXPECT_DOUBLE_EQ(kv_layout(KvType::Q8, 192, 64, 16).bytes_per_token(), 192 + 24 + 192 + 12);  // 420
    EXPECT_DOUBLE_EQ(kv_layout(KvType::Q4, 192, 64, 16).bytes_per_token(), 96 + 48 + 96 + 24);    // 264
    EXPECT_DOUBLE_EQ(kv_layout(KvType::Rot4, 192, 64, 16).bytes_per_token(), 2 * (96 + 3));       // 198
    EXPECT_DOUBLE_EQ(kv_layout(KvType::Rot3, 192, 64, 16).bytes_per_token(), 2 * (72 + 3));       // 150: 5.1x
    // stories260K: 4 KV heads of 8; rot3 is 4x smaller than f16 with its scales.
    EXPECT_DOUBLE_EQ(kv_layout(KvType::Rot3, 32, 8, 16).bytes_per_token() * 4,
                     kv_layout(KvType::F16, 32, 8, 16).bytes_per_token());
}

TEST(KvQuant, RefusesShapesItCannotStore) {
    auto message = [](KvType t, int kv_dim, int head_dim, int bs) -> std::string {
        try {
            kv_layout(t, kv_dim, head_dim, bs);
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    };
    const std::string rot = message(KvType::Rot3, 240, 80, 16);
    EXPECT_NE(rot.find("rot3"), std::string::npos) << rot;
    EXPECT_NE(rot.find("head size is 80"), std::string::npos) << rot;
    const std::string q8 = message(KvType::Q8, 48, 16, 16);
    EXPECT_NE(q8.find("q8"), std::string::npos) << q8;
    EXPECT_NE(q8.find("48"), std::string::npos) << q8;
    EXPECT_NE(message(KvType::Q4, 64, 64, 32).find("16 cells"), std::string::npos);
    EXPECT_EQ(message(KvType::Q4, 320, 80, 16), "");  // q4 needs no power of two
    EXPECT_EQ(message(KvType::F16, 240, 80, 32), "");
    try {
        parse_kv_type("q9");
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("rot3"), std::string::npos) << e.what();
    }
}

// The kernel over a sequence whose first n_quant blocks are quantized and the rest f16, against the reference
// over the same view: every type, head sizes with a masked last column group, tiles, split rows.
TEST(Attention, DispatchedCompressedMatchesReference) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const KvType type : kCompressed)
        for (int head_dim : {8, 24, 64, 128, 256}) {
            if (kv_type_rotated(type) && head_dim == 24) continue;  // rot types need a power of two
            // Head 1 of 4 heads of 24 starts inside a value group of 32 and ends in the next.
            const int kv_dim = head_dim == 24 ? 96 : std::max(2 * head_dim, 32), bs = 16;
            const KvLayout L = kv_layout(type, kv_dim, head_dim, bs);
            for (int n_kv : {1, 17, 40, 300, 700}) {
                const int nb = (n_kv + bs - 1) / bs;
                std::vector<std::vector<uint8_t>> kq(nb), vq(nb);
                std::vector<TestBlock> f16(nb);
                for (int b = 0; b < nb; ++b) {
                    f16[b] = make_block(rng, kv_dim, head_dim, kv_type_rotated(type));
                    kq[b].resize(L.k_bytes), vq[b].resize(L.v_bytes);
                    kv_quantize_block(L, f16[b].kh.data(), f16[b].vh.data(), kq[b].data(), vq[b].data());
                }
                for (int n_quant : {0, nb / 2, nb}) {
                    std::vector<const void*> kp(nb), vp(nb);
                    for (int b = 0; b < nb; ++b) {
                        kp[b] = b < n_quant ? static_cast<const void*>(kq[b].data()) : f16[b].kh.data();
                        vp[b] = b < n_quant ? static_cast<const void*>(vq[b].data()) : f16[b].vh.data();
                    }
                    // Rot types: keys stored without a key mean, which the kernel adds as a score shift and the
                    // reference adds to every key.
                    std::vector<float> mean(kv_dim);
                    for (auto& x : mean) x = nd(rng) * 3;
                    KvSeqView view{kp.data(), vp.data(), bs, kv_dim, type, &L, n_quant,
                                   kv_type_rotated(type) ? mean.data() : nullptr};
                    for (int n_rows : {1, 3, 16})
                        for (int mode = 0; mode < 3; ++mode) {  // whole rows, a sliding window, a split (partial) row
                            std::vector<float> q(n_rows * head_dim), out(q.size()), ref(q.size()), st(4 * n_rows);
                            std::vector<float> work(static_cast<size_t>(attend_work_floats(head_dim)));
                            for (auto& x : q) x = nd(rng) * 0.3f;
                            std::vector<AttnRow> rows(n_rows), rrows(n_rows);
                            const int begin = mode == 2 ? std::min(n_kv - 1, 20) / bs * bs : 0;
                            for (int r = 0; r < n_rows; ++r) {
                                const int nk = std::max(begin + 1, n_kv - r % 5);
                                rows[r] = {q.data() + r * head_dim, out.data() + r * head_dim, nk, begin,
                                           mode == 2 ? st.data() + 2 * r : nullptr,
                                           mode == 1 ? std::max(0, nk - 19) : 0};
                                rrows[r] = rows[r];
                                rrows[r].out = ref.data() + r * head_dim;
                                if (mode == 2) rrows[r].partial = st.data() + 2 * n_rows + 2 * r;
                            }
                            attend(rows.data(), n_rows, view, 1, head_dim, 0.125f, work.data());
                            attend_ref(rrows.data(), n_rows, view, 1, head_dim, 0.125f, work.data());
                            for (size_t i = 0; i < out.size(); ++i)
                                ASSERT_NEAR(out[i], ref[i], 1e-4f * (1 + std::abs(ref[i])))
                                    << kv_type_name(type) << " hd " << head_dim << " n_kv " << n_kv << " quant "
                                    << n_quant << " rows " << n_rows << " mode " << mode << " i " << i;
                            if (mode == 2) {
                                for (int r = 0; r < 2 * n_rows; ++r)
                                    ASSERT_NEAR(st[r], st[2 * n_rows + r], 1e-4f * (1 + std::abs(st[r])));
                            }
                        }
                }
            }
        }
    if (kernels::active().isa != kernels::Isa::Avx512) GTEST_LOG_(INFO) << "no AVX-512 here: compared ref with ref";
}

// A rot view of f16 blocks holding rotated vectors attends as plain attention over the original vectors: the
// query is rotated alike and the output rotated back.
TEST(Attention, RotatedBlocksAttendAsTheOriginalVectors) {
    std::mt19937 rng(12);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int head_dim = 64, kv_dim = 128, bs = 16, n_kv = 100, nb = 7;
    std::vector<std::vector<float>> k32(nb, std::vector<float>(kv_dim * bs)), v32 = k32;
    std::vector<std::vector<f16_t>> kr(nb, std::vector<f16_t>(kv_dim * bs)), vr = kr;
    for (int b = 0; b < nb; ++b)
        for (int c = 0; c < bs; ++c)
            for (int h = 0; h < 2; ++h) {
                std::vector<float> k(head_dim), v(head_dim);
                for (int j = 0; j < head_dim; ++j) {
                    k[j] = f16_to_f32(f32_to_f16(nd(rng))), v[j] = f16_to_f32(f32_to_f16(nd(rng)));
                    k32[b][(h * head_dim + j) * bs + c] = k[j];
                    v32[b][c * kv_dim + h * head_dim + j] = v[j];
                }
                kv_rotate(k.data(), head_dim);
                kv_rotate(v.data(), head_dim);
                for (int j = 0; j < head_dim; ++j) {
                    kr[b][(h * head_dim + j) * bs + c] = f32_to_f16(k[j]);
                    vr[b][c * kv_dim + h * head_dim + j] = f32_to_f16(v[j]);
                }
            }
    std::vector<const void*> kp, vp, kp32, vp32;
    for (int b = 0; b < nb; ++b)
        kp.push_back(kr[b].data()), vp.push_back(vr[b].data()), kp32.push_back(k32[b].data()), vp32.push_back(v32[b].data());
    const KvLayout L = kv_layout(KvType::Rot4, kv_dim, head_dim, bs);
    const KvSeqView rot{kp.data(), vp.data(), bs, kv_dim, KvType::Rot4, &L, 0};
    const KvSeqView plain{kp32.data(), vp32.data(), bs, kv_dim, KvType::F32};
    std::vector<float> q(head_dim), a(head_dim), b(head_dim), work(static_cast<size_t>(attend_work_floats(head_dim)));
    for (auto& x : q) x = nd(rng) * 0.3f;
    AttnRow ra{q.data(), a.data(), n_kv}, rb{q.data(), b.data(), n_kv};
    attend(&ra, 1, rot, 1, head_dim, 0.125f, work.data());
    attend_ref(&rb, 1, plain, 1, head_dim, 0.125f, work.data());
    for (int j = 0; j < head_dim; ++j) EXPECT_NEAR(a[j], b[j], 3e-3f) << j;
}

// Blocks age into the quantized pool once `residual` positions follow them; truncating into a quantized block
// and writing again turns it back into f16; slots are recycled.
TEST(KvCacheCompressed, BlocksAgeAndComeBackForRewrites) {
    KvCacheConfig c;
    c.n_layer = 2;
    c.kv_dim = 32;
    c.head_dim = 8;
    c.block_size = 16;
    c.n_blocks = 8;
    c.type = KvType::Q4;
    c.residual = 32;
    KvCache kv(c);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<std::vector<float>> k(100, std::vector<float>(32)), v = k;
    kv.reserve(0, 100);
    EXPECT_EQ(kv.residual_slots(), 7);
    for (int p = 0; p < 100; ++p) {
        for (int d = 0; d < 32; ++d) k[p][d] = nd(rng), v[p][d] = nd(rng);
        for (int il = 0; il < 2; ++il) kv.write(il, 0, p, k[p].data(), v[p].data());
    }
    // Blocks ending at or before 100 - 32 = 68: four of them.
    EXPECT_EQ(kv.age(0, 100), 4);
    EXPECT_EQ(kv.residual_slots(), 3);
    const auto& table = kv.blocks(0);
    for (int b = 0; b < 7; ++b) EXPECT_EQ(kv.is_quantized(table[b]), b < 4) << b;
    double err = 0, norm = 0;
    for (int p = 0; p < 64; ++p)
        for (int d = 0; d < 32; ++d) {
            const float got = kv_k_value(kv.layout(), kv.k_block(1, table[p / 16]), d, p % 16);
            err += (got - k[p][d]) * (got - k[p][d]), norm += k[p][d] * k[p][d];
        }
    EXPECT_LT(std::sqrt(err / norm), 0.12);
    // A write into a quantized block without prepare_write is refused, naming the problem.
    try {
        kv.write(0, 0, 20, k[20].data(), v[20].data());
        ADD_FAILURE();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("quantized block"), std::string::npos) << e.what();
    }
    kv.truncate(0, 40);
    kv.prepare_write(0, 40);  // block 2 (32..47) holds 40: back to f16
    EXPECT_FALSE(kv.is_quantized(kv.blocks(0)[2]));
    EXPECT_TRUE(kv.is_quantized(kv.blocks(0)[1]));
    EXPECT_EQ(kv.age(0, 40), 2);
    kv.reserve(0, 48);
    kv.write(0, 0, 40, k[40].data(), v[40].data());
    kv.truncate(0, 0);
    EXPECT_EQ(kv.residual_slots(), 0);
    EXPECT_EQ(kv.free_blocks(), 8);
}

// Logits of the last token of a prompt fed 16 tokens per pass (so blocks age as in decoding).
std::vector<float> prompt_logits(Context& ctx, const std::vector<int32_t>& p, int step = 16) {
    std::vector<float> last;
    for (size_t i0 = 0; i0 < p.size(); i0 += step) {
        Batch b;
        for (size_t i = i0; i < std::min(p.size(), i0 + step); ++i) b.add(p[i], static_cast<int32_t>(i), 0, i + 1 == p.size());
        last = ctx.decode(b);
    }
    return last;
}

double kl(const std::vector<float>& base, const std::vector<float>& other) {
    auto lsm = [](const std::vector<float>& l) {
        const float mx = *std::max_element(l.begin(), l.end());
        double s = 0;
        for (float x : l) s += std::exp(static_cast<double>(x - mx));
        std::vector<double> o(l.size());
        for (size_t i = 0; i < l.size(); ++i) o[i] = l[i] - mx - std::log(s);
        return o;
    };
    const auto a = lsm(base), b = lsm(other);
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d += std::exp(a[i]) * (a[i] - b[i]);
    return d;
}

TEST(Forward, CompressedCachesStayCloseToF16) {
    const std::vector<int32_t> p = test::story_prompt(200);
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = 2;
    Context base(test::stories_model(), cp);
    const std::vector<float> ref = prompt_logits(base, p);
    const std::pair<KvType, double> bounds[] = {
        {KvType::Q8, 1e-3}, {KvType::Q4, 3e-2}, {KvType::Rot4, 0.5}, {KvType::Rot3, 0.5}};
    for (const auto& [type, bound] : bounds) {
        cp.kv_type = type;
        Context ctx(test::stories_model(), cp);
        const std::vector<float> got = prompt_logits(ctx, p);
        const double d = kl(ref, got);
        EXPECT_LT(d, bound) << kv_type_name(type);
        EXPECT_GT(d, 0) << kv_type_name(type) << ": no difference at all";
        // Most of the prompt's blocks were quantized: (200 - 16 - 32) / 16.
        EXPECT_GE(ctx.kv().age(0, 184), 9) << kv_type_name(type);
        // Truncating into a quantized block and feeding the same tokens again gives nearly the same logits.
        ctx.kv().truncate(0, 150);
        Batch b;
        for (size_t i = 150; i < p.size(); ++i) b.add(p[i], static_cast<int32_t>(i), 0, i + 1 == p.size());
        const std::vector<float> again = ctx.decode(b);
        EXPECT_LT(kl(got, again), bound) << kv_type_name(type);
    }
}

// The prefix cache with a compressed type: attached blocks (quantized in the pool) give the logits of
// recomputation within the type's error.
TEST(KvCachePrefix, AttachedCompressedBlocks) {
    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 2;
    cp.kv_type = KvType::Q8;
    Context ctx(test::stories_model(), cp);
    const std::vector<int32_t> p = test::story_prompt(120);
    const std::vector<float> full = prompt_logits(ctx, p);
    ctx.kv().publish(0, p.data(), static_cast<int32_t>(p.size()));
    ctx.kv().truncate(0, 0);
    const int32_t got = ctx.kv().attach_prefix(1, p.data(), static_cast<int32_t>(p.size()) - 1);
    ASSERT_EQ(got, 112);
    EXPECT_TRUE(ctx.kv().is_quantized(ctx.kv().blocks(1)[0]));
    Batch b;
    for (size_t i = static_cast<size_t>(got); i < p.size(); ++i) b.add(p[i], static_cast<int32_t>(i), 1, i + 1 == p.size());
    EXPECT_LT(kl(full, ctx.decode(b)), 1e-3);
}

}  // namespace
}  // namespace hearth
