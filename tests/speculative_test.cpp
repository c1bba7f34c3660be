// Prompt lookup's drafts: the continuation of the latest earlier occurrence of the longest recurring suffix.
// Speculative sampling's rule: whatever the draft distribution, the emitted tokens follow the target's.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/sampler.h"
#include "runtime/speculative.h"
#include "test_util.h"

namespace hearth {
namespace {

using Tokens = std::vector<int32_t>;

TEST(Speculative, LookupCopiesWhatFollowedTheLastWords) {
    // "1 2 3 4 5 9 ... 1 2 3": the suffix 1 2 3 occurred at the start, followed by 4 5 9.
    EXPECT_EQ(lookup_draft({1, 2, 3, 4, 5, 9, 7, 1, 2, 3}, 8), (Tokens{4, 5, 9, 7, 1, 2, 3}));
    EXPECT_EQ(lookup_draft({1, 2, 3, 4, 5, 9, 7, 1, 2, 3}, 2), (Tokens{4, 5}));
    // Nothing recurs: no draft; too short a history or no room: none either.
    EXPECT_TRUE(lookup_draft({1, 2, 3, 4}, 8).empty());
    EXPECT_TRUE(lookup_draft({5}, 8).empty());
    EXPECT_TRUE(lookup_draft({1, 2, 1, 2}, 0).empty());
}

TEST(Speculative, LookupPrefersTheLongestSuffixThenTheLatestOccurrence) {
    // The last token 3 occurs twice before; the two-token suffix "2 3" only once (followed by 8).
    EXPECT_EQ(lookup_draft({2, 3, 8, 5, 3, 6, 2, 3}, 1), (Tokens{8}));
    // Only the one-token suffix recurs: its latest earlier occurrence wins (followed by 6, not 8).
    EXPECT_EQ(lookup_draft({3, 8, 5, 3, 6, 4, 3}, 1), (Tokens{6}));
    // Longer than max_ngram: only the last max_ngram tokens are matched.
    EXPECT_EQ(lookup_draft({9, 1, 2, 7, 0, 1, 2, 5}, 1, 2).size(), 0u);
    EXPECT_EQ(lookup_draft({9, 1, 2, 7, 0, 1, 2}, 1, 2), (Tokens{7}));
}

TEST(Speculative, LookupContinuationMayRunIntoTheSuffix) {
    // A repeating pattern: the draft continues it, reading tokens that are part of the suffix itself.
    EXPECT_EQ(lookup_draft({4, 4, 4}, 5), (Tokens{4}));
    EXPECT_EQ(lookup_draft({1, 2, 1, 2, 1}, 5), (Tokens{2, 1}));
}

TEST(Speculative, VerifyRuleEmitsTheTargetDistribution) {
    // q misses token 4 (which p has) and has token 5 (which p lacks), and overweights token 0.
    const TokenDist p = {{0, 0.10}, {1, 0.30}, {2, 0.25}, {3, 0.15}, {4, 0.20}};
    const TokenDist q = {{0, 0.50}, {1, 0.20}, {2, 0.05}, {3, 0.15}, {5, 0.10}};
    SamplerParams sp;
    sp.seed = 42;
    Sampler target(sp);
    std::mt19937_64 rng(7);
    std::discrete_distribution<int> draw_q({0.50, 0.20, 0.05, 0.15, 0.0, 0.10});
    constexpr int64_t kN = 200000;
    std::vector<int64_t> counts(6, 0);
    int64_t accepted_n = 0;
    for (int64_t i = 0; i < kN; ++i) {
        bool accepted = false;
        const int32_t d = draw_q(rng);
        const int32_t t = speculative_verify(p, q, d, target, accepted);
        ASSERT_GE(t, 0);
        ASSERT_LT(t, 6);
        if (accepted) {
            ASSERT_EQ(t, d);
        }
        ++counts[t];
        accepted_n += accepted;
    }
    EXPECT_EQ(counts[5], 0);  // p gives it nothing
    int df = 0;
    const double stat = test::chi_square({0.10, 0.30, 0.25, 0.15, 0.20, 0.0}, counts, kN, &df);
    EXPECT_EQ(df, 4);
    EXPECT_LT(stat, df + 5 * std::sqrt(2.0 * df)) << "chi-square " << stat;
    // Acceptance is sum(min(p, q)) = 0.1 + 0.2 + 0.05 + 0.15 = 0.5; its standard error here is 0.0011.
    EXPECT_NEAR(static_cast<double>(accepted_n) / kN, 0.5, 0.006);
    // Emitting the draft always (the distribution of q) is what the test would catch.
    std::vector<int64_t> q_counts = {100000, 40000, 10000, 30000, 0, 20000};
    EXPECT_GT(test::chi_square({0.10, 0.30, 0.25, 0.15, 0.20, 0.0}, q_counts, kN, &df), 1000.0);
}

}  // namespace
}  // namespace hearth
