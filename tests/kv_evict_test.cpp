// KV eviction: the cache's compaction (each head keeps its own cells, in place, for every KV type; shared prefix
// blocks are copied, not overwritten; later positions follow the kept cells), SnapKV's option parsing and
// limits, and SnapKV on stories260K: eviction keeps the far-back text that the prompt's end points at, where
// keeping the most recent cells loses it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>

#include "base/error.h"
#include "model/forward.h"
#include "lab/needle.h"
#include "model/kv_evict.h"
#include "model_test_util.h"
#include "runtime/kv_cache.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

KvCacheConfig small_config(KvType type) {
    KvCacheConfig c;
    c.n_layer = 2;
    c.kv_dim = 32;
    c.head_dim = 8;
    c.block_size = 16;
    c.n_blocks = 24;
    c.type = type;
    c.residual = 16;
    return c;
}

// Writes n random positions of `seq` in every layer, and ages them as a batch at position n would.
void fill(KvCache& kv, int32_t seq, int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> k(32), v(32);
    kv.reserve(seq, n);
    for (int p = 0; p < n; ++p)
        for (int il = 0; il < 2; ++il) {
            for (int d = 0; d < 32; ++d) k[d] = nd(rng) + (d % 5 == 0 ? 3.0f : 0.0f), v[d] = nd(rng);
            kv.write(il, seq, p, k.data(), v.data());
        }
    kv.age(seq, n);
}

// K and V of one head of one cell, as attention sees them.
std::vector<float> head_of(const KvCache& kv, int il, int32_t seq, int32_t cell, int h) {
    std::vector<float> k(32), v(32), out;
    kv.read(il, seq, cell, k.data(), v.data());
    out.insert(out.end(), k.begin() + h * 8, k.begin() + (h + 1) * 8);
    out.insert(out.end(), v.begin() + h * 8, v.begin() + (h + 1) * 8);
    return out;
}

TEST(KvCacheEviction, CompactKeepsEachHeadsCellsForEveryType) {
    for (KvType type : {KvType::F32, KvType::F16, KvType::Q8, KvType::Q4, KvType::Rot4, KvType::Rot3}) {
        SCOPED_TRACE(kv_type_name(type));
        KvCache kv(small_config(type));
        fill(kv, 0, 100, 7);
        EXPECT_EQ(kv.is_quantized(kv.blocks(0)[0]), kv_type_quantized(type));
        // Each (layer, head) keeps its own ascending 40 of the 100 cells.
        constexpr int kKeep = 40;
        std::vector<int32_t> keep(2 * 4 * kKeep);
        std::mt19937 rng(11);
        std::vector<std::vector<float>> want(keep.size());
        for (int r = 0; r < 8; ++r) {
            std::vector<int32_t> all(100);
            std::iota(all.begin(), all.end(), 0);
            std::shuffle(all.begin(), all.end(), rng);
            std::sort(all.begin(), all.begin() + kKeep);
            std::copy(all.begin(), all.begin() + kKeep, keep.begin() + r * kKeep);
            for (int j = 0; j < kKeep; ++j) want[r * kKeep + j] = head_of(kv, r / 4, 0, keep[r * kKeep + j], r % 4);
        }
        const int64_t free_before = kv.free_blocks();
        kv.compact(0, kKeep, keep.data());
        EXPECT_TRUE(kv.is_compacted(0));
        EXPECT_EQ(kv.seq_len(0), 100);  // positions go on where they were
        EXPECT_EQ(kv.seq_cells(0), kKeep);
        EXPECT_EQ(kv.blocks(0).size(), 3u);
        EXPECT_EQ(kv.free_blocks(), free_before + 4);
        for (int r = 0; r < 8; ++r)
            for (int j = 0; j < kKeep; ++j) {
                const std::vector<float> got = head_of(kv, r / 4, 0, j, r % 4);
                for (size_t i = 0; i < got.size(); ++i)
                    // The kept value is stored again as f16 (exact for f32; one f16 rounding otherwise).
                    ASSERT_NEAR(got[i], want[r * kKeep + j][i], 4e-3f * (1.0f + std::fabs(want[r * kKeep + j][i])))
                        << "layer " << r / 4 << " head " << r % 4 << " kept " << j << " value " << i;
            }
        // Position 100 goes to cell 40; a cut below the compacted length is refused, one above it works.
        kv.reserve(0, 101);
        EXPECT_EQ(kv.cell(0, 100), kKeep);
        kv.prepare_write(0, 100);
        std::vector<float> k(32, 0.5f), v(32, -0.25f);
        kv.write(1, 0, 100, k.data(), v.data());
        const std::vector<float> back = head_of(kv, 1, 0, kKeep, 2);
        for (int i = 0; i < 8; ++i) {
            EXPECT_NEAR(back[i], 0.5f, 1e-3f);
            EXPECT_NEAR(back[8 + i], -0.25f, 1e-3f);
        }
        EXPECT_NE(error_of([&] { kv.truncate(0, 60); }).find("cannot be cut back to 60"), std::string::npos);
        kv.truncate(0, 100);
        EXPECT_EQ(kv.seq_cells(0), kKeep);
        kv.truncate(0, 0);
        EXPECT_FALSE(kv.is_compacted(0));
        EXPECT_EQ(kv.free_blocks(), 24);
        EXPECT_EQ(kv.residual_slots(), 0);
    }
}

TEST(KvCacheEviction, SharedPrefixBlocksAreCopiedNotOverwritten) {
    KvCache kv(small_config(KvType::F16));
    fill(kv, 0, 64, 3);
    std::vector<int32_t> tokens(64);
    std::iota(tokens.begin(), tokens.end(), 5);
    kv.publish(0, tokens.data(), 64);
    ASSERT_EQ(kv.attach_prefix(1, tokens.data(), 63), 48);
    std::vector<std::vector<float>> before;
    for (int c = 0; c < 48; ++c) before.push_back(head_of(kv, 0, 0, c, 1));
    // Sequence 1 keeps cells 1, 3, 5, ... of its 48: its first two blocks are rewritten, so they must be its own.
    std::vector<int32_t> keep(2 * 4 * 24);
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = static_cast<int32_t>(2 * (i % 24) + 1);
    kv.compact(1, 24, keep.data());
    EXPECT_NE(kv.blocks(1)[0], kv.blocks(0)[0]);
    for (int c = 0; c < 48; ++c) EXPECT_EQ(head_of(kv, 0, 0, c, 1), before[c]) << c;
    for (int j = 0; j < 24; ++j) EXPECT_EQ(head_of(kv, 0, 1, j, 1), before[2 * j + 1]) << j;
    // A compacted sequence is not published (its blocks no longer hold a token prefix).
    const int64_t cached = kv.cached_blocks();
    kv.publish(1, tokens.data(), 48);
    EXPECT_EQ(kv.cached_blocks(), cached);
}

TEST(KvCacheEviction, BadKeepListsAreRefused) {
    KvCache kv(small_config(KvType::F16));
    fill(kv, 0, 40, 5);
    std::vector<int32_t> keep(2 * 4 * 10);
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = static_cast<int32_t>(i % 10);
    keep[3 * 10 + 4] = keep[3 * 10 + 3];  // layer 0 head 3: a repeated cell
    EXPECT_NE(error_of([&] { kv.compact(0, 10, keep.data()); }).find("layer 0 head 3 are not ascending"), std::string::npos);
    keep[3 * 10 + 4] = 4;
    keep[8 * 10 - 1] = 40;  // layer 1 head 3: beyond the cells held
    EXPECT_NE(error_of([&] { kv.compact(0, 10, keep.data()); }).find("[0, 40)"), std::string::npos);
    EXPECT_NE(error_of([&] { kv.compact(0, 41, keep.data()); }).find("cannot keep 41"), std::string::npos);
    EXPECT_NE(error_of([&] { kv.compact(7, 10, keep.data()); }).find("holds nothing"), std::string::npos);
    EXPECT_FALSE(kv.is_compacted(0));
}

TEST(KvEvict, ParsesTheMethodsAndRefusesBadBudgets) {
    EXPECT_EQ(parse_kv_evict("snapkv:256").budget, 256);
    EXPECT_EQ(parse_kv_evict("snapkv:256").method, KvEvictMethod::SnapKv);
    EXPECT_EQ(parse_kv_evict("recent:100").method, KvEvictMethod::Recent);
    for (const char* bad : {"snapkv:", "snapkv:abc", "snapkv:64x", "h2o:256", "snapkv:32", "snapkv:-5", "256"})
        EXPECT_NE(error_of([&] { parse_kv_evict(bad); }).find("is not snapkv:BUDGET or recent:BUDGET"), std::string::npos) << bad;
    EXPECT_NE(error_of([] { check_kv_evict(parse_kv_evict("snapkv:512"), 512); }).find("not below the context size 512"),
              std::string::npos);
    EXPECT_EQ(error_of([] { check_kv_evict(parse_kv_evict("snapkv:511"), 512); }), "");
}

// Logits of each of `cont` fed one token at a time after the prompt (positions go on from the prompt's end).
std::vector<std::vector<float>> continue_logits(Context& ctx, int32_t from, const std::vector<int32_t>& cont) {
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < cont.size(); ++i) {
        Batch b;
        b.add(cont[i], from + static_cast<int32_t>(i), 0, true);
        out.push_back(ctx.decode(b));
    }
    return out;
}

TEST(KvEvict, KeepingEveryCellChangesNothing) {
    const Model& m = test::stories_model();
    const std::vector<int32_t> prompt = test::story_prompt(150), cont = {300, 301, 302, 303, 304, 305};
    for (KvType type : {KvType::F16, KvType::Q8}) {
        SCOPED_TRACE(kv_type_name(type));
        ContextParams cp;
        cp.n_ctx = 512;
        cp.n_threads = 2;
        cp.kv_type = type;
        Context plain(m, cp), kept(m, cp);
        for (Context* ctx : {&plain, &kept}) {
            Batch b;
            for (int32_t i = 0; i < 150; ++i) b.add(prompt[i], i, 0, i == 149);
            ctx->decode(b);
        }
        // compact() with every cell kept (each head its own copy of the identity) leaves the same cache.
        std::vector<int32_t> all(static_cast<size_t>(m.hp.n_layer * m.hp.n_head_kv) * 150);
        for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int32_t>(i % 150);
        kept.kv().compact(0, 150, all.data());
        EXPECT_TRUE(kept.kv().is_compacted(0));
        const auto a = continue_logits(plain, 150, cont), b = continue_logits(kept, 150, cont);
        for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "token " << i;
    }
}

TEST(KvEvict, SnapKvSelectsPerHeadAndDecodeGoesOn) {
    const Model& m = test::stories_model();
    const std::vector<int32_t> prompt = test::story_prompt(300);
    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 2;
    Context ctx(m, cp);
    KvEvictParams p = parse_kv_evict("snapkv:96");
    // Without the observed window the vote cannot run: refused, naming what is missing.
    {
        Batch b;
        for (int32_t i = 0; i < 300; ++i) b.add(prompt[i], i, 0, i == 299);
        ctx.decode(b);
        EXPECT_NE(error_of([&] { kv_evict(ctx, 0, p); }).find("were not observed"), std::string::npos);
        ctx.kv().clear();
    }
    kv_evict_observe(ctx, 0, 300, p);
    Batch b;
    for (int32_t i = 0; i < 300; ++i) b.add(prompt[i], i, 0, i == 299);
    ctx.decode(b);
    const KvEvictResult r = kv_evict(ctx, 0, p);
    EXPECT_EQ(r.cells_before, 300);
    EXPECT_EQ(r.cells_after, 96);
    EXPECT_EQ(ctx.kv().seq_len(0), 300);
    EXPECT_EQ(ctx.observed_queries(0), nullptr);  // forgotten once used
    EXPECT_EQ(kv_evict(ctx, 0, p).cells_after, 96);  // fits the budget now: nothing to do
    const auto next = continue_logits(ctx, 300, {5, 6, 7});
    for (const auto& row : next)
        for (float x : row) ASSERT_TRUE(std::isfinite(x));
    EXPECT_EQ(ctx.kv().seq_cells(0), 99);
}

// The needle (a made-up fact) sits 20 to 70 tokens before the question at the end of ~480 tokens of stories260K's
// own text: this model retrieves only that close (it is 260K parameters), but it does retrieve: the needle
// raises the answer's log-probability by up to 7 nats. At a budget of 64 cells, the most recent 60 cells lose
// most of the needles, while SnapKV's vote keeps them.
TEST(KvEvict, SnapKvKeepsTheNeedleWhereRecentCellsLoseIt) {
    const Model& m = test::stories_model();
    const tok::Vocab vocab = tok::Vocab::from_gguf(m.file);
    NeedleSpec spec;
    spec.prefix = {vocab.bos()};
    const std::vector<int32_t> hay = vocab.encode(test::read_file(std::string(HEARTH_SOURCE_DIR) + "/tests/data/stories_haystack.txt"), false, false);
    ASSERT_GE(hay.size(), 440u);
    spec.haystack.assign(hay.begin(), hay.begin() + 440);
    spec.needle = vocab.encode(" Tom had a pet frog named Pip.", false, false);
    spec.question = vocab.encode(" Tom had a pet frog named", false, false);
    spec.answer = vocab.encode(" Pip", false, false);
    spec.depths = {0.84, 0.88, 0.92, 0.96};
    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 2;
    const NeedleResult snap = needle_check(m, cp, spec, parse_kv_evict("snapkv:64"));
    const NeedleResult recent = needle_check(m, cp, spec, parse_kv_evict("recent:64"));
    ASSERT_EQ(snap.depths.size(), 4u);
    for (const NeedleDepth& d : snap.depths) {
        EXPECT_GT(d.logp_full, d.logp_without - 1.0) << d.depth;  // the needle never hurts much
        EXPECT_EQ(d.kept_cells, 64);
    }
    EXPECT_GT(snap.depths.back().logp_full, snap.depths.back().logp_without + 4.0);  // retrieval signal
    EXPECT_GT(snap.gain_kept, 0.7);
    EXPECT_LT(recent.gain_kept, 0.5);
    std::printf("needle gain kept at 64 cells: snapkv %.3f, recent %.3f\n", snap.gain_kept, recent.gain_kept);
}

}  // namespace
}  // namespace hearth
