#include "tokenizer/spm.h"

#include <limits>
#include <queue>

#include "base/error.h"
#include "tokenizer/vocab.h"

namespace hearth::tok {

namespace {

// "▁" (U+2581 LOWER ONE EIGHTH BLOCK), SentencePiece's visible space.
constexpr std::string_view kSpace = "\xE2\x96\x81";

struct Symbol {
    uint32_t offset;
    uint32_t length;  // 0 once merged into its left neighbour
    int32_t prev;
    int32_t next;
};

struct Candidate {
    float score;
    int32_t left;
    int32_t right;
    uint32_t length;  // left.length + right.length when the pair was queued; a stale entry no longer matches
};

// Max-heap order: higher score first, then the leftmost pair.
struct CandidateLess {
    bool operator()(const Candidate& a, const Candidate& b) const {
        if (a.score != b.score) return a.score < b.score;
        return a.left > b.left;
    }
};

// The token a merge may produce from `piece`, or -1.
inline int32_t merge_target(const Vocab& v, std::string_view piece) {
    const int32_t id = v.find(piece);
    if (id < 0) return -1;
    switch (v.attr(id)) {
        case TokenAttr::Normal:
        case TokenAttr::UserDefined:
        case TokenAttr::Unused: return id;
        default: return -1;
    }
}

}  // namespace

std::string spm_escape(std::string_view raw, bool prefix_space) {
    std::string out;
    out.reserve(raw.size() + raw.size() / 2 + 3);
    if (prefix_space) out += kSpace;
    for (char c : raw) {
        if (c == ' ')
            out += kSpace;
        else
            out += c;
    }
    return out;
}

bool spm_words_are_independent(const Vocab& vocab) {
    for (int32_t id = 0; id < vocab.n_tokens(); ++id) {
        if (merge_target(vocab, vocab.text(id)) != id) continue;
        const std::string& t = vocab.text(id);
        for (size_t k = t.find(kSpace, 1); k != std::string::npos; k = t.find(kSpace, k + 1)) {
            if (k < kSpace.size() || t.compare(k - kSpace.size(), kSpace.size(), kSpace) != 0) return false;
        }
    }
    return true;
}

namespace {

// One tokenization; the buffers are reused from word to word.
class SpmSession {
public:
    explicit SpmSession(const Vocab& v) : vocab_(v), queue_(CandidateLess{}, std::vector<Candidate>{}) {}

    void run(std::string_view text, std::vector<int32_t>& out) {
        if (text.empty()) return;
        sym_.clear();
        for (size_t off = 0; off < text.size();) {
            const size_t len = utf8_unit_length(text, off);
            const int32_t idx = static_cast<int32_t>(sym_.size());
            sym_.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), idx - 1,
                            off + len == text.size() ? -1 : idx + 1});
            off += len;
        }
        for (size_t i = 1; i < sym_.size(); ++i) try_pair(text, static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

        while (!queue_.empty()) {
            const Candidate c = queue_.top();
            queue_.pop();
            Symbol& l = sym_[c.left];
            Symbol& r = sym_[c.right];
            // Skip pairs that an earlier merge changed: either side merged away, or grown.
            if (l.length == 0 || r.length == 0 || l.length + r.length != c.length) continue;
            l.length += r.length;
            r.length = 0;
            l.next = r.next;
            if (r.next >= 0) sym_[r.next].prev = c.left;
            try_pair(text, l.prev, c.left);
            try_pair(text, c.left, l.next);
        }

        for (int32_t i = 0; i >= 0; i = sym_[i].next) {
            const std::string_view piece = text.substr(sym_[i].offset, sym_[i].length);
            const int32_t id = merge_target(vocab_, piece);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            // Byte fallback; bytes without a byte token become <unk>, one per run within this symbol.
            bool last_unk = false;
            for (char ch : piece) {
                const uint8_t b = static_cast<uint8_t>(ch);
                const int32_t bt = vocab_.byte_token(b);
                if (bt >= 0) {
                    out.push_back(bt);
                    last_unk = false;
                    continue;
                }
                if (vocab_.unk() < 0)
                    fail("cannot tokenize byte 0x{:02X}: the vocabulary has no token for it, no byte token "
                         "<0x{:02X}> and no unknown token",
                         b, b);
                if (!last_unk) out.push_back(vocab_.unk());
                last_unk = true;
            }
        }
    }

private:
    void try_pair(std::string_view text, int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const uint32_t len = sym_[left].length + sym_[right].length;
        const int32_t id = merge_target(vocab_, text.substr(sym_[left].offset, len));
        if (id < 0) return;
        queue_.push({vocab_.score(id), left, right, len});
    }

    const Vocab& vocab_;
    std::vector<Symbol> sym_;
    std::priority_queue<Candidate, std::vector<Candidate>, CandidateLess> queue_;
};

}  // namespace

void spm_tokenize(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out) {
    if (text.empty()) return;
    if (text.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
        fail("text of {} bytes is too long to tokenize (at most {} bytes)", text.size(),
             std::numeric_limits<int32_t>::max());
    SpmSession session(vocab);
    if (!vocab.spm_words_independent()) {
        session.run(text, out);
        return;
    }
    // Words: a run of "▁" and the characters up to the next "▁". No token spans a word boundary, so each word
    // can be tokenized on its own with the same result, and the queue stays small (a queue over a whole long
    // text thrashes the cache).
    size_t begin = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        const size_t k = text.find(kSpace, pos);
        if (k == std::string_view::npos) break;
        if (k > 0 && (k < kSpace.size() || text.compare(k - kSpace.size(), kSpace.size(), kSpace) != 0) &&
            k > begin) {
            session.run(text.substr(begin, k - begin), out);
            begin = k;
        }
        pos = k + kSpace.size();
    }
    session.run(text.substr(begin), out);
}

}  // namespace hearth::tok
