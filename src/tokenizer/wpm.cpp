// WordPiece, as llama.cpp's llm_tokenizer_wpm (why hand-written: see wpm.h).
#include "tokenizer/wpm.h"

#include <algorithm>

#include <utf8proc.h>

#include "base/error.h"
#include "base/utf8.h"
#include "tokenizer/vocab.h"

namespace hearth::tok {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

bool is_chinese_char(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B920 && c <= 0x2CEAF) ||  // 0x2B820 in Unicode; 0x2B920 in HF's and llama.cpp's code
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// llama.cpp's whitespace list (the Unicode White_Space property).
bool is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// First character of the canonical decomposition.
uint32_t nfd_first(uint32_t c) {
    if (c < 0xC0) return c;
    utf8proc_int32_t buf[8];
    int last_boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 8,
                                                       UTF8PROC_DECOMPOSE, &last_boundclass);
    return n > 0 ? static_cast<uint32_t>(buf[0]) : c;
}


}  // namespace

std::vector<std::string> wpm_words(std::string_view raw) {
    std::vector<std::string> words(1);
    for (size_t i = 0; i < raw.size();) {
        const size_t len = utf8_unit_length(raw, i);
        uint32_t cp = 0xFFFD;
        if (is_valid_utf8(raw.substr(i, len))) {
            utf8proc_int32_t c;
            utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(raw.data() + i),
                             static_cast<utf8proc_ssize_t>(len), &c);
            cp = static_cast<uint32_t>(c);
        }
        i += len;
        cp = nfd_first(cp);
        if (is_whitespace(cp)) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        const utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
        if (cp == 0 || cp == 0xFFFD || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
            cat == UTF8PROC_CATEGORY_CO || cat == UTF8PROC_CATEGORY_CS)
            continue;
        // A combining mark that was already decomposed in the input ("e" U+0301): dropped, as Hugging Face's
        // BertNormalizer (strip_accents) does; llama.cpp keeps it, which makes the word [UNK].
        if (cat == UTF8PROC_CATEGORY_MN) continue;
        const bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
        const bool symbol = cat >= UTF8PROC_CATEGORY_SM && cat <= UTF8PROC_CATEGORY_SO;
        const uint32_t lower = static_cast<uint32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
        if (punct || (cp < 0x7F && symbol) || is_chinese_char(cp)) {
            if (!words.back().empty()) words.emplace_back();
            utf8_append(words.back(), lower);
            words.emplace_back();
        } else {
            utf8_append(words.back(), lower);
        }
    }
    if (words.back().empty()) words.pop_back();
    return words;
}

void wpm_tokenize(const Vocab& vocab, std::string_view raw, std::vector<int32_t>& out) {
    const size_t max_len = static_cast<size_t>(vocab.max_token_len());
    std::string word;
    for (const std::string& w : wpm_words(raw)) {
        word.assign(kSpmSpace);
        word += w;
        const size_t n = word.size();
        const size_t start = out.size();
        for (size_t i = 0; i < n;) {
            size_t matched = 0;
            for (size_t j = std::min(n, i + max_len); j > i; --j) {
                const int32_t id = vocab.find(std::string_view(word).substr(i, j - i));
                if (id >= 0) {
                    out.push_back(id);
                    matched = j - i;
                    break;
                }
            }
            if (matched == 0) {
                out.resize(start);
                break;
            }
            i += matched;
        }
        if (out.size() == start) {
            if (vocab.unk() < 0)
                fail("the word '{}' has no WordPiece tokens and the vocabulary has no unknown token", w);
            out.push_back(vocab.unk());
        }
    }
}

}  // namespace hearth::tok
