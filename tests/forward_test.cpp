// Batch semantics of the forward pass: several sequences in one pass, thread-count determinism, the paged
// cache (truncate and re-decode), and invalid batches.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "model/forward.h"
#include "test_util.h"

namespace hearth {
namespace {

std::unique_ptr<Model> load_stories() { return Model::load(test::shared("models/stories260K.gguf")); }

double max_diff(const float* a, const float* b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(std::abs(a[i] - b[i])));
    return m;
}

const std::vector<int32_t> kA = {1, 403, 407, 261, 378, 29, 306, 259, 1430 % 512, 400};
const std::vector<int32_t> kB = {1, 24, 88, 301, 42, 17};

// The tests comparing two ways of computing the same logits (batching, thread splits) use an f32 cache: they
// test the paths, and a last-bit difference in a K value between two paths can flip its rounding to f16.
std::vector<float> run_alone(const Model& m, const std::vector<int32_t>& toks, int threads,
                             KvType kv_type = KvType::F32) {
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = threads;
    cp.kv_block_size = 4;  // several blocks per sequence
    cp.kv_type = kv_type;
    Context ctx(m, cp);
    Batch b;
    for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], static_cast<int32_t>(i), 0, true);
    return ctx.decode(b);
}

TEST(Forward, TwoSequencesInOneBatchEqualEachAlone) {
    auto m = load_stories();
    const int64_t V = m->hp.n_vocab;
    const std::vector<float> a = run_alone(*m, kA, 2), b = run_alone(*m, kB, 2);
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.kv_block_size = 4;
    cp.kv_type = KvType::F32;
    Context ctx(*m, cp);
    // Interleave the two sequences' entries in one batch (seq ids 5 and 9).
    Batch batch;
    std::vector<std::pair<int, size_t>> order;
    for (size_t i = 0; i < std::max(kA.size(), kB.size()); ++i) {
        if (i < kA.size()) batch.add(kA[i], static_cast<int32_t>(i), 5, true), order.push_back({0, i});
        if (i < kB.size()) batch.add(kB[i], static_cast<int32_t>(i), 9, true), order.push_back({1, i});
    }
    const std::vector<float> both = ctx.decode(batch);
    ASSERT_EQ(both.size(), (kA.size() + kB.size()) * V);
    for (size_t j = 0; j < order.size(); ++j) {
        const float* want = (order[j].first == 0 ? a : b).data() + order[j].second * V;
        EXPECT_LT(max_diff(both.data() + j * V, want, V), 1e-4) << "entry " << j;
    }
    // Then each sequence continues by one token, both in one batch.
    Batch next;
    next.add(77, static_cast<int32_t>(kA.size()), 5, true);
    next.add(78, static_cast<int32_t>(kB.size()), 9, true);
    const std::vector<float> cont = ctx.decode(next);
    std::vector<int32_t> a2 = kA, b2 = kB;
    a2.push_back(77);
    b2.push_back(78);
    const std::vector<float> a_full = run_alone(*m, a2, 2), b_full = run_alone(*m, b2, 2);
    EXPECT_LT(max_diff(cont.data(), a_full.data() + kA.size() * V, V), 1e-4);
    EXPECT_LT(max_diff(cont.data() + V, b_full.data() + kB.size() * V, V), 1e-4);
}

TEST(Forward, ThreadCountDoesNotChangeResults) {
    auto m = load_stories();
    const std::vector<float> one = run_alone(*m, kA, 1), two = run_alone(*m, kA, 2), three = run_alone(*m, kA, 3);
    EXPECT_EQ(one, two);
    EXPECT_EQ(one, three);
}

// Decode with a thread count that does not divide the attention items splits each row's cells across
// threads and merges the parts; the logits match the single-thread ones to rounding.
TEST(Forward, DecodeSplitAcrossThreadsMatchesOneThread) {
    auto m = load_stories();
    const int64_t V = m->hp.n_vocab;
    ASSERT_NE(m->hp.n_head_kv % 3, 0) << "pick a thread count that does not divide the kv heads";
    std::vector<std::unique_ptr<Context>> ctx;
    for (int threads : {1, 3}) {
        ContextParams cp;
        cp.n_ctx = 256;
        cp.n_threads = threads;
        cp.kv_block_size = 4;
        cp.kv_type = KvType::F32;
        ctx.push_back(std::make_unique<Context>(*m, cp));
    }
    int32_t tok = 1;
    for (int32_t pos = 0; pos < 60; ++pos) {
        std::vector<float> logits[2];
        for (int i = 0; i < 2; ++i) {
            Batch b;
            b.add(tok, pos, 0, true);
            logits[i] = ctx[i]->decode(b);
        }
        ASSERT_LT(max_diff(logits[0].data(), logits[1].data(), V), 1e-4) << "position " << pos;
        tok = static_cast<int32_t>(std::max_element(logits[0].begin(), logits[0].end()) - logits[0].begin());
    }
}

TEST(Forward, OneBatchEqualsTokenByToken) {
    auto m = load_stories();
    const int64_t V = m->hp.n_vocab;
    const std::vector<float> batch = run_alone(*m, kA, 2);
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.kv_type = KvType::F32;
    Context ctx(*m, cp);
    for (size_t i = 0; i < kA.size(); ++i) {
        Batch b;
        b.add(kA[i], static_cast<int32_t>(i), 0, true);
        const std::vector<float> l = ctx.decode(b);
        EXPECT_LT(max_diff(l.data(), batch.data() + i * V, V), 1e-4) << "position " << i;
    }
}

// The f16 cache (the default) against the f32 one on the trained model: K and V rounded to 11 significant bits
// move the logits by a small fraction of their range, the cache takes half the bytes, and it is what the
// context makes unless told otherwise.
TEST(Forward, F16CacheStaysCloseToF32) {
    auto m = load_stories();
    const int64_t V = m->hp.n_vocab;
    const std::vector<float> f32 = run_alone(*m, kA, 2), f16 = run_alone(*m, kA, 2, KvType::F16);
    float max_abs = 0;
    for (const float x : f32) max_abs = std::max(max_abs, std::fabs(x));
    for (size_t i = 0; i < kA.size(); ++i) {
        const float d = max_diff(f16.data() + i * V, f32.data() + i * V, V);
        EXPECT_LT(d, 5e-3f * max_abs) << "position " << i;
        EXPECT_GT(d, 0.0f) << "position " << i << ": identical logits, the cache cannot have been f16";
    }
    ContextParams cp;
    cp.n_ctx = 64;
    Context f16_ctx(*m, cp), f32_ctx(*m, ContextParams{.n_ctx = 64, .kv_type = KvType::F32});
    EXPECT_EQ(f16_ctx.kv().config().type, KvType::F16);
    EXPECT_EQ(f16_ctx.kv().bytes() * 2, f32_ctx.kv().bytes());
}

TEST(Forward, TruncateAndRedecodeReusesTheCache) {
    auto m = load_stories();
    const int64_t V = m->hp.n_vocab;
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 2;
    cp.kv_block_size = 4;
    Context ctx(*m, cp);
    Batch b;
    for (size_t i = 0; i < kA.size(); ++i) b.add(kA[i], static_cast<int32_t>(i), 0, i + 1 == kA.size());
    const std::vector<float> first = ctx.decode(b);
    // Drop the last 3 positions and decode them again: same logits.
    const int32_t keep = static_cast<int32_t>(kA.size()) - 3;
    const int64_t free_before = ctx.kv().free_blocks();
    ctx.kv().truncate(0, keep);
    EXPECT_EQ(ctx.kv().seq_len(0), keep);
    EXPECT_GE(ctx.kv().free_blocks(), free_before);
    Batch again;
    for (size_t i = static_cast<size_t>(keep); i < kA.size(); ++i)
        again.add(kA[i], static_cast<int32_t>(i), 0, i + 1 == kA.size());
    const std::vector<float> second = ctx.decode(again);
    EXPECT_LT(max_diff(first.data(), second.data(), V), 1e-5);
    ctx.kv().truncate(0, 0);
    EXPECT_EQ(ctx.kv().seq_len(0), 0);
    EXPECT_EQ(ctx.kv().free_blocks(), 16);
}

TEST(Forward, InvalidBatchesAreRejected) {
    auto m = load_stories();
    ContextParams cp;
    cp.n_ctx = 8;
    cp.n_threads = 1;
    Context ctx(*m, cp);
    auto expect_error = [&](const Batch& b, const char* needle) {
        try {
            ctx.decode(b);
            ADD_FAILURE() << "no error for " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    Batch b;
    b.add(512, 0, 0, true);
    expect_error(b, "token id 512");
    b.clear();
    b.add(1, 3, 0, true);  // skips positions 0..2
    expect_error(b, "does not continue");
    b.clear();
    b.add(1, 0, -1, true);
    expect_error(b, "negative");
    b.clear();
    for (int i = 0; i < 9; ++i) b.add(1, i, 0, false);
    expect_error(b, "context");
    // Nothing was reserved by the failed batches.
    EXPECT_EQ(ctx.kv().seq_len(0), 0);
    EXPECT_THROW(Context(*m, ContextParams{.n_ctx = 0}), Error);
    EXPECT_THROW(Context(*m, ContextParams{.n_ctx = 8, .n_threads = -1}), Error);
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

// Every architecture's F16 conformance model over 80 tokens (past gemma3's 32-token window): one prefill
// batch on 2 threads equals decoding token by token on 3 threads (decode attention split into parts, the
// sliding window cutting into them, MoE routing of one token vs many).
class ForwardArch : public ::testing::TestWithParam<std::string> {};

TEST_P(ForwardArch, PrefillEqualsTokenByTokenAcrossThreads) {
    const std::string arch = GetParam();
    auto m = Model::load(test::shared("conformance/" + arch + "/" + arch + ".F16.gguf"));
    const int64_t V = m->hp.n_vocab;
    std::vector<int32_t> toks;
    for (int i = 0; i < 80; ++i) toks.push_back(i == 0 ? 1 : (i * 37 + 11) % static_cast<int>(V));
    ContextParams cp;
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.kv_block_size = 16;
    Context batch_ctx(*m, cp);
    Batch b;
    for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], static_cast<int32_t>(i), 0, true);
    const std::vector<float> all = batch_ctx.decode(b);
    cp.n_threads = 3;
    Context step_ctx(*m, cp);
    for (size_t i = 0; i < toks.size(); ++i) {
        Batch one;
        one.add(toks[i], static_cast<int32_t>(i), 0, true);
        const std::vector<float> l = step_ctx.decode(one);
        ASSERT_LT(max_diff(l.data(), all.data() + i * V, V), 1e-3) << arch << " position " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Conformance, ForwardArch,
                         ::testing::Values("qwen2", "qwen3", "qwen3moe", "gemma3", "granite", "phi3"));

}  // namespace
}  // namespace hearth
