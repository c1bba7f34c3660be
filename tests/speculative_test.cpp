// Prompt lookup's drafts: the continuation of the latest earlier occurrence of the longest recurring suffix.
#include <gtest/gtest.h>

#include <vector>

#include "runtime/speculative.h"

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

}  // namespace
}  // namespace hearth
