// Byte-level BPE, as llama.cpp's llm_tokenizer_bpe (why hand-written: see bpe.h).
#include "tokenizer/bpe.h"

#include <array>
#include <atomic>
#include <queue>

#include "base/error.h"
#include "base/utf8.h"
#include "tokenizer/vocab.h"

namespace hearth::tok {

namespace {


struct ByteTables {
    std::array<std::string, 256> byte_to_text;  // UTF-8 of the byte-level character of each byte
    std::array<int16_t, 512> cp_to_byte;         // byte-level code point (< 512) -> byte, or -1
    ByteTables() {
        cp_to_byte.fill(-1);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
            utf8_append(byte_to_text[b], cp);
            cp_to_byte[cp] = static_cast<int16_t>(b);
        }
    }
};

const ByteTables& tables() {
    static const ByteTables t;
    return t;
}

uint64_t pair_key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}

}  // namespace

std::string bpe_byte_encode(std::string_view raw) {
    const ByteTables& t = tables();
    std::string out;
    out.reserve(raw.size() * 2);
    for (char c : raw) out += t.byte_to_text[static_cast<uint8_t>(c)];
    return out;
}

std::string bpe_byte_decode(std::string_view text) {
    const ByteTables& t = tables();
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t len = utf8_unit_length(text, i);
        const std::string_view ch = text.substr(i, len);
        uint32_t cp = 0x110000;
        if (len == 1 && static_cast<uint8_t>(ch[0]) < 0x80) {
            cp = static_cast<uint8_t>(ch[0]);
        } else if (len == 2 && is_valid_utf8(ch)) {
            cp = ((static_cast<uint8_t>(ch[0]) & 0x1Fu) << 6) | (static_cast<uint8_t>(ch[1]) & 0x3Fu);
        }
        if (cp < t.cp_to_byte.size() && t.cp_to_byte[cp] >= 0)
            out += static_cast<char>(t.cp_to_byte[cp]);
        else
            out.append(ch);
        i += len;
    }
    return out;
}

std::shared_ptr<const BpeModel> bpe_load(const Vocab& vocab, const std::vector<std::string>& merges,
                                         const PreTokenizerInfo& pre) {
    auto m = std::make_shared<BpeModel>(BpeModel{PreTokenizer(pre.regexes), pre.ignore_merges, {}, {}, {}});
    static std::atomic<uint64_t> next_serial{1};
    m->serial = next_serial++;
    for (int b = 0; b < 256; ++b) m->byte_token[b] = vocab.find(tables().byte_to_text[b]);
    size_t slots = 16;
    while (slots < 2 * merges.size() + 16) slots *= 2;  // load factor <= 1/2
    m->table.assign(slots, BpeModel::Slot{});
    for (size_t i = 0; i < merges.size(); ++i) {
        const std::string& line = merges[i];
        const size_t sp = line.find(' ', 1);
        if (sp == std::string::npos || sp + 1 >= line.size())
            fail("tokenizer.ggml.merges[{}] = '{}' is not two tokens separated by a space", i, line);
        const std::string_view left = std::string_view(line).substr(0, sp);
        const std::string_view right = std::string_view(line).substr(sp + 1);
        const int32_t l = vocab.find(left), r = vocab.find(right);
        if (l < 0 || r < 0)
            fail("tokenizer.ggml.merges[{}] = '{}' refers to '{}', which is not a token", i, line,
                 l < 0 ? left : right);
        std::string merged(left);
        merged += right;
        const uint64_t key = pair_key(l, r);
        const size_t mask = m->table.size() - 1;
        size_t k = (key * 0x9E3779B97F4A7C15ull) >> 20 & mask;
        while (m->table[k].key != ~uint64_t(0) && m->table[k].key != key) k = (k + 1) & mask;
        if (m->table[k].key == key) continue;  // a duplicate merge: the first one's rank stands
        m->table[k] = {key, BpeModel::Merge{static_cast<int32_t>(i), vocab.find(merged)}};
    }
    return m;
}

void bpe_tokenize(const Vocab& vocab, const BpeModel& model, std::string_view raw, std::vector<int32_t>& out) {
    // Symbols are runs of raw bytes: every raw byte is one byte-level character, so a symbol's token follows
    // from the merge table alone, and byte-level text is only built for the whole-word lookup of
    // ignore_merges and for the rare symbol that is no token.
    struct Symbol {
        uint32_t begin, len;  // raw bytes of the piece
        int32_t id;           // token of the text, or -1
        int32_t prev, next;
    };
    struct Bigram {
        int32_t rank;
        int32_t left, right;
        uint32_t left_len, right_len;  // lengths at creation: a changed length means a stale entry
        int32_t merged;
    };
    struct Worse {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
        }
    };
    std::vector<Symbol> sym;
    std::vector<Bigram> heap;
    std::priority_queue<Bigram, std::vector<Bigram>, Worse> queue(Worse{}, std::move(heap));
    std::string word;

    // Words repeat: a per-thread cache of pre-token -> ids (bounded; keyed by the model's serial).
    struct Cache {
        uint64_t serial = 0;
        std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> ids;
    };
    thread_local Cache cache;
    if (cache.serial != model.serial) {
        cache.ids.clear();
        cache.serial = model.serial;
    }
    constexpr size_t kCacheEntries = 1 << 16;
    constexpr size_t kCachedPieceBytes = 64;  // longer pieces (runs of spaces, long numbers...) are not cached
    auto remember = [&](std::string_view piece, size_t first_out) {
        if (cache.ids.size() >= kCacheEntries) cache.ids.clear();
        cache.ids.emplace(std::string(piece), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first_out), out.end()));
    };

    for (const std::string_view piece : model.pre.split(raw)) {
        if (piece.empty()) continue;
        const bool cacheable = piece.size() > 1 && piece.size() <= kCachedPieceBytes;
        if (cacheable) {
            if (const auto it = cache.ids.find(piece); it != cache.ids.end()) {
                out.insert(out.end(), it->second.begin(), it->second.end());
                continue;
            }
        }
        const size_t first_out = out.size();
        if (piece.size() == 1 && model.byte_token[static_cast<uint8_t>(piece[0])] >= 0) {
            out.push_back(model.byte_token[static_cast<uint8_t>(piece[0])]);
            continue;
        }
        if (model.ignore_merges) {
            word = bpe_byte_encode(piece);
            const int32_t id = vocab.find(word);
            if (id >= 0) {
                out.push_back(id);
                if (cacheable) remember(piece, first_out);
                continue;
            }
        }
        sym.clear();
        for (size_t i = 0; i < piece.size(); ++i) {
            const int32_t idx = static_cast<int32_t>(sym.size());
            sym.push_back({static_cast<uint32_t>(i), 1, model.byte_token[static_cast<uint8_t>(piece[i])], idx - 1, -1});
            if (idx > 0) sym[idx - 1].next = idx;
        }
        auto try_add = [&](int32_t l, int32_t r) {
            if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
            const BpeModel::Merge* mg = model.find_merge(pair_key(sym[l].id, sym[r].id));
            if (!mg) return;
            queue.push({mg->rank, l, r, sym[l].len, sym[r].len, mg->merged});
        };
        for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
        while (!queue.empty()) {
            const Bigram b = queue.top();
            queue.pop();
            Symbol& l = sym[b.left];
            Symbol& r = sym[b.right];
            if (l.len != b.left_len || r.len != b.right_len || l.len == 0 || r.len == 0) continue;
            l.len += r.len;
            r.len = 0;
            l.next = r.next;
            if (r.next >= 0) sym[r.next].prev = b.left;
            l.id = b.merged;
            try_add(l.prev, b.left);
            try_add(b.left, l.next);
        }
        for (const Symbol& s : sym) {
            if (s.len == 0) continue;
            if (s.id >= 0) {
                out.push_back(s.id);
                continue;
            }
            // No token: the tokens of the single bytes of its byte-level text, as llama.cpp (bytes of a
            // multi-byte character are no tokens and are dropped there too).
            const std::string text = bpe_byte_encode(piece.substr(s.begin, s.len));
            for (const char c : text) {
                const int32_t id = vocab.find(std::string_view(&c, 1));
                if (id >= 0) out.push_back(id);
            }
        }
        if (cacheable) remember(piece, first_out);
    }
}

}  // namespace hearth::tok
