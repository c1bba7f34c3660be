#include "grammar/matcher.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <optional>

#include "base/error.h"
#include "tokenizer/vocab.h"

namespace hearth::grammar {

// ---------------------------------------------------------------------------------------------------------
// Token table
// ---------------------------------------------------------------------------------------------------------
TokenTable TokenTable::from_vocab(const tok::Vocab& vocab) {
    TokenTable t;
    const int32_t n = vocab.n_tokens();
    t.bytes.resize(static_cast<size_t>(n));
    t.excluded.assign(static_cast<size_t>(n), 0);
    for (int32_t id = 0; id < n; ++id) {
        const tok::TokenAttr a = vocab.attr(id);
        if (a == tok::TokenAttr::Control || a == tok::TokenAttr::Unknown || a == tok::TokenAttr::Unused || vocab.is_eog(id)) {
            t.excluded[id] = 1;
            continue;
        }
        t.bytes[id] = vocab.token_to_piece(id, false);
        if (t.bytes[id].empty()) t.excluded[id] = 1;
    }
    t.index();
    return t;
}

namespace {
std::shared_ptr<const TokenOrder> byte_order(const TokenTable& t) {
    auto o = std::make_shared<TokenOrder>();
    o->n_tokens = t.size();
    for (int32_t id = 0; id < t.size(); ++id)
        if (!t.excluded[id] && !t.bytes[id].empty()) o->sorted.push_back(id);
    std::sort(o->sorted.begin(), o->sorted.end(), [&](int32_t a, int32_t b) { return t.bytes[a] < t.bytes[b]; });
    o->lcp.assign(o->sorted.size(), 0);
    for (size_t i = 1; i < o->sorted.size(); ++i) {
        const std::string& a = t.bytes[o->sorted[i - 1]];
        const std::string& b = t.bytes[o->sorted[i]];
        size_t k = 0;
        while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
        o->lcp[i] = static_cast<int32_t>(k);
    }
    const size_t n = o->sorted.size();
    o->past_begin.resize(n + 1);
    for (size_t i = 0; i < n; ++i) o->past_begin[i + 1] = o->past_begin[i] + t.bytes[o->sorted[i]].size();
    o->past.resize(o->past_begin[n]);
    for (size_t i = 0; i < n; ++i)
        o->max_token_bytes = std::max(o->max_token_bytes, static_cast<int32_t>(o->past_begin[i + 1] - o->past_begin[i]));
    o->all_ids.assign((static_cast<size_t>(o->n_tokens) + 63) / 64, 0);
    for (const int32_t id : o->sorted) o->all_ids[static_cast<size_t>(id >> 6)] |= uint64_t{1} << (id & 63);
    o->text.reserve(o->past_begin[n]);
    for (const int32_t id : o->sorted) o->text += t.bytes[id];
    // From the end: the subtree of (i, d) goes on into i + 1's exactly when i + 1 shares more than d bytes.
    for (size_t i = n; i-- > 0;) {
        const size_t len = t.bytes[o->sorted[i]].size();
        for (size_t d = 0; d < len; ++d)
            o->past[o->past_begin[i] + d] = i + 1 < n && static_cast<size_t>(o->lcp[i + 1]) > d
                                                ? o->past_subtree(i + 1, d)
                                                : static_cast<int32_t>(i + 1);
    }
    return o;
}
}  // namespace

void TokenTable::index() { order = byte_order(*this); }

// ---------------------------------------------------------------------------------------------------------
// Walker: the pushdown automaton's stacks (a pool of interned frames shared by all states), its states (sets
// of stacks, interned too) and its byte steps, memoised: a walk over a vocabulary keeps returning to a few
// states (inside a string, every character leads back to one), so after warm-up a step is one table lookup
// (in effect a DFA built lazily over the states the walks reach).
// ---------------------------------------------------------------------------------------------------------
namespace {

// uint64 -> int32 open-addressing hash map (linear probing): the step and frame tables sit on the hot path of
// every cache build and mask, where std::unordered_map's node allocations and pointer chasing dominate.
class FlatMap {
public:
    FlatMap() { rehash(1024); }
    // The value for key, inserting `fresh` if absent; returns {value, inserted}.
    std::pair<int32_t, bool> find_or_insert(uint64_t key, int32_t fresh) {
        if ((size_ + 1) * 4 > keys_.size() * 3) rehash(keys_.size() * 2);
        size_t i = slot(key);
        while (vals_[i] != kEmpty) {
            if (keys_[i] == key) return {vals_[i], false};
            i = (i + 1) & (keys_.size() - 1);
        }
        keys_[i] = key;
        vals_[i] = fresh;
        ++size_;
        return {fresh, true};
    }
    int32_t find(uint64_t key) const {
        size_t i = slot(key);
        while (vals_[i] != kEmpty) {
            if (keys_[i] == key) return vals_[i];
            i = (i + 1) & (keys_.size() - 1);
        }
        return kEmpty;
    }
    void set(uint64_t key, int32_t value) {
        if ((size_ + 1) * 4 > keys_.size() * 3) rehash(keys_.size() * 2);
        size_t i = slot(key);
        while (vals_[i] != kEmpty && keys_[i] != key) i = (i + 1) & (keys_.size() - 1);
        if (vals_[i] == kEmpty) ++size_;
        keys_[i] = key;
        vals_[i] = value;
    }
    static constexpr int32_t kEmpty = std::numeric_limits<int32_t>::min();

private:
    size_t slot(uint64_t key) const {
        key ^= key >> 33;
        key *= 0xff51afd7ed558ccdULL;
        key ^= key >> 33;
        return static_cast<size_t>(key) & (keys_.size() - 1);
    }
    void rehash(size_t n) {
        std::vector<uint64_t> keys = std::move(keys_);
        std::vector<int32_t> vals = std::move(vals_);
        keys_.assign(n, 0);
        vals_.assign(n, kEmpty);
        size_ = 0;
        for (size_t i = 0; i < keys.size(); ++i)
            if (vals[i] != kEmpty) set(keys[i], vals[i]);
    }
    std::vector<uint64_t> keys_;
    std::vector<int32_t> vals_;
    size_t size_ = 0;
};

uint64_t pack(int32_t a, int32_t b) { return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b); }

}  // namespace

class Walker {
public:
    static constexpr int32_t kRootBottom = -1;   // below the root rule: the text may end
    static constexpr int32_t kFrameBottom = -2;  // below the node a cache walk starts from
    static constexpr int32_t kDead = 0;          // the state with no stacks that cannot end

    explicit Walker(const CompiledGrammar& g) : g_(g), state_slots_(1024, -1) { (void)intern_state(closed_, false); }

    int32_t node_of(int32_t stack) const { return frames_[stack].node; }
    const std::vector<int32_t>& stacks(int32_t state) const { return states_[state].stacks; }
    // The root (or, for a cache walk, the walk's frame) may finish here.
    bool end(int32_t state) const { return flags_[static_cast<size_t>(state)] & kEnd; }
    // Stacks remain: more bytes may follow.
    bool alive(int32_t state) const { return flags_[static_cast<size_t>(state)] & kAlive; }

    // The closed state of the single stack [node] over `bottom`.
    int32_t start(int32_t node, int32_t bottom) { return resume(intern_frame(node, bottom)); }
    // The closed state of the stack [node, caller] over kFrameBottom (caller: a return node).
    int32_t start_in(int32_t node, int32_t caller) {
        return resume(intern_frame(node, intern_frame(caller, kFrameBottom)));
    }
    // The frame below stack s's top (negative: a bottom).
    int32_t parent_of(int32_t stack) const { return frames_[stack].parent; }
    // The closed state of the stack `frame` (a caller's frame at its return node): where a walk goes on once
    // the frame above it finishes.
    int32_t resume(int32_t frame) {
        closed_.clear();
        bool end = false;
        close(frame, closed_, end);
        return intern_state(closed_, end);
    }

    // One byte from `state`; kDead when nothing survives.
    int32_t step(int32_t state, uint8_t b) {
        const size_t st = static_cast<size_t>(state);
        // Most bytes are refused by every stack top: the state's live bytes answer those without a lookup (a cache
        // build tries every first byte from a fresh start state, and most tokens die on their next byte).
        if (!(live_[st].bits[b >> 6] >> (b & 63) & 1)) return kDead;
        // Hot states get a row: 256 next states indexed by byte, one load instead of a hash probe into a
        // table too big for the cache (a cache build steps from the few states inside a string ~10^5 times).
        int32_t row = row_of_[st];
        if (row < 0 && ++visits_[st] >= kRowAfterVisits && n_rows_ < kMaxRows) {
            row = row_of_[st] = n_rows_++;
            rows_.resize(static_cast<size_t>(n_rows_) * 256, kUnknownStep);
        }
        if (row >= 0) {
            int32_t& slot = rows_[static_cast<size_t>(row) * 256 + b];
            if (slot == kUnknownStep) slot = step_slow(state, b);
            return slot;
        }
        return step_slow(state, b);
    }

private:
    int32_t step_slow(int32_t state, uint8_t b) {
        const uint64_t key = static_cast<uint64_t>(state) << 8 | b;
        if (const int32_t hit = steps_.find(key); hit != FlatMap::kEmpty) return hit;
        closed_.clear();
        bool end = false;
        for (const int32_t s : states_[state].stacks) {
            const Frame f = frames_[s];
            for (const auto& e : g_.nodes_[f.node].bytes)
                if (b >= e.lo && b <= e.hi) close(intern_frame(e.to, f.parent), closed_, end);
        }
        const int32_t next = intern_state(closed_, end);
        steps_.set(key, next);
        return next;
    }

    struct Frame {
        int32_t node, parent;
    };
    struct StateRec {
        std::vector<int32_t> stacks;  // sorted, unique, closed
        bool end = false;
    };

    // Bounds on the walker's memory. A grammar so ambiguous that its parse stacks multiply with every byte
    // ("x+++" nests loops: each byte can end or continue any of them) would otherwise grow without limit; past
    // these it is refused (JSON Schema grammars use a few hundred stacks per state at most, and frames in the
    // tens of thousands).
    static constexpr size_t kMaxFrames = size_t{1} << 20;
    static constexpr size_t kMaxStacksPerState = 4096;
    static constexpr size_t kMaxStoredStacks = size_t{1} << 22;
    [[noreturn]] static void too_ambiguous(const char* what, size_t limit) {
        fail("the grammar is too ambiguous to run: more than {} {} (nested repetitions such as (x+)+ multiply the "
             "ways to parse each byte)", limit, what);
    }

    int32_t intern_frame(int32_t node, int32_t parent) {
        if (frames_.size() >= kMaxFrames) {  // checked before inserting, so that the walker stays consistent
            if (const int32_t known = frame_index_.find(pack(node, parent)); known != FlatMap::kEmpty) return known;
            too_ambiguous("parse stack frames", kMaxFrames);
        }
        const auto [id, fresh] = frame_index_.find_or_insert(pack(node, parent), static_cast<int32_t>(frames_.size()));
        if (fresh) {
            frames_.push_back({node, parent});
            seen_.push_back(0);
        }
        return id;
    }

    // The state of these stacks (sorted and deduplicated in place), interned: an open-addressing table of state
    // ids by a hash of the stacks, compared in full on a hash match.
    int32_t intern_state(std::vector<int32_t>& stacks, bool end) {
        std::sort(stacks.begin(), stacks.end());
        stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
        uint64_t h = end ? 0x51ED27A3C1B2F4E5ULL : 0x2C6FE96EE78B6955ULL;
        for (const int32_t s : stacks) {
            h = (h ^ static_cast<uint32_t>(s)) * 0x9E3779B97F4A7C15ULL;
            h ^= h >> 31;
        }
        size_t mask = state_slots_.size() - 1, i = static_cast<size_t>(h) & mask;
        for (; state_slots_[i] >= 0; i = (i + 1) & mask) {
            const int32_t id = state_slots_[i];
            if (state_hash_[static_cast<size_t>(id)] == h && states_[static_cast<size_t>(id)].end == end &&
                states_[static_cast<size_t>(id)].stacks == stacks)
                return id;
        }
        if (stacks.size() > kMaxStacksPerState) too_ambiguous("parse stacks at one point", kMaxStacksPerState);
        if (stored_stacks_ + stacks.size() > kMaxStoredStacks) too_ambiguous("parse stacks in all", kMaxStoredStacks);
        stored_stacks_ += stacks.size();
        const int32_t id = static_cast<int32_t>(states_.size());
        flags_.push_back(static_cast<uint8_t>((stacks.empty() ? 0 : kAlive) | (end ? kEnd : 0)));
        row_of_.push_back(-1);
        visits_.push_back(0);
        ByteMask live{};
        for (const int32_t s : stacks)
            for (const auto& e : g_.nodes_[frames_[s].node].bytes) live.add(e.lo, e.hi);
        live_.push_back(live);
        states_.push_back({stacks, end});
        state_hash_.push_back(h);
        state_slots_[i] = id;
        if (states_.size() * 2 > state_slots_.size()) {  // grow: at most half full
            std::vector<int32_t> slots(state_slots_.size() * 2, -1);
            mask = slots.size() - 1;
            for (size_t k = 0; k < states_.size(); ++k) {
                size_t j = static_cast<size_t>(state_hash_[k]) & mask;
                while (slots[j] >= 0) j = (j + 1) & mask;
                slots[j] = static_cast<int32_t>(k);
            }
            state_slots_ = std::move(slots);
        }
        return id;
    }

    // Adds the closure of stack s: calls pushed, finished rules popped. Stacks whose top can consume a byte go
    // to out (unsorted, may repeat).
    void close(int32_t s, std::vector<int32_t>& out, bool& end) {
        if (++epoch_ == 0) {
            std::fill(seen_.begin(), seen_.end(), 0);
            epoch_ = 1;
        }
        work_.clear();
        work_.push_back(s);
        while (!work_.empty()) {
            const int32_t cur = work_.back();
            work_.pop_back();
            if (seen_[cur] == epoch_) continue;
            seen_[cur] = epoch_;
            const Frame f = frames_[cur];
            const CompiledGrammar::Node& n = g_.nodes_[f.node];
            if (!n.bytes.empty()) out.push_back(cur);
            for (const auto& c : n.calls) {
                // A tail call (the caller finishes right after) leaves no frame: in a repetition
                // "r ::= x r | ''" the stack stays flat, so states inside it repeat (and so do their masks).
                const CompiledGrammar::Node& ret = g_.nodes_[c.ret];
                const bool tail = ret.accept && ret.bytes.empty() && ret.calls.empty();
                work_.push_back(intern_frame(g_.rule_start_[c.rule], tail ? f.parent : intern_frame(c.ret, f.parent)));
            }
            if (n.accept) {
                if (f.parent < 0)
                    end = true;
                else
                    work_.push_back(f.parent);
            }
        }
    }

    const CompiledGrammar& g_;
    std::vector<Frame> frames_;
    FlatMap frame_index_;
    std::vector<uint32_t> seen_;  // by frame: the close() that last visited it
    uint32_t epoch_ = 0;
    std::vector<int32_t> work_;
    std::vector<StateRec> states_;
    // By state, alive / end bits: the cache walks test them after every byte, and a byte per state keeps
    // them in cache where the records would not be.
    static constexpr uint8_t kAlive = 1, kEnd = 2;
    std::vector<uint8_t> flags_;
    size_t stored_stacks_ = 0;
    std::vector<int32_t> state_slots_;  // state ids by hash (open addressing), -1 empty
    std::vector<uint64_t> state_hash_;  // by state
    // By state: the bytes some stack top has an edge for (any other byte kills every stack).
    struct ByteMask {
        uint64_t bits[4];
        void add(uint8_t lo, uint8_t hi) {
            for (unsigned b = lo; b <= hi;) {
                const unsigned last = std::min<unsigned>(hi, b | 63);
                bits[b >> 6] |= (~uint64_t{0} >> (63 - (last & 63))) & (~uint64_t{0} << (b & 63));
                b = last + 1;
            }
        }
    };
    std::vector<ByteMask> live_;
    std::vector<int32_t> closed_;  // close()'s output for the state being interned (scratch)
    FlatMap steps_;  // (state << 8 | byte) -> state
    static constexpr uint32_t kRowAfterVisits = 256;
    static constexpr int32_t kMaxRows = 1024;  // 1 MiB of rows per walker at most
    static constexpr int32_t kUnknownStep = -1;
    std::vector<int32_t> row_of_;  // by state: its row, or -1
    std::vector<uint32_t> visits_;  // by state: steps taken from it while it had no row
    std::vector<int32_t> rows_;    // 256 entries per row: next state by byte, or kUnknownStep
    int32_t n_rows_ = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Lowering
// ---------------------------------------------------------------------------------------------------------
namespace {

struct ByteRange {
    uint8_t lo, hi;
};
using ByteSeq = std::vector<ByteRange>;

int utf8_len(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// Splits [lo, hi] (no surrogates) into sequences of byte ranges, each matching exactly the UTF-8 encodings of
// a sub-range (the classic construction of RE2 and Rust's utf8-ranges).
void utf8_sequences(uint32_t lo, uint32_t hi, std::vector<ByteSeq>& out) {
    static constexpr uint32_t kMaxOfLen[3] = {0x7F, 0x7FF, 0xFFFF};
    for (uint32_t m : kMaxOfLen)
        if (lo <= m && hi > m) {
            utf8_sequences(lo, m, out);
            utf8_sequences(m + 1, hi, out);
            return;
        }
    const int n = utf8_len(lo);
    if (n == 1) {
        out.push_back({{static_cast<uint8_t>(lo), static_cast<uint8_t>(hi)}});
        return;
    }
    for (int i = 1; i < n; ++i) {
        const uint32_t m = (1u << (6 * i)) - 1;  // the low i continuation bytes
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) {
                utf8_sequences(lo, lo | m, out);
                utf8_sequences((lo | m) + 1, hi, out);
                return;
            }
            if ((hi & m) != m) {
                utf8_sequences(lo, (hi & ~m) - 1, out);
                utf8_sequences(hi & ~m, hi, out);
                return;
            }
        }
    }
    std::string a, b;
    append_utf8(a, lo);
    append_utf8(b, hi);
    ByteSeq seq;
    for (int i = 0; i < n; ++i) seq.push_back({static_cast<uint8_t>(a[i]), static_cast<uint8_t>(b[i])});
    out.push_back(seq);
}

}  // namespace

int32_t CompiledGrammar::new_node() {
    nodes_.emplace_back();
    nodes_.back().rule = lowering_rule_;
    return static_cast<int32_t>(nodes_.size() - 1);
}

void CompiledGrammar::add_chars(int32_t from, int32_t to, const std::vector<CharRange>& ranges) {
    std::vector<ByteSeq> seqs;
    for (const CharRange& r : ranges) utf8_sequences(r.lo, r.hi, seqs);
    // Sequences sharing leading byte ranges share nodes (a trie of ranges), so that one class gives one path
    // per distinct prefix and not one stack per sequence.
    for (const ByteSeq& seq : seqs) {
        int32_t cur = from;
        for (size_t i = 0; i < seq.size(); ++i) {
            const bool last = i + 1 == seq.size();
            int32_t next = -1;
            if (!last)
                for (const ByteEdge& e : nodes_[cur].bytes)
                    if (e.lo == seq[i].lo && e.hi == seq[i].hi && e.to != to) next = e.to;
            if (next < 0) {
                next = last ? to : new_node();
                nodes_[cur].bytes.push_back({seq[i].lo, seq[i].hi, next});
            }
            cur = next;
        }
    }
}

// Rules to copy into their callers: not recursive (directly or through others), and either used by exactly
// one element of the grammar or at most kTinyRule elements long once its own inlined rules are expanded.
std::vector<char> CompiledGrammar::inlinable_rules(const Grammar& g) {
    constexpr int kTinyRule = 8;
    const size_t nr = g.rules.size();
    std::vector<int> uses(nr, 0);
    for (const Rule& r : g.rules)
        for (const Sequence& s : r.alternatives)
            for (const Element& e : s)
                if (e.kind == Element::Kind::Rule) ++uses[static_cast<size_t>(e.rule)];
    // Recursive rules: those that reach themselves (depth-first search from each rule; grammars from JSON
    // Schema have thousands of rules, so the search is iterative and linear per rule reached).
    std::vector<char> recursive(nr, 0);
    // Tarjan's strongly connected components.
    std::vector<int> index(nr, -1), low(nr, 0), stack;
    std::vector<char> on_stack(nr, 0);
    int counter = 0;
    struct Frame {
        int rule;
        size_t alt, el;
    };
    for (size_t root = 0; root < nr; ++root) {
        if (index[root] >= 0) continue;
        std::vector<Frame> dfs{{static_cast<int>(root), 0, 0}};
        index[root] = low[root] = counter++;
        stack.push_back(static_cast<int>(root));
        on_stack[root] = 1;
        while (!dfs.empty()) {
            Frame& f = dfs.back();
            const auto& alts = g.rules[static_cast<size_t>(f.rule)].alternatives;
            if (f.alt < alts.size()) {
                if (f.el >= alts[f.alt].size()) {
                    ++f.alt;
                    f.el = 0;
                    continue;
                }
                const Element& e = alts[f.alt][f.el++];
                if (e.kind != Element::Kind::Rule) continue;
                const size_t to = static_cast<size_t>(e.rule);
                if (to == static_cast<size_t>(f.rule)) recursive[to] = 1;
                if (index[to] < 0) {
                    index[to] = low[to] = counter++;
                    stack.push_back(e.rule);
                    on_stack[to] = 1;
                    dfs.push_back({e.rule, 0, 0});
                } else if (on_stack[to]) {
                    low[static_cast<size_t>(f.rule)] = std::min(low[static_cast<size_t>(f.rule)], index[to]);
                }
                continue;
            }
            const int v = f.rule;
            dfs.pop_back();
            if (!dfs.empty()) {
                const size_t parent = static_cast<size_t>(dfs.back().rule);
                low[parent] = std::min(low[parent], low[static_cast<size_t>(v)]);
            }
            if (low[static_cast<size_t>(v)] == index[static_cast<size_t>(v)]) {
                std::vector<int> component;
                int w;
                do {
                    w = stack.back();
                    stack.pop_back();
                    on_stack[static_cast<size_t>(w)] = 0;
                    component.push_back(w);
                } while (w != v);
                if (component.size() > 1)
                    for (int c : component) recursive[static_cast<size_t>(c)] = 1;
            }
        }
    }
    // Expanded sizes, callees first (memoised depth-first; non-recursive rules form a DAG).
    std::vector<int64_t> size(nr, -1);
    std::vector<char> result(nr, 0);
    std::function<int64_t(size_t)> expanded = [&](size_t r) -> int64_t {
        if (size[r] >= 0) return size[r];
        int64_t n = 0;
        for (const Sequence& s : g.rules[r].alternatives)
            for (const Element& e : s) {
                const size_t to = static_cast<size_t>(e.rule);
                n += e.kind == Element::Kind::Rule && !recursive[to] && result[to] ? expanded(to) : 1;
            }
        size[r] = std::max<int64_t>(n, 1);
        return size[r];
    };
    // Decide in callee-first order so that sizes see their callees' decisions. The recursion is cut at depth
    // 64 (long chains of helper rules, such as a {0,1000} repetition's): a rule left undecided there is
    // decided when the outer loop reaches it, and a callee undecided when its caller is sized counts as one
    // element. Any choice of rules to inline is correct; this only keeps the choice cheap and bounded.
    std::function<void(size_t, int)> decide = [&](size_t r, int depth) {
        if (size[r] >= 0 || depth > 64) return;
        for (const Sequence& s : g.rules[r].alternatives)
            for (const Element& e : s)
                if (e.kind == Element::Kind::Rule && !recursive[static_cast<size_t>(e.rule)])
                    decide(static_cast<size_t>(e.rule), depth + 1);
        const int64_t n = expanded(r);
        result[r] = !recursive[r] && !g.rules[r].shared && (uses[r] == 1 || n <= kTinyRule);
    };
    for (size_t r = 0; r < nr; ++r)
        if (!recursive[r]) decide(r, 0);
    return result;
}

void CompiledGrammar::call(int rule, int32_t from, int32_t ret) {
    nodes_[static_cast<size_t>(from)].calls.push_back({rule, ret});
    if (!lowered_[static_cast<size_t>(rule)]) {
        lowered_[static_cast<size_t>(rule)] = 1;
        to_lower_.push_back(rule);
    }
}

void CompiledGrammar::lower_alternatives(const Grammar& g, int rule, int32_t from, int32_t to, int depth) {
    // Copies nest at most kMaxInlineDepth deep (the C++ stack); deeper, the rule is called. Deep enough that the
    // positions of a long bounded repetition (x{0,255}: 255 nested optional tails) are mostly one chain.
    constexpr int kMaxInlineDepth = 512;
    for (const Sequence& seq : g.rules[static_cast<size_t>(rule)].alternatives) {
        if (seq.empty()) {
            // Reaching a rule's own end node is finishing the rule: mark `from` instead of an epsilon call.
            const Node& t = nodes_[static_cast<size_t>(to)];
            if (t.accept && t.bytes.empty() && t.calls.empty())
                nodes_[static_cast<size_t>(from)].accept = true;
            else
                nodes_[static_cast<size_t>(from)].calls.push_back({epsilon_rule_, to});
            continue;
        }
        int32_t cur = from;
        for (size_t k = 0; k < seq.size(); ++k) {
            const int32_t next = k + 1 == seq.size() ? to : new_node();
            const Element& e = seq[k];
            if (e.kind == Element::Kind::Chars)
                add_chars(cur, next, e.ranges);
            else if (inline_[static_cast<size_t>(e.rule)] && depth < kMaxInlineDepth)
                lower_alternatives(g, e.rule, cur, next, depth + 1);
            else
                call(e.rule, cur, next);
            cur = next;
        }
    }
}

CompiledGrammar::CompiledGrammar(const Grammar& g, std::shared_ptr<const TokenTable> tokens) : tokens_(std::move(tokens)) {
    g.validate();
    // Rules that cannot finish (every alternative needs an unfinishable rule) would let the model walk into a
    // dead end: refuse them.
    const size_t nr = g.rules.size();
    const std::vector<char> productive = finishable_rules(g);
    for (size_t i = 0; i < nr; ++i)
        if (!productive[i]) fail("rule '{}' can never finish (every alternative recurses without end)", g.rules[i].name);

    // Inlining: a rule that is not recursive and is used once (the helper rules of groups and repetitions), or
    // is tiny (ws), is copied into its callers' automata instead of being called. A node's token cache is
    // decided inside its rule's frame, so the more of the text one frame covers, the fewer tokens are left
    // undecided until mask time: "string-1 ::= [^"] | escape" called once per character would leave every
    // multi-character token undecided.
    inline_ = inlinable_rules(g);
    size_t elements = 0;  // about a node per element (a hint: copies of inlined rules and UTF-8 paths add more)
    for (const Rule& r : g.rules)
        for (const Sequence& s : r.alternatives) elements += s.size() + 1;
    nodes_.reserve(elements + nr + 2);
    rule_start_.resize(nr + 1);
    for (size_t i = 0; i < nr; ++i) {
        lowering_rule_ = static_cast<int32_t>(i);
        rule_start_[i] = new_node();
    }
    // An extra rule that matches the empty string: a call to it is an epsilon edge (for inlined rules with an
    // empty alternative).
    lowering_rule_ = static_cast<int32_t>(nr);
    epsilon_rule_ = static_cast<int32_t>(nr);
    rule_start_[nr] = new_node();
    nodes_[rule_start_[nr]].accept = true;
    // Rules are lowered from the root, each the first time a call to it is made.
    lowered_.assign(nr, 0);
    lowered_[static_cast<size_t>(g.root)] = 1;
    to_lower_ = {g.root};
    while (!to_lower_.empty()) {
        const int r = to_lower_.back();
        to_lower_.pop_back();
        lowering_rule_ = r;
        const int32_t end = new_node();
        nodes_[static_cast<size_t>(end)].accept = true;
        lower_alternatives(g, r, rule_start_[static_cast<size_t>(r)], end, 0);
    }
    to_lower_.shrink_to_fit();
    root_start_ = rule_start_[g.root];
    compute_follow();

    order_ = tokens_->order ? tokens_->order : byte_order(*tokens_);
    if (order_->n_tokens > tokens_->size())
        throw Error("grammar: the token table's byte order is stale (call TokenTable::index after changing it)");
    caches_.resize(nodes_.size());
    cache_walker_ = std::make_unique<Walker>(*this);
}

CompiledGrammar::~CompiledGrammar() = default;

// FOLLOW sets over bytes (the LL(1) construction, at byte level): the bytes that can come right after each
// rule finishes, anywhere in the grammar. A cache walk that leaves its node's rule mid-token continues in
// some caller, so the token's next byte must be in the rule's FOLLOW set: tokens failing that are rejected
// outright instead of being checked against the real stacks at every step. (In JSON, after a value's
// optional whitespace only , } ] : and the like may follow; without this, every token starting with a space,
// half of a BPE vocabulary, would be uncertain.)
void CompiledGrammar::compute_follow() {
    const size_t nn = nodes_.size(), nr = rule_start_.size();
    std::vector<char> nullable(nn, 0);
    std::vector<ByteSet> first(nn);
    for (size_t n = 0; n < nn; ++n) {
        nullable[n] = nodes_[n].accept;
        for (const ByteEdge& e : nodes_[n].bytes)
            for (int b = e.lo; b <= e.hi; ++b) first[n][static_cast<size_t>(b)] = true;
    }
    // Nodes are created in order along each alternative, so a backwards sweep sees most successors first;
    // repeat until nothing changes (recursion needs more than one sweep).
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t k = nn; k-- > 0;) {
            for (const CallEdge& c : nodes_[k].calls) {
                const int32_t callee = rule_start_[static_cast<size_t>(c.rule)];
                ByteSet f = first[k] | first[callee];
                bool nul = nullable[k];
                if (nullable[callee]) {
                    f |= first[c.ret];
                    nul = nul || nullable[c.ret];
                }
                if (f != first[k] || nul != static_cast<bool>(nullable[k])) {
                    first[k] = f;
                    nullable[k] = nul;
                    changed = true;
                }
            }
        }
    }
    nullable_rule_.resize(nr);
    for (size_t r = 0; r < nr; ++r) nullable_rule_[r] = nullable[static_cast<size_t>(rule_start_[r])];
    follow_.assign(nr, ByteSet{});
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t k = 0; k < nn; ++k)
            for (const CallEdge& c : nodes_[k].calls) {
                ByteSet f = follow_[static_cast<size_t>(c.rule)] | first[c.ret];
                if (nullable[c.ret] && nodes_[k].rule >= 0) f |= follow_[static_cast<size_t>(nodes_[k].rule)];
                if (f != follow_[static_cast<size_t>(c.rule)]) {
                    follow_[static_cast<size_t>(c.rule)] = f;
                    changed = true;
                }
            }
    }
}

size_t CompiledGrammar::SubtreeKeyHash::operator()(const SubtreeKey& k) const {
    uint64_t h = pack(k.state, k.position) * 0x9E3779B97F4A7C15ULL ^ static_cast<uint32_t>(k.follow);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ULL;
    return static_cast<size_t>(h ^ (h >> 32));
}

// The node's split of the vocabulary: walk every token from the frame [node] (callers unknown), or from the
// frames [node, caller] when caller >= 0, visiting the tokens in byte order and keeping the state of each
// prefix length. Subtrees entered in a state another build met there before take that build's result.
CompiledGrammar::NodeCache CompiledGrammar::build_cache(int32_t node, int32_t caller) const {
    // Subtrees of one first byte are remembered (walks from different nodes converge after the first
    // character: a key trie's nodes on leaving the trie, a string's positions inside it), up to this many
    // ints in all per grammar.
    constexpr size_t kMaxMemoInts = size_t{1} << 21;
    ++stats_.builds;
    NodeCache c;
    const TokenTable& t = *tokens_;
    const std::vector<int32_t>& sorted = order_->sorted;
    const std::vector<int32_t>& lcp = order_->lcp;
    // Accepted tokens are marked by position in the byte order while walking (a first-byte subtree is a range of
    // positions, so reusing one ORs a few words) and turned into token ids once at the end.
    std::vector<uint64_t>& accepted = build_positions_;
    accepted.assign((sorted.size() + 63) / 64, 0);
    size_t n_accepted = 0;
    Walker& w = *cache_walker_;
    std::vector<int32_t> at;     // at[d]: state after d bytes of the current token
    std::vector<char> escaped;   // escaped[d]: the frame finished somewhere within the first d bytes
    at.push_back(caller < 0 ? w.start(node, Walker::kFrameBottom) : w.start_in(node, caller));
    // A frame that can finish before consuming a byte needs no check: a matcher's state is closed, so the
    // stacks below it, popped, are in the state too and decide such tokens themselves.
    escaped.push_back(0);
    const int32_t frame_rule = nodes_[static_cast<size_t>(caller < 0 ? node : caller)].rule;
    const ByteSet& follow = follow_[static_cast<size_t>(frame_rule)];
    const int32_t follow_id = follow_number(frame_rule);
    // The frame finishes after d > 0 bytes and a caller could take the token's next byte.
    auto leaves_at = [&](size_t d, std::string_view bytes) {
        return d > 0 && d < bytes.size() && w.end(at[d]) && follow[static_cast<uint8_t>(bytes[d])];
    };

    // The subtree being recorded for the memo (at most one: they are one byte deep).
    struct Recording {
        SubtreeKey key;
        size_t begin, end, accepted_from, uncertain_from, escapes_from;
    };
    std::optional<Recording> recording;
    const auto accept = [&](size_t pos) {
        accepted[pos >> 6] |= uint64_t{1} << (pos & 63);
        ++n_accepted;
    };
    const auto reuse = [&](const SubtreeResult& r) {
        for (size_t k = 0; k < r.accepted_bits.size(); ++k) accepted[r.first_word + k] |= r.accepted_bits[k];
        n_accepted += r.n_accepted;
        const int32_t base = static_cast<int32_t>(c.escape_at.size());
        c.escape_at.insert(c.escape_at.end(), r.escape_at.begin(), r.escape_at.end());
        c.uncertain.insert(c.uncertain.end(), r.uncertain.begin(), r.uncertain.end());
        for (const int32_t e : r.escape_end) c.escape_end.push_back(base + e);
    };
    const auto remember = [&](const Recording& rec) {
        SubtreeResult r;
        // The words of positions [begin, end), bits of the neighbouring subtrees cleared.
        r.first_word = rec.begin >> 6;
        r.accepted_bits.assign(accepted.begin() + static_cast<std::ptrdiff_t>(r.first_word),
                               accepted.begin() + static_cast<std::ptrdiff_t>(((rec.end - 1) >> 6) + 1));
        r.accepted_bits.front() &= ~uint64_t{0} << (rec.begin & 63);
        if ((rec.end & 63) != 0) r.accepted_bits.back() &= ~(~uint64_t{0} << (rec.end & 63));
        r.n_accepted = n_accepted - rec.accepted_from;
        r.uncertain.assign(c.uncertain.begin() + static_cast<std::ptrdiff_t>(rec.uncertain_from), c.uncertain.end());
        r.escape_at.assign(c.escape_at.begin() + static_cast<std::ptrdiff_t>(rec.escapes_from), c.escape_at.end());
        for (size_t k = rec.uncertain_from; k < c.escape_end.size(); ++k)
            r.escape_end.push_back(c.escape_end[k] - static_cast<int32_t>(rec.escapes_from));
        const size_t ints = 2 * r.accepted_bits.size() + 2 * r.uncertain.size() + r.escape_at.size() + 16;
        if (subtree_memo_size_ + ints > kMaxMemoInts) return;
        subtree_memo_size_ += ints;
        subtree_memo_.emplace(rec.key, std::move(r));
    };

    size_t depth = 0;  // prefix length for which at[] is valid
    for (size_t i = 0; i < sorted.size(); ++i) {
        if (recording && i >= recording->end) {
            remember(*recording);
            recording.reset();
        }
        const std::string_view bytes = order_->bytes(i);
        size_t d = std::min<size_t>(depth, i == 0 ? 0 : static_cast<size_t>(lcp[i]));
        bool reused = false;
        // Extend from the common prefix; stop at the first dead prefix (the rest of the token cannot help).
        while (d < bytes.size() && w.alive(at[d])) {
            if (at.size() <= d + 1) {
                at.resize(d + 2);
                escaped.resize(d + 2);
            }
            at[d + 1] = w.step(at[d], static_cast<uint8_t>(bytes[d]));
            escaped[d + 1] = escaped[d] || leaves_at(d, bytes);
            ++d;
            // Token i opens the subtree of its first byte. Its result there depends on the state and FOLLOW
            // alone (no escape can come before).
            if (d == 1 && w.alive(at[1])) {
                const SubtreeKey key{at[1], static_cast<int32_t>(i), follow_id};
                const size_t end = static_cast<size_t>(order_->past_subtree(i, 0));
                if (const auto it = subtree_memo_.find(key); it != subtree_memo_.end()) {
                    ++stats_.subtrees_reused;
                    reuse(it->second);
                    i = end - 1;
                    reused = true;
                    break;
                }
                ++stats_.subtrees_walked;
                recording = Recording{key, i, end, n_accepted, c.uncertain.size(), c.escape_at.size()};
            }
        }
        depth = d;
        if (reused) continue;
        if (d == bytes.size() && (w.alive(at[d]) || w.end(at[d]))) {
            accept(i);
        } else if (escaped[d] || leaves_at(d, bytes)) {
            // Dead inside the frame at prefix d, but the frame could finish earlier with a byte a caller may
            // take: the callers decide, undecided here. Keep where it can finish: a matcher then walks only
            // the rest of the token from the callers' state.
            c.uncertain.push_back(static_cast<int32_t>(i));
            for (size_t e = 1; e <= d && e < bytes.size(); ++e)
                if (leaves_at(e, bytes)) c.escape_at.push_back(static_cast<uint32_t>(e));
            c.escape_end.push_back(static_cast<int32_t>(c.escape_at.size()));
        }
        // Dead after d bytes with no way out before: every token sharing those bytes is rejected too.
        if (d > 0 && !w.alive(at[d]) && !w.end(at[d]) && !escaped[d]) i = static_cast<size_t>(order_->past_subtree(i, d - 1)) - 1;
    }
    if (recording) remember(*recording);
    c.set_accepted(accepted, n_accepted, *order_, t.size());
    return c;
}

void CompiledGrammar::NodeCache::set_accepted(const std::vector<uint64_t>& positions, size_t n_accepted,
                                              const TokenOrder& order, int32_t n_tokens) {
    const std::vector<int32_t>& sorted = order.sorted;
    const size_t words = (static_cast<size_t>(n_tokens) + 63) / 64;
    accepted.clear();
    accepted_ids.clear();
    if (n_accepted * sizeof(int32_t) * 4 <= words * sizeof(uint64_t)) {  // few: their ids
        accepted_ids.reserve(n_accepted);
        for (size_t k = 0; k < positions.size(); ++k)
            for (uint64_t w = positions[k]; w; w &= w - 1)
                accepted_ids.push_back(sorted[k * 64 + static_cast<size_t>(__builtin_ctzll(w))]);
        return;
    }
    accepted.assign(words, 0);
    const auto set = [&](size_t pos) { accepted[static_cast<size_t>(sorted[pos] >> 6)] |= uint64_t{1} << (sorted[pos] & 63); };
    if (n_accepted * 2 <= sorted.size()) {
        for (size_t k = 0; k < positions.size(); ++k)
            for (uint64_t w = positions[k]; w; w &= w - 1) set(k * 64 + static_cast<size_t>(__builtin_ctzll(w)));
        return;
    }
    // Most tokens: all of them, less the positions left out (fewer bits to move).
    std::copy(order.all_ids.begin(), order.all_ids.end(), accepted.begin());
    for (size_t k = 0; k < positions.size(); ++k) {
        uint64_t w = ~positions[k];
        if (k + 1 == positions.size() && (sorted.size() & 63) != 0) w &= ~(~uint64_t{0} << (sorted.size() & 63));
        for (; w; w &= w - 1) {
            const int32_t id = sorted[k * 64 + static_cast<size_t>(__builtin_ctzll(w))];
            accepted[static_cast<size_t>(id >> 6)] &= ~(uint64_t{1} << (id & 63));
        }
    }
}

void CompiledGrammar::NodeCache::add_accepted(uint64_t* mask, size_t words) const {
    if (!accepted.empty())
        for (size_t k = 0; k < words; ++k) mask[k] |= accepted[k];
    for (const int32_t id : accepted_ids) mask[id >> 6] |= uint64_t{1} << (id & 63);
}

size_t CompiledGrammar::NodeCache::bytes() const {
    return sizeof(NodeCache) + accepted.size() * sizeof(uint64_t) +
           (accepted_ids.size() + uncertain.size() + escape_end.size() + escape_at.size()) * sizeof(int32_t);
}

int32_t CompiledGrammar::follow_number(int32_t rule) const {
    if (follow_id_.empty()) follow_id_.assign(follow_.size(), -1);
    int32_t& id = follow_id_[static_cast<size_t>(rule)];
    if (id < 0) {
        const ByteSet& f = follow_[static_cast<size_t>(rule)];
        const auto it = std::find(follow_sets_.begin(), follow_sets_.end(), f);
        id = static_cast<int32_t>(it - follow_sets_.begin());
        if (it == follow_sets_.end()) follow_sets_.push_back(f);
    }
    return id;
}

// What a cache build depends on, written out: the automaton a token's walk can reach from the walk's start
// (byte edges, calls, returns, rule ends), its nodes numbered in the order a fixed traversal meets them, and the
// bytes that may follow the walk's frame. Only nodes within the longest token's length in bytes count (a byte
// edge costs one, a call nothing, a return one unless the callee can match nothing; an edge to a node further
// away is written as such): positions of
// a long bounded repetition far from its end then get one key. Two grammars with the same key get the same
// cache (for one token table): the string, number and whitespace rules of JSON grammars recur in every schema.
// "" past kMaxSharedNodes nodes: large parts of one grammar rarely recur in another, and the key would cost as
// much as the walk.
std::string CompiledGrammar::structure_key(int32_t node, int32_t caller) const {
    constexpr size_t kMaxSharedNodes = 512;
    constexpr int32_t kBeyond = -2, kUnseen = -1, kReached = -3;
    // key_mark_ by node: kUnseen, kReached (within the horizon) or, once written, the node's number in the key.
    // Scratch kept between calls (under mu_), so every node touched is reset on the way out.
    if (key_mark_.size() != nodes_.size()) key_mark_.assign(nodes_.size(), kUnseen);
    std::vector<int32_t>& reached = key_reached_;
    reached.clear();
    struct Reset {
        std::vector<int32_t>& mark;
        const std::vector<int32_t>& nodes;
        ~Reset() {
            for (const int32_t n : nodes) mark[static_cast<size_t>(n)] = -1;
        }
    } reset{key_mark_, reached};
    const auto seen = [&](int32_t n) { return key_mark_[static_cast<size_t>(n)] != kUnseen; };
    // Least distance in bytes from the start, level by level (nodes a call or return reaches cost nothing).
    std::vector<int32_t> level{node}, next, pending, next_returns;
    if (caller >= 0) level.push_back(caller);
    for (int32_t d = 0; !level.empty() && d <= order_->max_token_bytes; ++d) {
        pending.swap(level);
        level.clear();
        while (!pending.empty()) {
            const int32_t n = pending.back();
            pending.pop_back();
            if (seen(n)) continue;
            key_mark_[static_cast<size_t>(n)] = kReached;
            reached.push_back(n);
            if (reached.size() > kMaxSharedNodes) return "";
            level.push_back(n);
            for (const CallEdge& c : nodes_[static_cast<size_t>(n)].calls) {
                pending.push_back(rule_start_[static_cast<size_t>(c.rule)]);
                // The return comes after the callee, at least a byte later unless it can match nothing.
                (nullable_rule_[static_cast<size_t>(c.rule)] ? pending : next_returns).push_back(c.ret);
            }
        }
        next.clear();
        next.swap(next_returns);
        for (const int32_t n : level)
            for (const ByteEdge& e : nodes_[static_cast<size_t>(n)].bytes)
                if (!seen(e.to)) next.push_back(e.to);
        level.swap(next);
    }
    std::vector<int32_t> order;
    const auto canon = [&](int32_t n) {
        int32_t& mark = key_mark_[static_cast<size_t>(n)];
        if (mark == kUnseen) return kBeyond;
        if (mark == kReached) {
            mark = static_cast<int32_t>(order.size());
            order.push_back(n);
        }
        return mark;
    };
    std::string key;
    const auto put = [&](int32_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); };
    const ByteSet& follow = follow_[static_cast<size_t>(nodes_[caller < 0 ? node : caller].rule)];
    for (size_t b = 0; b < 256; b += 8) {
        uint8_t bits = 0;
        for (size_t k = 0; k < 8; ++k) bits = static_cast<uint8_t>(bits | (follow[b + k] << k));
        key.push_back(static_cast<char>(bits));
    }
    canon(node);
    put(caller < 0 ? -1 : canon(caller));
    for (size_t i = 0; i < order.size(); ++i) {
        const Node& n = nodes_[static_cast<size_t>(order[i])];
        put(n.accept ? 1 : 0);
        put(static_cast<int32_t>(n.bytes.size()));
        for (const ByteEdge& e : n.bytes) {
            put(e.lo << 8 | e.hi);
            put(canon(e.to));
        }
        put(static_cast<int32_t>(n.calls.size()));
        for (const CallEdge& c : n.calls) {
            put(canon(rule_start_[static_cast<size_t>(c.rule)]));
            put(canon(c.ret));
        }
    }
    return key;
}

namespace {

// Caches shared by every grammar compiled for the same token order, by structure key, up to a memory budget;
// the least recently used dropped first (the caches of one grammar's own nodes are met once, those of the
// string, number and whitespace rules every grammar has are met all the time).
struct SharedCaches {
    struct Entry {
        std::weak_ptr<const TokenOrder> order;
        std::shared_ptr<const CompiledGrammar::NodeCache> cache;
        std::list<const std::string*>::iterator use;  // its place in `uses`
        size_t bytes;
    };
    static constexpr size_t kMaxBytes = size_t{64} << 20;
    std::mutex mu;
    std::unordered_map<std::string, Entry> entries;
    std::list<const std::string*> uses;  // keys (held by entries), most recently used first
    size_t bytes = 0;

    std::shared_ptr<const CompiledGrammar::NodeCache> find(const std::string& key, const std::shared_ptr<const TokenOrder>& order) {
        const auto it = entries.find(key);
        if (it == entries.end() || it->second.order.lock() != order) return nullptr;
        uses.splice(uses.begin(), uses, it->second.use);
        return it->second.cache;
    }
    void insert(const std::string& key, const std::shared_ptr<const TokenOrder>& order,
                std::shared_ptr<const CompiledGrammar::NodeCache> cache) {
        const size_t size = cache->bytes() + 2 * key.size() + 128;
        if (const auto old = entries.find(key); old != entries.end()) erase(old);
        auto [it, fresh] = entries.emplace(key, Entry{order, std::move(cache), {}, size});
        uses.push_front(&it->first);
        it->second.use = uses.begin();
        bytes += size;
        while (bytes > kMaxBytes && uses.size() > 1) erase(entries.find(*uses.back()));
    }
    void erase(std::unordered_map<std::string, Entry>::iterator it) {
        bytes -= it->second.bytes;
        uses.erase(it->second.use);
        entries.erase(it);
    }
};
SharedCaches& shared_caches() {
    static SharedCaches s;
    return s;
}

}  // namespace

std::shared_ptr<const CompiledGrammar::NodeCache> CompiledGrammar::find_or_build(int32_t node, int32_t caller) const {
    const std::string key = structure_key(node, caller);
    SharedCaches& shared = shared_caches();
    if (!key.empty()) {
        std::lock_guard<std::mutex> lock(shared.mu);
        if (auto hit = shared.find(key, order_)) return hit;
    }
    auto built = std::make_shared<const NodeCache>(build_cache(node, caller));
    if (!key.empty()) {
        std::lock_guard<std::mutex> lock(shared.mu);
        shared.insert(key, order_, built);
    }
    return built;
}

CompiledGrammar::BuildStats CompiledGrammar::build_stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

size_t CompiledGrammar::shared_cache_entries() {
    SharedCaches& shared = shared_caches();
    std::lock_guard<std::mutex> lock(shared.mu);
    return shared.entries.size();
}

void CompiledGrammar::drop_shared_caches() {
    SharedCaches& shared = shared_caches();
    std::lock_guard<std::mutex> lock(shared.mu);
    shared.entries.clear();
    shared.uses.clear();
    shared.bytes = 0;
}

const CompiledGrammar::NodeCache& CompiledGrammar::cache(int32_t node) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = caches_[node];
    if (!slot) slot = find_or_build(node, -1);
    return *slot;
}

const CompiledGrammar::NodeCache& CompiledGrammar::cache_in_context(int32_t node, int32_t caller) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = context_caches_[pack(node, caller)];
    if (!slot) slot = find_or_build(node, caller);
    return *slot;
}

void CompiledGrammar::precompute_all() {
    // Stack tops at token boundaries are nodes with byte edges.
    for (int32_t n = 0; n < n_nodes(); ++n)
        if (!nodes_[n].bytes.empty()) (void)cache(n);
    // And the caches in context the matchers would ask for: for each call, the callee's stack tops directly
    // over the caller's return node whose own cache leaves too many tokens uncertain. (Tops reached through
    // tail calls sit over another caller; those are built on first use.)
    std::vector<std::pair<int32_t, int32_t>> wanted;
    for (int32_t n = 0; n < n_nodes(); ++n)
        for (const CallEdge& c : nodes_[n].calls) {
            std::vector<int32_t> tops;
            {
                std::lock_guard<std::mutex> lock(mu_);
                Walker& w = *cache_walker_;
                for (const int32_t s : w.stacks(w.start_in(rule_start_[c.rule], c.ret))) {
                    const int32_t p = w.parent_of(s);
                    if (p >= 0 && w.node_of(p) == c.ret && w.parent_of(p) == Walker::kFrameBottom) tops.push_back(w.node_of(s));
                }
            }
            for (const int32_t top : tops)
                if (cache(top).uncertain.size() > kContextThreshold) wanted.emplace_back(top, c.ret);
        }
    for (const auto& [node, caller] : wanted) (void)cache_in_context(node, caller);
}

std::shared_ptr<const CompiledGrammar> compile(const Grammar& g, std::shared_ptr<const TokenTable> tokens) {
    return std::make_shared<const CompiledGrammar>(g, std::move(tokens));
}

// ---------------------------------------------------------------------------------------------------------
// Matcher
// ---------------------------------------------------------------------------------------------------------
GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar)
    : g_(std::move(grammar)), w_(std::make_unique<Walker>(*g_)) {
    history_.push_back(w_->start(g_->root_start_, Walker::kRootBottom));
}

GrammarMatcher::~GrammarMatcher() = default;
GrammarMatcher::GrammarMatcher(GrammarMatcher&&) noexcept = default;
GrammarMatcher& GrammarMatcher::operator=(GrammarMatcher&&) noexcept = default;

bool GrammarMatcher::can_end() const { return w_->end(history_.back()); }
bool GrammarMatcher::must_end() const { return !w_->alive(history_.back()); }

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
    int32_t cur = history_.back();
    for (const char ch : bytes) {
        if (!w_->alive(cur)) return false;
        cur = w_->step(cur, static_cast<uint8_t>(ch));
    }
    if (cur == Walker::kDead) return false;
    history_.push_back(cur);
    return true;
}

bool GrammarMatcher::accept_token(int32_t token) {
    const TokenTable& t = g_->tokens();
    if (token < 0 || token >= t.size() || t.excluded[token]) return false;
    return accept_bytes(t.bytes[token]);
}

void GrammarMatcher::rollback(int n) {
    if (n < 0 || n > history_size()) fail("cannot roll back {} steps: only {} were taken", n, history_size());
    history_.resize(history_.size() - static_cast<size_t>(n));
}

void GrammarMatcher::check_uncertain(int32_t below, const CompiledGrammar::NodeCache& c, uint64_t* mask) {
    // An uncertain token is accepted iff, after its first e bytes finish the frames the cache was built over
    // (e one of its escape points), the frames below take the rest of it. Their state is the same for every
    // token, and the rests are short and shared ("\",", "\"}" ...), so these walks are a few memoised steps
    // each. (A cache over the root's frame has nothing below: once the root finishes nothing may follow, and
    // the caller skips the check.)
    const int32_t callers = w_->resume(below);
    const TokenTable& t = g_->tokens();
    int32_t e = 0;
    for (size_t k = 0; k < c.uncertain.size(); ++k) {
        const int32_t e_end = c.escape_end[k];
        const int32_t id = g_->order_->sorted[c.uncertain[k]];
        if ((mask[id >> 6] >> (id & 63)) & 1) {  // another stack already allows it
            e = e_end;
            continue;
        }
        const std::string& bytes = t.bytes[id];
        for (; e < e_end; ++e) {
            int32_t cur = callers;
            size_t d = c.escape_at[static_cast<size_t>(e)];
            while (d < bytes.size() && w_->alive(cur)) cur = w_->step(cur, static_cast<uint8_t>(bytes[d++]));
            // Every byte consumed, and something continues or the root is complete (then only the end follows).
            if (d == bytes.size() && (w_->alive(cur) || w_->end(cur))) {
                mask[id >> 6] |= uint64_t{1} << (id & 63);
                e = e_end;
                break;
            }
        }
    }
}

void GrammarMatcher::fill_mask(uint64_t* mask) {
    const int32_t state = history_.back();
    const size_t words = (static_cast<size_t>(g_->tokens().size()) + 63) / 64;
    if (auto it = mask_cache_.find(state); it != mask_cache_.end()) {
        std::memcpy(mask, it->second.data(), words * sizeof(uint64_t));
        return;
    }
    std::memset(mask, 0, words * sizeof(uint64_t));
    // Each stack's cache: its top node's, or, where that leaves too many tokens to check, the one of its top
    // node in its caller's frame (then the tokens leaving the caller's rule are checked from the frame below).
    struct Use {
        const CompiledGrammar::NodeCache* cache;
        int32_t stack;
        int32_t below;  // the frame the uncertain tokens continue in
    };
    std::vector<Use> uses;
    for (const int32_t s : w_->stacks(state)) {
        const int32_t node = w_->node_of(s), parent = w_->parent_of(s);
        const CompiledGrammar::NodeCache* c = &g_->cache(node);
        if (c->uncertain.size() > CompiledGrammar::kContextThreshold && parent >= 0) {
            uses.push_back({&g_->cache_in_context(node, w_->node_of(parent)), s, w_->parent_of(parent)});
        } else {
            uses.push_back({c, s, parent});
        }
    }
    std::vector<const CompiledGrammar::NodeCache*> merged;
    for (const Use& u : uses) {
        if (std::find(merged.begin(), merged.end(), u.cache) != merged.end()) continue;
        merged.push_back(u.cache);
        u.cache->add_accepted(mask, words);
    }
    for (const Use& u : uses)
        if (!u.cache->uncertain.empty() && u.below >= 0) check_uncertain(u.below, *u.cache, mask);
    constexpr size_t kMaxCachedMasks = 4096;
    if (mask_cache_.size() >= kMaxCachedMasks) mask_cache_.clear();
    mask_cache_.emplace(state, std::vector<uint64_t>(mask, mask + words));
}

std::vector<uint64_t> GrammarMatcher::mask() {
    std::vector<uint64_t> m((static_cast<size_t>(g_->tokens().size()) + 63) / 64);
    fill_mask(m.data());
    return m;
}

bool GrammarMatcher::apply(float* logits, int32_t n_vocab, const std::vector<int32_t>& eog) {
    // The end-of-generation tokens are excluded from masks: they keep their logits only where the grammar
    // may end.
    std::vector<std::pair<int32_t, float>> keep;
    if (can_end())
        for (const int32_t t : eog)
            if (t >= 0 && t < n_vocab) keep.emplace_back(t, logits[t]);
    const int32_t nt = std::min(n_vocab, g_->tokens().size());
    apply_mask_.resize((static_cast<size_t>(g_->tokens().size()) + 63) / 64);
    fill_mask(apply_mask_.data());
    constexpr float kMasked = -std::numeric_limits<float>::infinity();
    // Word by word: in a constrained step most words are all-forbidden or all-allowed.
    bool any = false;
    for (int32_t base = 0; base < nt; base += 64) {
        const int32_t n = std::min<int32_t>(64, nt - base);
        const uint64_t word = apply_mask_[static_cast<size_t>(base >> 6)];
        float* lg = logits + base;
        if (word == 0) {
            std::fill(lg, lg + n, kMasked);
            continue;
        }
        if (word != ~uint64_t{0})
            for (int32_t i = 0; i < n; ++i) lg[i] = (word >> i) & 1 ? lg[i] : kMasked;  // branch-free select
        if (!any)
            for (int32_t i = 0; i < n; ++i)
                if (lg[i] != kMasked) {
                    any = true;
                    break;
                }
    }
    if (nt < n_vocab) std::fill(logits + nt, logits + n_vocab, kMasked);
    for (const auto& [t, v] : keep) {
        logits[t] = v;
        any = any || v != kMasked;
    }
    return any;
}

}  // namespace hearth::grammar
