// Runs a grammar over the bytes a model generates and computes, per step, which tokens may come next.
// Written by hand: the packaged parsers recognise text; none computes a token mask for a decoder.
//
// Lowering. Each rule becomes a small automaton over bytes: character classes are split into UTF-8 byte
// ranges (so tokens that end inside a multi-byte character work), references become call edges. A parser
// state is a set of stacks of automaton nodes (a pushdown automaton run nondeterministically), kept in
// closed form: only stacks whose top can consume a byte, plus a flag saying the root may end here.
//
// Token masks (the XGrammar idea, "adaptive token mask cache"). For a stack whose top is node n, most tokens
// are decided by n alone: walking the token's bytes inside n's rule (calling sub-rules as needed) either
// consumes the whole token, or dies. Only tokens that would need to leave n's rule mid-token depend on the
// callers below n. So per node, once per grammar and vocabulary, the vocabulary is split into accepted /
// rejected / uncertain; a mask is then the union of the accepted sets of the state's top nodes plus an exact
// check of the few uncertain tokens against the real stacks. Both walks visit the tokens in byte order and
// reuse the state of the common prefix with the previous token (a trie walk without a trie). Matchers also
// remember the masks of states they have seen (generation inside a JSON string keeps returning to one state).
#pragma once
#include <bitset>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/grammar.h"

namespace hearth::tok {
class Vocab;
}

namespace hearth::grammar {

// The allowed tokens in byte order, with each one's common prefix length with the one before: the order the
// cache builds walk the vocabulary in. Sorting 151k strings takes tens of milliseconds, so a table computes it
// once and every grammar compiled for the table shares it.
struct TokenOrder {
    std::vector<int32_t> sorted;  // token ids in byte order, excluded ones left out
    std::vector<int32_t> lcp;     // common prefix length of sorted[i] with sorted[i - 1]
    // The trie's subtrees: past(i, d) is the first position after i whose token does not share the first
    // d + 1 bytes of sorted[i] (d < its length), so a walk that dies there skips them all at once.
    std::vector<size_t> past_begin;  // by position: where its entries start in past (and its bytes in text)
    std::vector<int32_t> past;
    // The tokens' bytes back to back in this order: the walks read them in sequence (from the table's strings
    // they would miss the cache on every token).
    std::string text;
    int32_t n_tokens = 0;  // the table's size when the order was computed: every id in sorted is below it
    std::vector<uint64_t> all_ids;  // bitset over token ids (n_tokens bits): the ids in sorted
    int32_t max_token_bytes = 0;  // the longest token: no walk of a token reaches further into an automaton
    int32_t past_subtree(size_t i, size_t d) const { return past[past_begin[i] + d]; }
    std::string_view bytes(size_t i) const { return {text.data() + past_begin[i], past_begin[i + 1] - past_begin[i]}; }
};

// The byte strings of a vocabulary's tokens. Excluded tokens (control and other special tokens, empty ones)
// are never allowed by a mask: the end of generation is decided by can_end(), not by the grammar.
struct TokenTable {
    std::vector<std::string> bytes;  // by token id
    std::vector<uint8_t> excluded;   // by token id
    // Set by from_vocab / index(); a table built by hand without it gets its order computed per grammar.
    std::shared_ptr<const TokenOrder> order;

    static TokenTable from_vocab(const tok::Vocab& vocab);
    // Computes `order` from bytes and excluded (call again after changing them).
    void index();
    int32_t size() const { return static_cast<int32_t>(bytes.size()); }
};

// The grammar lowered to bytes, with the per-node token caches; immutable apart from the caches (which are
// filled lazily under a mutex), shared by every matcher of the grammar.
class Walker;
class CompiledGrammar {
public:
    // Throws hearth::Error if the grammar is invalid (see Grammar::validate) or has a rule that can never
    // finish (a dead end the model could walk into).
    CompiledGrammar(const Grammar& g, std::shared_ptr<const TokenTable> tokens);
    ~CompiledGrammar();

    const TokenTable& tokens() const { return *tokens_; }
    int n_nodes() const { return static_cast<int>(nodes_.size()); }

    // A stack whose top node's cache leaves more tokens than this uncertain uses the cache of that node in its
    // caller's frame instead (built once per grammar, on first use or by precompute_all).
    static constexpr size_t kContextThreshold = 4096;

    // Computes the token caches of every node reachable as a stack top at a token boundary (what
    // XGrammar does at compile time); optional, masks compute missing caches on first use.
    void precompute_all();

    // How many node caches the grammars compiled in this process share (for tests: a grammar whose rules another
    // one already has adds none).
    static size_t shared_cache_entries();
    // Drops them (benchmarks: each grammar as the first of a fresh process).
    static void drop_shared_caches();

    // What this grammar's cache builds did so far: builds, first-byte subtrees walked, and subtrees taken from
    // an earlier build's walk (the memo). For tests and benchmarks.
    struct BuildStats {
        size_t builds = 0, subtrees_walked = 0, subtrees_reused = 0;
    };
    BuildStats build_stats() const;

private:
    friend class GrammarMatcher;
    friend class Walker;
    struct ByteEdge {
        uint8_t lo, hi;
        int32_t to;
    };
    struct CallEdge {
        int32_t rule;
        int32_t ret;
    };
    struct Node {
        std::vector<ByteEdge> bytes;
        std::vector<CallEdge> calls;
        bool accept = false;
        int32_t rule = -1;  // the rule whose automaton holds the node
    };
    using ByteSet = std::bitset<256>;
public:
    struct NodeCache {
        // The accepted tokens: a bitset over token ids, or, where few are (most nodes outside free text accept a
        // handful), their ids with the bitset left empty: 19 KiB per cache for a 151k vocabulary otherwise.
        std::vector<uint64_t> accepted;
        std::vector<int32_t> accepted_ids;
        std::vector<int32_t> uncertain;   // positions in the byte order (TokenOrder::sorted)
        // Where each uncertain token's walk may finish the frame mid-token (a caller takes the next byte):
        // escape_at[escape_end[k - 1] .. escape_end[k]) are token k's byte offsets.
        std::vector<int32_t> escape_end;
        std::vector<uint32_t> escape_at;
        // Sets the accepted tokens' bits in mask (`words` words).
        void add_accepted(uint64_t* mask, size_t words) const;
        // Sets the accepted tokens from a bitset over positions in the byte order with n_accepted bits set, as ids
        // where that is smaller.
        void set_accepted(const std::vector<uint64_t>& positions, size_t n_accepted, const TokenOrder& order,
                          int32_t n_tokens);
        size_t bytes() const;
    };

private:

    int32_t new_node();
    void add_chars(int32_t from, int32_t to, const std::vector<CharRange>& ranges);
    const NodeCache& cache(int32_t node) const;
    // The cache of node `node` called from a frame at node `caller` (a return node): the walk goes on into
    // the caller's rule when node's rule finishes, so only tokens leaving the caller's rule mid-token stay
    // uncertain. Used where a node alone leaves many tokens uncertain: a character rule called once per
    // position of a bounded repetition ("[^\"]{0,40}") finishes after one character, so every longer token
    // would need checking against the real stack at every step.
    const NodeCache& cache_in_context(int32_t node, int32_t caller) const;
    NodeCache build_cache(int32_t node, int32_t caller) const;
    int32_t follow_number(int32_t rule) const;
    // The cache of (node, caller) from the caches every grammar for this token order shares, or built (and
    // shared) when none has it.
    std::shared_ptr<const NodeCache> find_or_build(int32_t node, int32_t caller) const;
    std::string structure_key(int32_t node, int32_t caller) const;
    void compute_follow();
    static std::vector<char> inlinable_rules(const Grammar& g);
    void lower_alternatives(const Grammar& g, int rule, int32_t from, int32_t to, int depth);
    void call(int rule, int32_t from, int32_t ret);

    std::shared_ptr<const TokenTable> tokens_;
    std::vector<Node> nodes_;
    std::vector<int32_t> rule_start_;
    int32_t root_start_ = -1;
    int32_t lowering_rule_ = -1;
    int32_t epsilon_rule_ = -1;
    std::vector<char> inline_;   // by rule: copied into its callers
    std::vector<char> lowered_;  // by rule: its automaton exists (lowering only)
    std::vector<int> to_lower_;
    std::vector<ByteSet> follow_;  // by rule: the bytes that may come right after it finishes
    std::vector<char> nullable_rule_;  // by rule: it can finish without a byte
    std::shared_ptr<const TokenOrder> order_;  // the table's, or computed here for an unindexed table
    mutable std::mutex mu_;
    mutable std::vector<std::shared_ptr<const NodeCache>> caches_;  // by node
    mutable std::unordered_map<uint64_t, std::shared_ptr<const NodeCache>> context_caches_;  // by (node, caller)

    // The cache builds' results over one subtree of the vocabulary's byte order, walked from one state: the same
    // for every build that meets that state there. Builds from different nodes converge (every node of a key
    // trie, after one character that leaves the trie, is in the state "inside a free key"), so the second
    // build reuses the first's walk of those subtrees instead of walking ~10^5 tokens again.
    struct SubtreeKey {
        int32_t state, position, follow;  // walker state after the first byte, the subtree's first position, FOLLOW
        bool operator==(const SubtreeKey&) const = default;
    };
    struct SubtreeKeyHash {
        size_t operator()(const SubtreeKey& k) const;
    };
    struct SubtreeResult {
        // The accepted positions: words first_word.. of a bitset over positions in the byte order (a subtree is a
        // range of positions), bits outside the subtree clear.
        size_t first_word = 0, n_accepted = 0;
        std::vector<uint64_t> accepted_bits;
        std::vector<int32_t> uncertain;      // positions, as NodeCache::uncertain
        std::vector<int32_t> escape_end;     // as NodeCache's, counted from this result's first escape
        std::vector<uint32_t> escape_at;
    };
    mutable std::unordered_map<SubtreeKey, SubtreeResult, SubtreeKeyHash> subtree_memo_;
    mutable size_t subtree_memo_size_ = 0;     // ints held, bounded
    mutable BuildStats stats_;
    mutable std::vector<int32_t> follow_id_;   // by rule: its FOLLOW set's number (-1: not numbered yet)
    mutable std::vector<ByteSet> follow_sets_; // distinct FOLLOW sets met by builds
    mutable std::vector<int32_t> key_mark_, key_reached_;  // structure_key's scratch (under mu_)
    mutable std::vector<uint64_t> build_positions_;  // build_cache's accepted positions (scratch, under mu_)
    std::unique_ptr<Walker> cache_walker_;                    // the cache builds' walker (under mu_)
};


// The state of one sequence under a grammar. Not thread-safe; one per sequence.
class GrammarMatcher {
public:
    explicit GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar);
    ~GrammarMatcher();
    GrammarMatcher(GrammarMatcher&&) noexcept;
    GrammarMatcher& operator=(GrammarMatcher&&) noexcept;

    // Advances by one token if the grammar allows it; returns false (state unchanged) otherwise.
    bool accept_token(int32_t token);
    // The same for raw bytes (tests, prompts that end inside the constrained text).
    bool accept_bytes(std::string_view bytes);
    // Undoes the last n accepted tokens / byte strings (speculative decoding rejects a draft's tail).
    void rollback(int n);
    int history_size() const { return static_cast<int>(history_.size()) - 1; }

    // Bit t of mask (ceil(n_tokens / 64) words) = token t may come next. Excluded tokens are never set.
    void fill_mask(uint64_t* mask);
    std::vector<uint64_t> mask();
    // The grammar may end here: the end-of-generation token is allowed.
    bool can_end() const;
    // Nothing but the end may come (the text is complete and cannot be extended).
    bool must_end() const;

    // Sets logits[t] = -inf for every token the grammar forbids now; end-of-generation tokens `eog` stay
    // only if can_end(). Returns false if no token at all remains (cannot happen with a valid grammar).
    bool apply(float* logits, int32_t n_vocab, const std::vector<int32_t>& eog);

private:
    void check_uncertain(int32_t below, const CompiledGrammar::NodeCache& c, uint64_t* mask);

    std::shared_ptr<const CompiledGrammar> g_;
    std::unique_ptr<Walker> w_;
    std::vector<int32_t> history_;  // the walker's state after each accepted token / byte string
    std::unordered_map<int32_t, std::vector<uint64_t>> mask_cache_;  // by state
    std::vector<uint64_t> apply_mask_;                               // apply()'s scratch
};

// A grammar for `hearth run` / the server: compiled for a vocabulary, ready to make matchers.
std::shared_ptr<const CompiledGrammar> compile(const Grammar& g, std::shared_ptr<const TokenTable> tokens);

}  // namespace hearth::grammar
