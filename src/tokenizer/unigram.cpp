#include "tokenizer/unigram.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include "base/error.h"
#include "tokenizer/vocab.h"

namespace hearth::tok {

namespace {

// SentencePiece's score for a character no token covers: this far below the lowest Normal score.
constexpr float kUnkPenalty = 10.0f;

int32_t child(const UnigramModel& m, int32_t node, uint8_t byte) {
    const UnigramModel::Node& n = m.nodes[static_cast<size_t>(node)];
    const auto begin = m.edge_byte.begin() + n.first_edge;
    const auto end = begin + n.n_edges;
    const auto it = std::lower_bound(begin, end, byte);
    if (it == end || *it != byte) return -1;
    return m.edge_child[static_cast<size_t>(it - m.edge_byte.begin())];
}

}  // namespace

std::shared_ptr<const UnigramModel> unigram_load(const Vocab& vocab) {
    std::vector<std::pair<std::string_view, int32_t>> pieces;
    float min_score = std::numeric_limits<float>::max();
    for (int32_t id = 0; id < vocab.n_tokens(); ++id) {
        if (vocab.attr(id) != TokenAttr::Normal) continue;
        min_score = std::min(min_score, vocab.score(id));
        if (!vocab.text(id).empty()) pieces.emplace_back(vocab.text(id), id);
    }
    // Sorted, every node's children arrive in byte order, and a shared prefix is always on the path just built.
    std::sort(pieces.begin(), pieces.end());

    auto m = std::make_shared<UnigramModel>();
    m->unk_score = pieces.empty() ? 0.0f : min_score - kUnkPenalty;
    std::vector<int32_t> first_child(1, -1), last_child(1, -1), next_sibling(1, -1);
    std::vector<uint8_t> byte_of(1, 0);
    m->nodes.emplace_back();
    for (const auto& [text, id] : pieces) {
        int32_t node = 0;
        for (char ch : text) {
            const uint8_t b = static_cast<uint8_t>(ch);
            const int32_t last = last_child[static_cast<size_t>(node)];
            if (last >= 0 && byte_of[static_cast<size_t>(last)] == b) {
                node = last;
                continue;
            }
            const int32_t fresh = static_cast<int32_t>(m->nodes.size());
            m->nodes.emplace_back();
            first_child.push_back(-1);
            last_child.push_back(-1);
            next_sibling.push_back(-1);
            byte_of.push_back(b);
            if (last >= 0)
                next_sibling[static_cast<size_t>(last)] = fresh;
            else
                first_child[static_cast<size_t>(node)] = fresh;
            last_child[static_cast<size_t>(node)] = fresh;
            node = fresh;
        }
        // Tokens sharing a text: the last id, as Vocab::find.
        m->nodes[static_cast<size_t>(node)].token = id;
        m->nodes[static_cast<size_t>(node)].score = vocab.score(id);
    }
    m->edge_byte.reserve(m->nodes.size());
    m->edge_child.reserve(m->nodes.size());
    for (size_t n = 0; n < m->nodes.size(); ++n) {
        m->nodes[n].first_edge = static_cast<uint32_t>(m->edge_byte.size());
        for (int32_t c = first_child[n]; c >= 0; c = next_sibling[static_cast<size_t>(c)]) {
            m->edge_byte.push_back(byte_of[static_cast<size_t>(c)]);
            m->edge_child.push_back(c);
        }
        m->nodes[n].n_edges = static_cast<uint32_t>(m->edge_byte.size()) - m->nodes[n].first_edge;
    }
    return m;
}

void unigram_tokenize(const Vocab& vocab, const UnigramModel& m, std::string_view text, std::vector<int32_t>& out) {
    const size_t n = text.size();
    if (n == 0) return;
    if (n >= static_cast<size_t>(std::numeric_limits<int32_t>::max()))
        fail("text of {} bytes is too long to tokenize (at most {} bytes)", n,
             std::numeric_limits<int32_t>::max() - 1);

    // Unit boundaries: a token may only end on one (always so in valid UTF-8; in invalid input a token's bytes
    // could match the start of an ill-formed unit).
    std::vector<uint8_t> boundary(n + 1, 0);
    for (size_t i = 0; i < n; i += utf8_unit_length(text, i)) boundary[i] = 1;
    boundary[n] = 1;

    struct Best {
        float score = 0;
        int32_t start = -1;  // -1: not reached yet
        int32_t token = -1;  // -1: an unknown unit
    };
    std::vector<Best> best(n + 1);
    best[0].start = 0;
    // SentencePiece's arithmetic (unigram.h): a token's candidate is summed and compared in double, an unknown
    // unit's summed in float; either is held as a float. Done all in float, ties between equal multisets of pieces
    // fall the other way (7 of 58 man pages differed).
    auto offer = [&](size_t end, size_t start, double score, int32_t token) {
        Best& b = best[end];
        if (b.start < 0 || score > static_cast<double>(b.score))
            b = {static_cast<float>(score), static_cast<int32_t>(start), token};
    };
    for (size_t start = 0; start < n;) {
        const size_t unit = utf8_unit_length(text, start);
        const float here = best[start].score;
        bool covers_unit = false;
        int32_t node = 0;
        for (size_t k = start; k < n;) {
            node = child(m, node, static_cast<uint8_t>(text[k]));
            if (node < 0) break;
            ++k;
            const UnigramModel::Node& nd = m.nodes[static_cast<size_t>(node)];
            if (nd.token < 0 || !boundary[k]) continue;
            offer(k, start, static_cast<double>(nd.score) + static_cast<double>(here), nd.token);
            if (k - start == unit) covers_unit = true;
        }
        if (!covers_unit) offer(start + unit, start, static_cast<double>(m.unk_score + here), -1);
        start += unit;
    }

    struct Step {
        int32_t start, end, token;
    };
    std::vector<Step> path;
    for (int32_t end = static_cast<int32_t>(n); end > 0; end = best[static_cast<size_t>(end)].start)
        path.push_back({best[static_cast<size_t>(end)].start, end, best[static_cast<size_t>(end)].token});
    for (auto it = path.rbegin(); it != path.rend(); ++it) {
        if (it->token >= 0) {
            out.push_back(it->token);
            continue;
        }
        bool last_unk = false;
        for (int32_t i = it->start; i < it->end; ++i) {
            const uint8_t b = static_cast<uint8_t>(text[static_cast<size_t>(i)]);
            const int32_t bt = vocab.byte_token(b);
            if (bt >= 0) {
                out.push_back(bt);
                last_unk = false;
                continue;
            }
            if (vocab.unk() < 0)
                fail("cannot tokenize byte 0x{:02X}: the vocabulary has no token for it, no byte token <0x{:02X}> "
                     "and no unknown token",
                     b, b);
            if (!last_unk) out.push_back(vocab.unk());
            last_unk = true;
        }
    }
}

}  // namespace hearth::tok
