#include "tokenizer/vocab.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <map>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/spm.h"
#include "tokenizer/unigram.h"
#include "tokenizer/wpm.h"

namespace hearth::tok {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";    // U+2581

// ---- UTF-8 ---------------------------------------------------------------------------------------------

enum class Utf8Kind { Valid, Invalid, Truncated };
struct Utf8Step {
    Utf8Kind kind;
    size_t length;  // bytes consumed: the whole character, or the maximal ill-formed subpart
};

// Classifies the sequence starting at s[i] per Unicode Table 3-7 (well-formed UTF-8 byte sequences).
Utf8Step utf8_step(std::string_view s, size_t i) {
    const uint8_t c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) return {Utf8Kind::Valid, 1};
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        need = 2;
    } else if (c == 0xED) {
        need = 2, hi = 0x9F;
    } else if (c == 0xF0) {
        need = 3, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3, hi = 0x8F;
    } else {
        return {Utf8Kind::Invalid, 1};  // 80..BF, C0, C1, F5..FF cannot start a sequence
    }
    for (size_t k = 1; k <= need; ++k) {
        if (i + k >= s.size()) return {Utf8Kind::Truncated, k};
        const uint8_t d = static_cast<uint8_t>(s[i + k]);
        const uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (d < l || d > h) return {Utf8Kind::Invalid, k};
    }
    return {Utf8Kind::Valid, need + 1};
}

// ---- GGUF helpers --------------------------------------------------------------------------------------

bool is_integer(gguf::ValueType t) {
    using T = gguf::ValueType;
    return t == T::UINT8 || t == T::INT8 || t == T::UINT16 || t == T::INT16 || t == T::UINT32 ||
           t == T::INT32 || t == T::UINT64 || t == T::INT64;
}
bool is_signed(gguf::ValueType t) {
    using T = gguf::ValueType;
    return t == T::INT8 || t == T::INT16 || t == T::INT32 || t == T::INT64;
}

enum class IdPolicy { Required, Optional };

// A special token id: `def` when the key is absent; -1 for "none" (4294967295, or any negative value).
// Ids out of range throw for ids the tokenizer relies on (Required); others are ignored, as llama.cpp does
// (converters have written padding ids one past the vocabulary).
int32_t read_token_id(const gguf::File& f, std::string_view key, int32_t def, int32_t n_tokens, IdPolicy policy) {
    const gguf::Value* v = f.find(key);
    if (!v) return def < n_tokens ? def : -1;
    if (!is_integer(v->type))
        fail("{}: {} has type {}, expected an integer token id", f.path(), key, gguf::value_type_name(v->type));
    int64_t id;
    if (is_signed(v->type)) {
        if (v->i < 0) return -1;
        id = v->i;
    } else {
        if (v->u == 0xFFFFFFFFull || v->u == std::numeric_limits<uint64_t>::max()) return -1;
        if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            fail("{}: {} = {} is not a valid token id", f.path(), key, v->u);
        id = static_cast<int64_t>(v->u);
    }
    if (id >= n_tokens) {
        if (policy == IdPolicy::Optional) return -1;
        fail("{}: {} = {} is out of range (the vocabulary has {} tokens)", f.path(), key, id, n_tokens);
    }
    return static_cast<int32_t>(id);
}

bool contains_any(const std::string& s, std::initializer_list<const char*> subs) {
    for (const char* sub : subs)
        if (s.find(sub) != std::string::npos) return true;
    return false;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// "<0xAB>" -> 0xAB, else -1.
int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
    const int h = hex_digit(t[3]), l = hex_digit(t[4]);
    if (h < 0 || l < 0) return -1;
    return h * 16 + l;
}

inline bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

constexpr uint8_t kLstrip = 1, kRstrip = 2;

}  // namespace

// ---- loading -------------------------------------------------------------------------------------------

Vocab Vocab::from_gguf(const gguf::File& f) {
    if (!f.has("tokenizer.ggml.model"))
        fail("{}: the file has no tokenizer (tokenizer.ggml.model is missing)", f.path());
    const std::string model = f.get_str("tokenizer.ggml.model");
    Vocab v;
    if (model == "llama") {
        v.model_ = TokenizerModel::Spm;
    } else if (model == "gpt2") {
        v.model_ = TokenizerModel::Bpe;
    } else if (model == "bert") {
        v.model_ = TokenizerModel::Wpm;
    } else {
        fail("{}: tokenizer model '{}' is not supported yet (supported: 'llama', 'gpt2', 'bert')", f.path(), model);
    }
    v.pre_ = f.get_str_or("tokenizer.ggml.pre", "");
    PreTokenizerInfo pre_info;
    if (v.model_ == TokenizerModel::Bpe) {
        try {
            pre_info = pre_tokenizer_info(v.pre_);
        } catch (const Error& e) {
            fail("{}: {}", f.path(), e.what());
        }
    }

    if (!f.has("tokenizer.ggml.tokens")) fail("{}: tokenizer.ggml.tokens is missing", f.path());
    v.tokens_ = f.get_str_array("tokenizer.ggml.tokens");
    if (v.tokens_.empty()) fail("{}: tokenizer.ggml.tokens is empty", f.path());
    if (v.tokens_.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
        fail("{}: tokenizer.ggml.tokens has {} entries, more than a token id can hold", f.path(), v.tokens_.size());
    const size_t n = v.tokens_.size();
    const int32_t n_tok = static_cast<int32_t>(n);

    if (f.has("tokenizer.ggml.scores")) {
        v.scores_ = f.get_f32_array("tokenizer.ggml.scores");
        if (v.scores_.size() != n)
            fail("{}: tokenizer.ggml.scores has {} entries but tokenizer.ggml.tokens has {}", f.path(),
                 v.scores_.size(), n);
        for (size_t i = 0; i < n; ++i)
            if (std::isnan(v.scores_[i])) fail("{}: tokenizer.ggml.scores[{}] is NaN", f.path(), i);
    } else {
        v.scores_.assign(n, 0.0f);
    }

    v.attrs_.assign(n, TokenAttr::Normal);
    if (f.has("tokenizer.ggml.token_type")) {
        const std::vector<int32_t> types = f.get_i32_array("tokenizer.ggml.token_type");
        if (types.size() != n)
            fail("{}: tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}", f.path(),
                 types.size(), n);
        for (size_t i = 0; i < n; ++i) {
            switch (types[i]) {
                case 0:  // undefined
                case 1: v.attrs_[i] = TokenAttr::Normal; break;
                case 2: v.attrs_[i] = TokenAttr::Unknown; break;
                case 3: v.attrs_[i] = TokenAttr::Control; break;
                case 4: v.attrs_[i] = TokenAttr::UserDefined; break;
                case 5: v.attrs_[i] = TokenAttr::Unused; break;
                case 6: v.attrs_[i] = TokenAttr::Byte; break;
                default:
                    fail("{}: tokenizer.ggml.token_type[{}] = {} is not a token type (0..6)", f.path(), i, types[i]);
            }
        }
    }
    v.token_byte_.assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
        if (v.attrs_[i] != TokenAttr::Byte) continue;
        const int b = parse_byte_token(v.tokens_[i]);
        if (b < 0)
            fail("{}: token {} is a byte token but its text '{}' is not of the form <0xXX>", f.path(), i,
                 v.tokens_[i]);
        v.token_byte_[i] = static_cast<uint8_t>(b);
    }

    // Defaults as llama.cpp's per tokenizer model.
    int32_t def_bos = 1, def_eos = 2, def_unk = 0, def_sep = -1, def_pad = -1;
    bool def_add_bos = true, def_add_space_prefix = true;
    if (v.model_ == TokenizerModel::Bpe) {
        def_bos = 11, def_eos = 11, def_unk = -1;
        def_add_bos = pre_info.add_bos == 1;
        def_add_space_prefix = false;
    } else if (v.model_ == TokenizerModel::Wpm) {
        def_bos = 101, def_eos = -1, def_unk = 100, def_sep = 102, def_pad = 0;
        def_add_space_prefix = false;
    }
    v.bos_ = read_token_id(f, "tokenizer.ggml.bos_token_id", def_bos, n_tok, IdPolicy::Required);
    // BERT's [CLS] plays the part of BOS.
    if (v.model_ == TokenizerModel::Wpm && f.has("tokenizer.ggml.cls_token_id"))
        v.bos_ = read_token_id(f, "tokenizer.ggml.cls_token_id", def_bos, n_tok, IdPolicy::Required);
    v.eos_ = read_token_id(f, "tokenizer.ggml.eos_token_id", def_eos, n_tok, IdPolicy::Required);
    v.unk_ = read_token_id(f, "tokenizer.ggml.unknown_token_id", def_unk, n_tok, IdPolicy::Required);
    v.eot_ = read_token_id(f, "tokenizer.ggml.eot_token_id", -1, n_tok, IdPolicy::Required);
    v.eom_ = read_token_id(f, "tokenizer.ggml.eom_token_id", -1, n_tok, IdPolicy::Required);
    v.pad_ = read_token_id(f, "tokenizer.ggml.padding_token_id", def_pad, n_tok, IdPolicy::Optional);
    // llama.cpp's key is spelled "seperator"; accept the correct spelling too.
    v.sep_ = read_token_id(f, "tokenizer.ggml.seperator_token_id", -1, n_tok, IdPolicy::Optional);
    if (v.sep_ < 0) v.sep_ = read_token_id(f, "tokenizer.ggml.separator_token_id", def_sep, n_tok, IdPolicy::Optional);
    v.add_bos_ = f.get_bool_or("tokenizer.ggml.add_bos_token", def_add_bos);
    v.add_eos_ = f.get_bool_or("tokenizer.ggml.add_eos_token", false);
    v.add_space_prefix_ = f.get_bool_or("tokenizer.ggml.add_space_prefix", def_add_space_prefix);
    if (v.model_ == TokenizerModel::Wpm) {
        v.add_sep_ = f.get_bool_or("tokenizer.ggml.add_sep_token", true);
        if (v.add_sep_ && v.sep_ < 0)
            fail("{}: the WordPiece vocabulary adds a SEP token but has none (tokenizer.ggml.seperator_token_id)",
                 f.path());
    }
    if (v.add_bos_ && v.bos_ < 0)
        fail("{}: tokenizer.ggml.add_bos_token is true but the vocabulary has no BOS token", f.path());
    if (v.add_eos_ && v.eos_ < 0)
        fail("{}: tokenizer.ggml.add_eos_token is true but the vocabulary has no EOS token", f.path());

    for (const char* key : {"tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id",
                            "tokenizer.ggml.fim_sep_token_id"}) {
        const int32_t id = read_token_id(f, key, -1, n_tok, IdPolicy::Optional);
        if (id >= 0) v.eog_ids_.push_back(id);
    }

    std::string name = f.get_str_or("general.name", "");
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    v.finish_load(name, v.pre_, f.get_str_or("general.architecture", ""));

    // Hearth's own key (unigram.h): llama.cpp does not read it and merges instead.
    if (const gguf::Value* alg = f.find("tokenizer.hearth.algorithm")) {
        if (alg->type != gguf::ValueType::STRING)
            fail("{}: tokenizer.hearth.algorithm has type {}, expected a string", f.path(),
                 gguf::value_type_name(alg->type));
        if (v.model_ != TokenizerModel::Spm)
            fail("{}: tokenizer.hearth.algorithm applies to 'llama' tokenizers, not '{}'", f.path(), model);
        if (alg->s == "unigram")
            v.unigram_ = unigram_load(v);
        else if (alg->s != "bpe")
            fail("{}: tokenizer.hearth.algorithm '{}' is not known (expected 'bpe' or 'unigram')", f.path(), alg->s);
    }

    if (v.model_ == TokenizerModel::Bpe) {
        if (!f.has("tokenizer.ggml.merges")) fail("{}: tokenizer.ggml.merges is missing (needed by 'gpt2')", f.path());
        const std::vector<std::string> merges = f.get_str_array("tokenizer.ggml.merges");
        try {
            v.bpe_ = bpe_load(v, merges, pre_info);
        } catch (const Error& e) {
            fail("{}: {}", f.path(), e.what());
        }
    }
    return v;
}

void Vocab::finish_load(const std::string& model_name, const std::string& tokenizer_pre, const std::string& arch) {
    const int32_t n = n_tokens();
    text_to_id_.reserve(tokens_.size());
    for (int32_t i = 0; i < n; ++i) {
        max_token_len_ = std::max(max_token_len_, static_cast<int32_t>(tokens_[i].size()));
        if (tokens_[i].empty()) continue;  // cannot be matched; decodes to nothing
        text_to_id_[tokens_[i]] = i;
    }

    // End-of-generation tokens, recognised by text as llama.cpp does (and made Control, as there).
    static const char* const kEotTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                            "<end_of_utterance>"};
    static const char* const kEogTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                                            "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                                            "<|end_of_text|>", "<end_of_utterance>"};
    if (eot_ < 0) {
        for (const char* t : kEotTexts) {
            const int32_t id = find(t);
            if (id >= 0) {
                eot_ = id;
                attrs_[id] = TokenAttr::Control;
                break;
            }
        }
    }
    if (eom_ < 0) eom_ = find("<|eom_id|>");
    for (const char* t : kEogTexts) {
        const int32_t id = find(t);
        if (id >= 0) eog_ids_.push_back(id);
    }
    for (int32_t id : {eos_, eot_, eom_})
        if (id >= 0) eog_ids_.push_back(id);
    std::sort(eog_ids_.begin(), eog_ids_.end());
    eog_ids_.erase(std::unique(eog_ids_.begin(), eog_ids_.end()), eog_ids_.end());
    for (const char* t : kEogTexts) {
        const int32_t id = find(t);
        if (id >= 0) attrs_[id] = TokenAttr::Control;
    }

    // Byte fallback.
    static const char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const char buf[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
        int32_t id = find(std::string_view(buf, 6));
        if (id < 0) {
            const char one = static_cast<char>(b);
            id = find(std::string_view(&one, 1));
        }
        byte_to_token_[b] = id;
    }

    if (model_ == TokenizerModel::Spm) spm_words_independent_ = spm_words_are_independent(*this);

    // Special tokens, in llama.cpp's processing order: longest text first (ties: lower id first).
    std::vector<int32_t> special;
    for (int32_t i = 0; i < n; ++i) {
        const TokenAttr a = attrs_[i];
        if ((a == TokenAttr::Control || a == TokenAttr::UserDefined || a == TokenAttr::Unknown) && !tokens_[i].empty())
            special.push_back(i);
    }
    std::stable_sort(special.begin(), special.end(),
                     [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

    // Strip flags set by model name, as llama.cpp (the attribute is not stored in GGUF).
    strip_.assign(tokens_.size(), 0);
    auto set_strip = [&](const char* text, uint8_t flag, bool on) {
        const int32_t id = find(text);
        if (id < 0) return;
        strip_[id] = on ? (strip_[id] | flag) : (strip_[id] & ~flag);
    };
    if (contains_any(tokenizer_pre, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
        contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
        set_strip("<mask>", kLstrip, true);
    } else if (contains_any(model_name, {"phi-3", "phi3"})) {
        for (int32_t id : special) strip_[id] |= kRstrip;
        set_strip("</s>", kRstrip, true);
        for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) set_strip(t, kRstrip, false);
    } else if (contains_any(model_name, {"modern-bert"})) {
        set_strip("[MASK]", kLstrip, true);
    }

    special_rank_.assign(tokens_.size(), -1);
    trie_.assign(1, TrieNode{});
    for (size_t r = 0; r < special.size(); ++r) {
        const int32_t id = special[r];
        special_rank_[id] = static_cast<int32_t>(r);
        int32_t node = 0;
        for (char ch : tokens_[id]) {
            const uint8_t c = static_cast<uint8_t>(ch);
            auto& next = trie_[node].next;
            auto it = std::lower_bound(next.begin(), next.end(), c,
                                       [](const std::pair<uint8_t, int32_t>& e, uint8_t k) { return e.first < k; });
            if (it != next.end() && it->first == c) {
                node = it->second;
            } else {
                const int32_t child = static_cast<int32_t>(trie_.size());
                next.insert(it, {c, child});
                trie_.emplace_back();
                node = child;
            }
        }
        trie_[node].tokens.push_back(id);
    }
}

// ---- lookups -------------------------------------------------------------------------------------------

void Vocab::check_id(int32_t id) const {
    if (id < 0 || id >= n_tokens())
        fail("token id {} is out of range (the vocabulary has {} tokens)", id, n_tokens());
}

const std::string& Vocab::text(int32_t id) const {
    check_id(id);
    return tokens_[id];
}
TokenAttr Vocab::attr(int32_t id) const {
    check_id(id);
    return attrs_[id];
}
float Vocab::score(int32_t id) const {
    check_id(id);
    return scores_[id];
}
bool Vocab::lstrip(int32_t id) const {
    check_id(id);
    return strip_[id] & kLstrip;
}
bool Vocab::rstrip(int32_t id) const {
    check_id(id);
    return strip_[id] & kRstrip;
}
int32_t Vocab::find(std::string_view t) const {
    const auto it = text_to_id_.find(t);
    return it == text_to_id_.end() ? -1 : it->second;
}
bool Vocab::is_eog(int32_t id) const { return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id); }

// ---- encoding ------------------------------------------------------------------------------------------

// Splits `text` into raw-text fragments and special tokens. Equivalent to llama.cpp's tokenizer_st_partition,
// which takes the special tokens one by one, longest text first, and splits every remaining raw fragment at
// each leftmost non-overlapping occurrence (stripping whitespace beside tokens with lstrip / rstrip). Here all
// occurrences are found in one pass over a trie, then accepted in that same order; an occurrence is accepted
// iff it lies inside what is still raw text, i.e. overlaps no span accepted (or stripped) before it.
std::vector<Vocab::Fragment> Vocab::partition(std::string_view text, bool parse_special) const {
    std::vector<Fragment> out;
    if (text.empty()) return out;
    const size_t n = text.size();
    auto eligible = [&](int32_t id) {
        const TokenAttr a = attrs_[id];
        return a == TokenAttr::UserDefined || (parse_special && (a == TokenAttr::Control || a == TokenAttr::Unknown));
    };

    struct Occurrence {
        int32_t rank;
        int32_t id;
        size_t begin, end;
    };
    std::vector<Occurrence> occ;
    if (trie_.size() > 1) {
        for (size_t i = 0; i < n; ++i) {
            int32_t node = 0;
            for (size_t j = i; j < n; ++j) {
                const uint8_t c = static_cast<uint8_t>(text[j]);
                const auto& next = trie_[node].next;
                auto it = std::lower_bound(next.begin(), next.end(), c,
                                           [](const std::pair<uint8_t, int32_t>& e, uint8_t k) { return e.first < k; });
                if (it == next.end() || it->first != c) break;
                node = it->second;
                // Tokens sharing a text: the first in processing order claims every occurrence.
                for (int32_t id : trie_[node].tokens) {
                    if (eligible(id)) {
                        occ.push_back({special_rank_[id], id, i, j + 1});
                        break;
                    }
                }
            }
        }
    }
    if (occ.empty()) {
        out.push_back({-1, 0, n});
        return out;
    }
    std::sort(occ.begin(), occ.end(), [](const Occurrence& a, const Occurrence& b) {
        return a.rank != b.rank ? a.rank < b.rank : a.begin < b.begin;
    });

    struct Claim {
        size_t end;  // end of the claimed span (token plus stripped whitespace)
        size_t token_begin;
        int32_t id;
    };
    std::map<size_t, Claim> claims;  // by start of the claimed span
    for (const Occurrence& o : occ) {
        auto next = claims.upper_bound(o.begin);
        if (next != claims.end() && next->first < o.end) continue;
        size_t left_bound = 0;
        if (next != claims.begin()) {
            const auto prev = std::prev(next);
            if (prev->second.end > o.begin) continue;
            left_bound = prev->second.end;
        }
        const size_t right_bound = next == claims.end() ? n : next->first;
        size_t b = o.begin, e = o.end;
        if (strip_[o.id] & kLstrip)
            while (b > left_bound && is_space(text[b - 1])) --b;
        if (strip_[o.id] & kRstrip)
            while (e < right_bound && is_space(text[e])) ++e;
        claims.emplace(b, Claim{e, o.begin, o.id});
    }

    size_t pos = 0;
    for (const auto& [begin, c] : claims) {
        if (begin > pos) out.push_back({-1, pos, begin - pos});
        out.push_back({c.id, c.token_begin, tokens_[c.id].size()});
        pos = c.end;
    }
    if (pos < n) out.push_back({-1, pos, n - pos});
    return out;
}

std::vector<int32_t> Vocab::encode(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (add_special && add_bos_) out.push_back(bos_);
    bool prev_special = true;  // the start of the input counts as "after a special token"
    for (const Fragment& fr : partition(text, parse_special)) {
        if (fr.token >= 0) {
            out.push_back(fr.token);
            prev_special = true;
            continue;
        }
        const std::string_view raw = text.substr(fr.offset, fr.length);
        switch (model_) {
            case TokenizerModel::Spm:
                if (unigram_)
                    unigram_tokenize(*this, *unigram_, spm_escape(raw, add_space_prefix_ && prev_special), out);
                else
                    spm_tokenize(*this, spm_escape(raw, add_space_prefix_ && prev_special), out);
                break;
            case TokenizerModel::Bpe: bpe_tokenize(*this, *bpe_, raw, out); break;
            case TokenizerModel::Wpm: wpm_tokenize(*this, raw, out); break;
        }
        prev_special = false;
    }
    if (add_special && add_sep_) out.push_back(sep_);
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
}

// ---- decoding ------------------------------------------------------------------------------------------

std::string Vocab::token_to_piece(int32_t id, bool special) const {
    check_id(id);
    const std::string& t = tokens_[id];
    switch (attrs_[id]) {
        case TokenAttr::Control:
        case TokenAttr::Unknown: return special ? t : std::string();
        case TokenAttr::UserDefined: return t;
        case TokenAttr::Unused: return std::string();
        case TokenAttr::Byte: return std::string(1, static_cast<char>(token_byte_[id]));
        case TokenAttr::Normal: break;
    }
    if (model_ == TokenizerModel::Bpe) return bpe_byte_decode(t);
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
        if (t.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
            out += ' ';
            i += kSpmSpace.size();
        } else {
            out += t[i++];
        }
    }
    return out;
}

std::string Vocab::decode(const std::vector<int32_t>& ids, bool special, bool remove_special) const {
    for (int32_t id : ids) check_id(id);
    size_t begin = 0, end = ids.size();
    // WordPiece: the first word's "▁" is not text either.
    bool remove_space = add_space_prefix_ || model_ == TokenizerModel::Wpm;
    if (remove_special && add_bos_ && end > 0 && ids[0] == bos_) {
        remove_space = model_ == TokenizerModel::Wpm;  // [CLS] is not the "▁" of the first word
        begin = 1;
    }
    if (remove_special && add_eos_ && end > begin && ids[end - 1] == eos_) --end;
    if (remove_special && add_sep_ && end > begin && ids[end - 1] == sep_) --end;
    std::string out;
    for (size_t i = begin; i < end; ++i) {
        std::string piece = token_to_piece(ids[i], special);
        if (remove_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        // WordPiece: the first piece that is text loses its "▁" (an unrendered [CLS] before it does not count).
        if (model_ != TokenizerModel::Wpm || !piece.empty()) remove_space = false;
        out += piece;
    }
    return out;
}

// ---- UTF-8 / streaming ---------------------------------------------------------------------------------

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const Utf8Step st = utf8_step(s, i);
        if (st.kind == Utf8Kind::Valid)
            out.append(s.substr(i, st.length));
        else
            out += kReplacement;
        i += st.length;
    }
    return out;
}

bool is_valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const Utf8Step st = utf8_step(s, i);
        if (st.kind != Utf8Kind::Valid) return false;
        i += st.length;
    }
    return true;
}

size_t utf8_unit_length(std::string_view s, size_t i) { return utf8_step(s, i).length; }

StreamDecoder::StreamDecoder(const Vocab& vocab, bool special, bool strip_leading_space)
    : vocab_(&vocab), special_(special), strip_leading_space_(strip_leading_space) {}

std::string StreamDecoder::push(int32_t id) {
    std::string piece = vocab_->token_to_piece(id, special_);
    const bool wpm = vocab_->model() == TokenizerModel::Wpm;
    if (first_ && strip_leading_space_ && (vocab_->add_space_prefix() || wpm) && !piece.empty() && piece[0] == ' ')
        piece.erase(0, 1);
    if (!wpm || !piece.empty()) first_ = false;  // WordPiece: an unrendered [CLS] is not the first word
    pending_ += piece;

    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
        const Utf8Step st = utf8_step(pending_, i);
        if (st.kind == Utf8Kind::Truncated) break;  // may still be completed by the next token
        if (st.kind == Utf8Kind::Valid)
            out.append(pending_, i, st.length);
        else
            out += kReplacement;
        i += st.length;
    }
    pending_.erase(0, i);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = sanitize_utf8(pending_);
    pending_.clear();
    first_ = true;
    return out;
}

}  // namespace hearth::tok
