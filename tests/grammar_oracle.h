// A reference recognizer for the grammar IR, independent of the matcher: memoised "end positions" of each
// (rule, start) over the code points of the text. Slow (polynomial) and simple, for tests only.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "grammar/grammar.h"

namespace hearth::grammar::testing {

class Recognizer {
public:
    explicit Recognizer(const Grammar& g) : g_(g) {}

    // Whether the whole of `text` (UTF-8; invalid UTF-8 never matches) derives from rule `rule` (root if -1).
    bool matches(std::string_view text, int rule = -1) {
        memo_.clear();
        cps_.clear();
        if (!decode(text)) return false;
        const std::set<size_t>& e = ends(rule < 0 ? g_.root : rule, 0);
        return e.count(cps_.size()) > 0;
    }

    // Whether `text` is a prefix of some string of the language (some continuation can still match).
    // Implemented by brute force over the grammar: true iff some derivation consumes all of `text`.
    bool is_prefix(std::string_view text, int rule = -1) {
        // A text that stops inside a UTF-8 character (tokens may): a prefix if a completion of that character
        // is, tried with the lowest and the highest continuation bytes.
        for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
            const uint8_t lead = static_cast<uint8_t>(text[text.size() - back]);
            if ((lead & 0xC0) == 0x80) continue;
            const size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (n <= back) break;
            for (const char fill : {'\x80', '\xBF'}) {
                std::string whole(text);
                whole.append(n - back, fill);
                if (is_prefix(whole, rule)) return true;
            }
            return false;
        }
        memo_.clear();
        cps_.clear();
        if (!decode(text)) return false;
        prefix_mode_ = true;
        const bool ok = ends(rule < 0 ? g_.root : rule, 0).count(kPastEnd) > 0 ||
                        ends(rule < 0 ? g_.root : rule, 0).count(cps_.size()) > 0;
        prefix_mode_ = false;
        return ok;
    }

private:
    static constexpr size_t kPastEnd = SIZE_MAX;  // prefix mode: the text ran out inside the derivation

    bool decode(std::string_view s) {
        for (size_t i = 0; i < s.size();) {
            const uint8_t c = static_cast<uint8_t>(s[i]);
            int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
            if (n == 0 || i + n > s.size()) return false;
            uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
            for (int k = 1; k < n; ++k) {
                if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
                cp = cp << 6 | (static_cast<uint8_t>(s[i + k]) & 0x3F);
            }
            static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
            if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
            cps_.push_back(cp);
            i += n;
        }
        return true;
    }

    static bool in(const Element& e, uint32_t cp) {
        for (const CharRange& r : e.ranges)
            if (cp >= r.lo && cp <= r.hi) return true;
        return false;
    }

    const std::set<size_t>& ends(int rule, size_t pos) {
        const auto key = std::make_pair(rule, pos);
        if (auto it = memo_.find(key); it != memo_.end()) return it->second;
        std::set<size_t> out;
        for (const Sequence& seq : g_.rules[rule].alternatives) {
            std::set<size_t> cur{pos};
            for (const Element& e : seq) {
                std::set<size_t> next;
                for (size_t p : cur) {
                    if (p == kPastEnd) {
                        next.insert(kPastEnd);
                        continue;
                    }
                    if (e.kind == Element::Kind::Chars) {
                        if (p < cps_.size() && in(e, cps_[p]))
                            next.insert(p + 1);
                        else if (p == cps_.size() && prefix_mode_)
                            next.insert(kPastEnd);
                    } else {
                        const std::set<size_t>& sub = ends(e.rule, p);
                        next.insert(sub.begin(), sub.end());
                    }
                }
                cur = std::move(next);
                if (cur.empty()) break;
            }
            out.insert(cur.begin(), cur.end());
        }
        return memo_[key] = std::move(out);
    }

    const Grammar& g_;
    std::vector<uint32_t> cps_;
    std::map<std::pair<int, size_t>, std::set<size_t>> memo_;
    bool prefix_mode_ = false;
};

}  // namespace hearth::grammar::testing
