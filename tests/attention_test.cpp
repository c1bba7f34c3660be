// The AVX-512 attention kernel against its scalar reference, over paged blocks with partial last blocks,
// tiles of 1..16 rows with different causal limits, and contexts longer than one score chunk.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "base/error.h"
#include "model/attention.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

struct Cache {
    std::vector<std::vector<float>> kb, vb;     // the values (f16-representable when the cache is f16)
    std::vector<std::vector<f16_t>> kh, vh;     // the same as f16
    std::vector<const void*> kp, vp, kp32, vp32;
    KvSeqView view{};    // of the cache's type
    KvSeqView view32{};  // the same values as f32
};

// Blocks filled with random K / V, handed out in scrambled order as a paged cache does.
Cache make_cache(std::mt19937& rng, int n_kv, int kv_dim, int bs, KvType type = KvType::F32) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Cache c;
    const int n_blocks = (n_kv + bs - 1) / bs;
    c.kb.assign(n_blocks, std::vector<float>(static_cast<size_t>(kv_dim) * bs));
    c.vb = c.kb;
    for (int b = n_blocks - 1; b >= 0; --b) {
        for (auto& x : c.kb[b]) x = nd(rng) * 2;
        for (auto& x : c.vb[b]) x = nd(rng);
    }
    c.kh.assign(n_blocks, std::vector<f16_t>(static_cast<size_t>(kv_dim) * bs));
    c.vh = c.kh;
    for (int b = 0; b < n_blocks; ++b)
        for (size_t i = 0; i < c.kb[b].size(); ++i) {
            c.kh[b][i] = f32_to_f16(c.kb[b][i]);
            c.vh[b][i] = f32_to_f16(c.vb[b][i]);
            if (type == KvType::F16) c.kb[b][i] = f16_to_f32(c.kh[b][i]), c.vb[b][i] = f16_to_f32(c.vh[b][i]);
        }
    for (int b = 0; b < n_blocks; ++b) {
        c.kp32.push_back(c.kb[b].data()), c.vp32.push_back(c.vb[b].data());
        if (type == KvType::F16)
            c.kp.push_back(c.kh[b].data()), c.vp.push_back(c.vh[b].data());
        else
            c.kp.push_back(c.kb[b].data()), c.vp.push_back(c.vb[b].data());
    }
    c.view = KvSeqView{c.kp.data(), c.vp.data(), bs, kv_dim, type};
    c.view32 = KvSeqView{c.kp32.data(), c.vp32.data(), bs, kv_dim, KvType::F32};
    return c;
}

void compare(int head_dim, int n_rows, const std::vector<int>& n_kv, std::mt19937& rng, KvType type = KvType::F32) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int bs = 16, n_kv_heads = 2, kv_dim = n_kv_heads * head_dim;
    const int max_kv = *std::max_element(n_kv.begin(), n_kv.end());
    Cache c = make_cache(rng, max_kv, kv_dim, bs, type);
    std::vector<float> q(static_cast<size_t>(n_rows) * head_dim), out(q.size()), ref(q.size());
    std::vector<float> work(static_cast<size_t>(attend_work_floats(head_dim)));
    for (auto& x : q) x = nd(rng);
    std::vector<AttnRow> rows(n_rows), rows_ref(n_rows);
    for (int r = 0; r < n_rows; ++r) {
        rows[r] = {q.data() + r * head_dim, out.data() + r * head_dim, n_kv[r]};
        rows_ref[r] = {q.data() + r * head_dim, ref.data() + r * head_dim, n_kv[r]};
    }
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    attend(rows.data(), n_rows, c.view, 1, head_dim, scale, work.data() + 1);  // misaligned on purpose
    // The reference reads the same values as f32: f16 blocks must be widened exactly.
    attend_ref(rows_ref.data(), n_rows, c.view32, 1, head_dim, scale, work.data());
    for (int r = 0; r < n_rows; ++r) {
        for (int j = 0; j < head_dim; ++j) {
            const float o = out[r * head_dim + j], e = ref[r * head_dim + j];
            ASSERT_NEAR(o, e, 2e-5f * (1 + std::abs(e)))
                << "head_dim " << head_dim << " rows " << n_rows << " row " << r << " n_kv " << n_kv[r] << " j " << j;
            // A row that sees a single cell returns that cell's V row.
            if (n_kv[r] == 1) {
                ASSERT_NEAR(o, c.vb[0][head_dim + j], 1e-6f);
            }
        }
    }
}

TEST(Attention, DispatchedMatchesReferenceOneToken) {
    std::mt19937 rng(5);
    // 80 and 96: head dims that are not a whole number of the V loop's column passes (its remainder path);
    // 8, 24 and 40: a last group of 8 columns (masked; stories260K's head_dim is 8).
    for (int head_dim : {8, 16, 24, 40, 64, 80, 96, 128})
        for (int group : {1, 2, 3, 4, 8})
            for (int n_kv : {1, 5, 16, 17, 100, 255, 256, 257, 700})
                compare(head_dim, group, std::vector<int>(group, n_kv), rng);
    if (kernels::active().isa != kernels::Isa::Avx512) GTEST_LOG_(INFO) << "no AVX-512 here: compared ref with ref";
}

// The f16 cache (the default): the kernel widens K and V in registers; the result equals the f32 reference over
// the same values, in every path (masked last column group, V remainder columns, tiles of several rows).
TEST(Attention, DispatchedF16MatchesReference) {
    std::mt19937 rng(7);
    for (int head_dim : {8, 24, 64, 80, 128})
        for (int group : {1, 3, 8, 16})
            for (int n_kv : {1, 17, 256, 700}) compare(head_dim, group, std::vector<int>(group, n_kv), rng, KvType::F16);
    // The reference reading f16 itself agrees too.
    Cache c = make_cache(rng, 300, 128, 16, KvType::F16);
    std::vector<float> q(64), a(64), b(64), work(static_cast<size_t>(attend_work_floats(64)));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& x : q) x = nd(rng);
    AttnRow ra{q.data(), a.data(), 300}, rb{q.data(), b.data(), 300};
    attend_ref(&ra, 1, c.view, 1, 64, 0.125f, work.data());
    attend_ref(&rb, 1, c.view32, 1, 64, 0.125f, work.data());
    for (int j = 0; j < 64; ++j) EXPECT_FLOAT_EQ(a[j], b[j]) << j;
}

// Prefill tiles: consecutive tokens (causal limits p+1, p+2, ...) times the heads of a group.
TEST(Attention, DispatchedMatchesReferenceTokenTiles) {
    std::mt19937 rng(6);
    for (int head_dim : {64, 128})
        for (int rows = 1; rows <= kAttnMaxRows; ++rows)
            for (int first : {1, 15, 250, 300}) {
                std::vector<int> n_kv(rows);
                const int heads = rows % 3 == 0 ? 3 : 1;  // rows = tokens x heads
                for (int r = 0; r < rows; ++r) n_kv[r] = first + r / heads;
                compare(head_dim, rows, n_kv, rng);
            }
}

// A row split into parts of whole blocks (some empty for the shorter rows), merged, equals the whole row.
TEST(Attention, PartsMergeToWholeRow) {
    std::mt19937 rng(8);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int head_dim = 64, bs = 16, kv_dim = 2 * head_dim;
    for (int n_parts : {2, 3, 5})
        for (int n_kv0 : {1, 20, 300, 600}) {
            const int rows_n = 3;
            std::vector<int> n_kv = {n_kv0, n_kv0 + 1, n_kv0 + 17};
            Cache c = make_cache(rng, n_kv.back(), kv_dim, bs);
            std::vector<float> q(rows_n * head_dim), ref(q.size());
            std::vector<float> parts(static_cast<size_t>(rows_n * n_parts * head_dim)), stats(rows_n * n_parts * 2);
            std::vector<float> work(static_cast<size_t>(attend_work_floats(head_dim)));
            for (auto& x : q) x = nd(rng);
            std::vector<AttnRow> whole(rows_n);
            for (int r = 0; r < rows_n; ++r) whole[r] = {q.data() + r * head_dim, ref.data() + r * head_dim, n_kv[r]};
            attend_ref(whole.data(), rows_n, c.view, 1, head_dim, 0.125f, work.data());
            const int nb = (n_kv.back() + bs - 1) / bs;
            for (bool use_ref : {false, true}) {
                for (int p = 0; p < n_parts; ++p) {
                    const int b0 = nb * p / n_parts * bs, b1 = nb * (p + 1) / n_parts * bs;
                    std::vector<AttnRow> rows(rows_n);
                    for (int r = 0; r < rows_n; ++r) {
                        const int slot = r * n_parts + p;
                        rows[r] = {q.data() + r * head_dim, parts.data() + slot * head_dim,
                                   std::max(b0, std::min(n_kv[r], b1)), b0, stats.data() + slot * 2};
                    }
                    if (use_ref)
                        attend_ref(rows.data(), rows_n, c.view, 1, head_dim, 0.125f, work.data());
                    else
                        attend(rows.data(), rows_n, c.view, 1, head_dim, 0.125f, work.data());
                }
                for (int r = 0; r < rows_n; ++r) {
                    std::vector<float> out(head_dim);
                    merge_partials(parts.data() + r * n_parts * head_dim, head_dim, stats.data() + r * n_parts * 2,
                                   n_parts, head_dim, out.data());
                    for (int j = 0; j < head_dim; ++j)
                        ASSERT_NEAR(out[j], ref[r * head_dim + j], 2e-5f * (1 + std::abs(ref[r * head_dim + j])))
                            << "parts " << n_parts << " n_kv " << n_kv[r] << " ref " << use_ref << " j " << j;
                }
            }
        }
}

// Sliding-window rows (each sees only cells [cell_first, n_kv)) against a naive softmax written here, for the
// kernel and the reference, whole and split into parts.
TEST(Attention, SlidingWindowRows) {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int head_dim = 64, bs = 16, kv_dim = 2 * head_dim;
    for (int window : {1, 7, 32, 300})
        for (int first_pos : {0, 5, 40, 333}) {
            const int rows_n = 12;  // 4 tokens x 3 heads
            std::vector<int> n_kv(rows_n), cell_first(rows_n);
            for (int r = 0; r < rows_n; ++r) {
                n_kv[r] = first_pos + r / 3 + 1;
                cell_first[r] = std::max(0, n_kv[r] - window);
            }
            Cache c = make_cache(rng, n_kv.back(), kv_dim, bs);
            std::vector<float> q(rows_n * head_dim), out(q.size()), ref(q.size()), naive(q.size());
            std::vector<float> work(static_cast<size_t>(attend_work_floats(head_dim)));
            for (auto& x : q) x = nd(rng);
            for (int r = 0; r < rows_n; ++r) {
                std::vector<double> p;
                double mx = -1e300, sum = 0;
                for (int cell = cell_first[r]; cell < n_kv[r]; ++cell) {
                    double d = 0;
                    for (int j = 0; j < head_dim; ++j)
                        d += q[r * head_dim + j] * c.kb[cell / bs][(head_dim + j) * bs + cell % bs];
                    p.push_back(d * 0.125);
                    mx = std::max(mx, p.back());
                }
                for (auto& x : p) sum += (x = std::exp(x - mx));
                for (int j = 0; j < head_dim; ++j) {
                    double acc = 0;
                    for (size_t i = 0; i < p.size(); ++i) {
                        const int cell = cell_first[r] + static_cast<int>(i);
                        acc += p[i] * c.vb[cell / bs][head_dim + j + (cell % bs) * kv_dim];
                    }
                    naive[r * head_dim + j] = static_cast<float>(acc / sum);
                }
            }
            const int begin = *std::min_element(cell_first.begin(), cell_first.end()) / bs * bs;
            std::vector<AttnRow> rows(rows_n), rows_ref(rows_n);
            for (int r = 0; r < rows_n; ++r) {
                rows[r] = {q.data() + r * head_dim, out.data() + r * head_dim, n_kv[r], begin, nullptr, cell_first[r]};
                rows_ref[r] = rows[r];
                rows_ref[r].out = ref.data() + r * head_dim;
            }
            attend(rows.data(), rows_n, c.view, 1, head_dim, 0.125f, work.data());
            attend_ref(rows_ref.data(), rows_n, c.view, 1, head_dim, 0.125f, work.data());
            // Two parts split at a block boundary, merged.
            const int nb = (n_kv.back() + bs - 1) / bs, mid = std::max(begin, nb / 2 * bs);
            std::vector<float> parts(rows_n * 2 * head_dim), stats(rows_n * 4), merged(q.size());
            for (int p = 0; p < 2; ++p) {
                std::vector<AttnRow> pr(rows_n);
                for (int r = 0; r < rows_n; ++r)
                    pr[r] = {q.data() + r * head_dim, parts.data() + (r * 2 + p) * head_dim,
                             p == 0 ? std::min(n_kv[r], mid) : n_kv[r], p == 0 ? begin : mid,
                             stats.data() + (r * 2 + p) * 2, cell_first[r]};
                if (p == 0 && mid == begin) {  // empty first part
                    for (int r = 0; r < rows_n; ++r) pr[r].n_kv = begin;
                }
                attend(pr.data(), rows_n, c.view, 1, head_dim, 0.125f, work.data());
            }
            for (int r = 0; r < rows_n; ++r)
                merge_partials(parts.data() + r * 2 * head_dim, head_dim, stats.data() + r * 4, 2, head_dim,
                               merged.data() + r * head_dim);
            for (int i = 0; i < rows_n * head_dim; ++i) {
                const float e = naive[i], tol = 2e-5f * (1 + std::abs(e));
                ASSERT_NEAR(out[i], e, tol) << "window " << window << " first " << first_pos << " i " << i;
                ASSERT_NEAR(ref[i], e, tol) << "window " << window << " first " << first_pos << " i " << i;
                ASSERT_NEAR(merged[i], e, tol) << "window " << window << " first " << first_pos << " i " << i;
            }
        }
}

TEST(Attention, RejectsBadTiles) {
    std::mt19937 rng(7);
    Cache c = make_cache(rng, 16, 64, 16);
    std::vector<float> q(64), out(64), work(static_cast<size_t>(attend_work_floats(64)));
    AttnRow row{q.data(), out.data(), 0};
    EXPECT_THROW(attend(&row, 1, c.view, 0, 64, 1.0f, work.data()), Error);
    row.n_kv = 1;
    EXPECT_THROW(attend(&row, 0, c.view, 0, 64, 1.0f, work.data()), Error);
    EXPECT_THROW(attend(&row, kAttnMaxRows + 1, c.view, 0, 64, 1.0f, work.data()), Error);
    row.cell_begin = 8;  // not block-aligned
    row.n_kv = 16;
    EXPECT_THROW(attend(&row, 1, c.view, 0, 64, 1.0f, work.data()), Error);
    row.cell_begin = 16;  // empty range without a partial output
    EXPECT_THROW(attend(&row, 1, c.view, 0, 64, 1.0f, work.data()), Error);
}

}  // namespace
}  // namespace hearth
