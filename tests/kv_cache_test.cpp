// The paged KV cache's prefix index: publishing full blocks, attaching the longest matching chain, reference
// counts (shared blocks survive their sequence, free_blocks counts unused cached blocks), least-recently-used
// eviction when the pool needs blocks, the refusal to rewrite a shared cell, and that attached KV gives the
// same logits as computing the prefix again.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "base/error.h"
#include "model/forward.h"
#include "runtime/kv_cache.h"
#include "model_test_util.h"
#include "test_util.h"

namespace hearth {
namespace {

KvCacheConfig small_config(int64_t n_blocks, int block_size = 4) {
    KvCacheConfig c;
    c.n_layer = 1;
    c.kv_dim = 2;
    c.block_size = block_size;
    c.n_blocks = n_blocks;
    return c;
}

std::vector<int32_t> iota_tokens(int n, int32_t first) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    std::iota(t.begin(), t.end(), first);
    return t;
}

TEST(KvCachePrefix, PublishedBlocksOutliveTheirSequenceAndAttach) {
    KvCache kv(small_config(8));
    const std::vector<int32_t> toks = iota_tokens(10, 100);  // 2 full blocks of 4 + 2 cells
    kv.reserve(0, 10);
    kv.publish(0, toks.data(), 10);
    EXPECT_EQ(kv.cached_blocks(), 2);
    EXPECT_EQ(kv.evictable_blocks(), 0);  // sequence 0 still uses them
    const std::vector<int32_t> blocks0 = kv.blocks(0);
    EXPECT_TRUE(kv.is_shared(0, 0));
    EXPECT_TRUE(kv.is_shared(0, 7));
    EXPECT_FALSE(kv.is_shared(0, 8));  // the partial block is its own
    kv.truncate(0, 0);
    EXPECT_EQ(kv.evictable_blocks(), 2);
    EXPECT_EQ(kv.free_blocks(), 8);  // cached but unused blocks count as free

    // Same tokens: both full blocks attach (bounded by max_tokens, in whole blocks).
    EXPECT_EQ(kv.attach_prefix(1, toks.data(), 9), 8);
    EXPECT_EQ(kv.seq_len(1), 8);
    EXPECT_EQ(kv.blocks(1), std::vector<int32_t>(blocks0.begin(), blocks0.begin() + 2));
    EXPECT_EQ(kv.evictable_blocks(), 0);
    EXPECT_EQ(kv.free_blocks(), 6);
    EXPECT_EQ(kv.attach_prefix(2, toks.data(), 7), 4);  // only one whole block fits in 7 tokens
    EXPECT_TRUE(kv.is_shared(2, 3));

    // A difference in the second block: only the first attaches; in the first token: nothing does.
    std::vector<int32_t> other = toks;
    other[5] = 7;
    EXPECT_EQ(kv.attach_prefix(3, other.data(), 10), 4);
    other[0] = 7;
    EXPECT_EQ(kv.attach_prefix(4, other.data(), 10), 0);
    EXPECT_EQ(kv.seq_len(4), 0);
    // The same second-block tokens after a different first block are a different key (the parent is part of it).
    std::vector<int32_t> shifted = iota_tokens(8, 50);
    std::copy(toks.begin() + 4, toks.begin() + 8, shifted.begin() + 4);
    EXPECT_EQ(kv.attach_prefix(5, shifted.data(), 8), 0);

    EXPECT_THROW(kv.attach_prefix(1, toks.data(), 8), Error);  // sequence 1 is not empty
    kv.clear();
    EXPECT_EQ(kv.cached_blocks(), 0);
    EXPECT_EQ(kv.free_blocks(), 8);
}

TEST(KvCachePrefix, EvictsLeastRecentlyUsedWhenThePoolNeedsBlocks) {
    KvCache kv(small_config(6));
    const std::vector<int32_t> a = iota_tokens(8, 10), b = iota_tokens(8, 30), c = iota_tokens(8, 60);
    for (int32_t seq : {0, 1}) {
        const auto& t = seq == 0 ? a : b;
        kv.reserve(seq, 8);
        kv.publish(seq, t.data(), 8);
    }
    kv.truncate(0, 0);  // a's blocks released first: older
    kv.truncate(1, 0);
    EXPECT_EQ(kv.evictable_blocks(), 4);
    // Touch a again: now b is the least recently used.
    EXPECT_EQ(kv.attach_prefix(2, a.data(), 8), 8);
    kv.truncate(2, 0);
    // 6 blocks: 2 never used + 4 cached. Taking 4 evicts 2 cached blocks: b's (the deeper one first).
    kv.reserve(3, 16);
    EXPECT_EQ(kv.evictions(), 2);
    EXPECT_EQ(kv.attach_prefix(4, b.data(), 8), 0);
    EXPECT_EQ(kv.attach_prefix(5, a.data(), 8), 8);
    kv.truncate(5, 0);
    // Deeper blocks go first: one more block evicts a's second block, and a's first still attaches.
    kv.reserve(6, 4);
    EXPECT_EQ(kv.evictions(), 3);
    EXPECT_EQ(kv.attach_prefix(7, a.data(), 8), 4);
    // The pool really is full now: in use 4 + 1 + 1, nothing evictable.
    EXPECT_EQ(kv.free_blocks(), 0);
    EXPECT_THROW(kv.reserve(8, 1), Error);
    kv.publish(3, c.data(), 8);  // publishing never allocates
    EXPECT_EQ(kv.free_blocks(), 0);
}

TEST(KvCachePrefix, DuplicateContentIsNotIndexedTwice) {
    KvCache kv(small_config(8));
    const std::vector<int32_t> t = iota_tokens(8, 5);
    // Two sequences compute the same prefix concurrently (neither could attach the other's).
    kv.reserve(0, 8);
    kv.reserve(1, 8);
    kv.publish(0, t.data(), 8);
    kv.publish(1, t.data(), 8);
    EXPECT_EQ(kv.cached_blocks(), 2);
    kv.truncate(1, 0);  // sequence 1's copies were not indexed: they are simply freed
    EXPECT_EQ(kv.evictable_blocks(), 0);
    EXPECT_EQ(kv.free_blocks(), 6);
    kv.truncate(0, 0);
    EXPECT_EQ(kv.evictable_blocks(), 2);
    EXPECT_EQ(kv.free_blocks(), 8);
}

using test::stories_model;

using test::story_prompt;

TEST(KvCachePrefix, AttachedKvGivesTheLogitsOfRecomputation) {
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.kv_block_size = 16;
    Context ctx(stories_model(), cp);
    const std::vector<int32_t> p = story_prompt(45);
    Batch b;
    for (size_t i = 0; i < p.size(); ++i) b.add(p[i], static_cast<int32_t>(i), 0, i + 1 == p.size());
    const std::vector<float> full = ctx.decode(b);
    ctx.kv().publish(0, p.data(), static_cast<int32_t>(p.size()));
    ctx.kv().truncate(0, 0);

    const int32_t got = ctx.kv().attach_prefix(1, p.data(), static_cast<int32_t>(p.size()) - 1);
    ASSERT_EQ(got, 32);
    b.clear();
    for (size_t i = static_cast<size_t>(got); i < p.size(); ++i)
        b.add(p[i], static_cast<int32_t>(i), 1, i + 1 == p.size());
    const std::vector<float>& reused = ctx.decode(b);
    ASSERT_EQ(reused.size(), full.size());
    double diff = 0;
    for (size_t i = 0; i < full.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(full[i] - reused[i])));
    EXPECT_LT(diff, 1e-4);

    // Rewriting a shared cell is refused before anything is computed.
    b.clear();
    b.add(p[5], 5, 1, true);
    try {
        ctx.decode(b);
        ADD_FAILURE() << "rewriting a shared cell was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("shared through the prefix cache"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace hearth
