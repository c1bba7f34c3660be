// Pre-tokenizer expressions per tokenizer.ggml.pre, as llama.cpp's llama-vocab.cpp defines them, run with
// PCRE2. Why hand-written: see pretokenize.h (llama.cpp's table and chaining; PCRE2 does the Unicode work).
//
// Differences of regex engines, and what is done about them:
//  - llama.cpp runs the GPT-2 and Llama-3 expressions through hand-written matchers that implement the
//    Hugging Face (Rust fancy-regex) semantics, and the others through std::regex on a text whose non-ASCII
//    characters are collapsed to one stand-in per Unicode category. PCRE2 with PCRE2_UCP gives \p{L}, \p{N},
//    \p{P}, \s the same Unicode meaning directly (\s: White_Space, the same list llama.cpp uses).
//  - "$" in llama.cpp's std::regex (ECMAScript, no multiline) matches only at the end of the fragment; PCRE2's
//    "$" would also match before a final newline, so PCRE2_DOLLAR_ENDONLY is set.
//  - The Llama-3 / Qwen2 expressions use llama.cpp's adapted form "(?:'[sS]|'[tT]|...)" of the tokenizer.json
//    "(?i:'s|'t|...)"; PCRE2 accepts either, the adapted one is kept so that the table reads as llama.cpp's.
//  - The deepseek-llm letter class is written with \x{...} escapes: its literal form in llama.cpp contains
//    canonical singletons (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126 Ohm, U+212A Kelvin) that editors and
//    tools silently NFC-normalize into other characters, which would corrupt the ranges.
#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/error.h"
#include "tokenizer/vocab.h"

namespace hearth::tok {

namespace {

// GPT-2's expression (also the second stage of several others).
constexpr const char* kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kDeepseekLetters = R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr const char* kDeepseekPunct = R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char* kPoro = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";

}  // namespace

PreTokenizerInfo pre_tokenizer_info(const std::string& pre) {
    PreTokenizerInfo info;
    auto is = [&](std::initializer_list<const char*> names) {
        for (const char* n : names)
            if (pre == n) return true;
        return false;
    };
    if (is({"", "default"})) {
        info.regexes = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"};
    } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
        info.regexes = {kLlama3};
        info.ignore_merges = true;
        info.add_bos = 1;
    } else if (is({"dbrx", "smaug-bpe"})) {
        info.regexes = {kLlama3};
    } else if (is({"deepseek-llm"})) {
        info.regexes = {"[\\r\\n]", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"};
    } else if (is({"deepseek-coder"})) {
        info.regexes = {"[\\r\\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"};
    } else if (is({"deepseek-v3"})) {
        info.regexes = {R"(\p{N}{1,3})", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
                        R"([!"#\$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"};
    } else if (is({"falcon"})) {
        info.regexes = {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"};
    } else if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})) {
        info.regexes = {R"(\p{N})", kGpt2};
    } else if (is({"gpt-2", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en",
                   "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe"})) {
        info.regexes = {kGpt2};
    } else if (is({"qwen2", "qwen2.5", "qwen-2.5", "deepseek-r1-qwen", "stablelm2", "megrez"})) {
        info.regexes = {kQwen2};
    } else if (is({"chatglm-bpe"})) {
        info.regexes = {kLlama3};
    } else if (is({"poro-chat", "bloom", "gpt3-finnish"})) {
        info.regexes = {kPoro};
    } else if (is({"viking"})) {
        info.regexes = {kPoro, R"(\p{N})"};
    } else {
        fail("unknown pre-tokenizer type '{}' (tokenizer.ggml.pre)", pre);
    }
    return info;
}

struct PreTokenizer::Impl {
    std::vector<pcre2_code*> codes;
    ~Impl() {
        for (pcre2_code* c : codes) pcre2_code_free(c);
    }
};

PreTokenizer::PreTokenizer(const std::vector<std::string>& regexes) : impl_(std::make_unique<Impl>()) {
    for (const std::string& re : regexes) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
        if (!code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            fail("pre-tokenizer expression does not compile at offset {}: {} ({})", err_off,
                 reinterpret_cast<const char*>(msg), re);
        }
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
        impl_->codes.push_back(code);
    }
}

PreTokenizer::~PreTokenizer() = default;
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
    struct Piece {
        size_t begin, end;
        bool valid;  // valid UTF-8 (the expressions apply); else one ill-formed unit, kept as it is
    };
    std::vector<Piece> pieces;
    for (size_t i = 0; i < text.size();) {
        size_t j = i;
        while (j < text.size()) {
            const size_t len = utf8_unit_length(text, j);
            if (!is_valid_utf8(text.substr(j, len))) break;
            j += len;
        }
        if (j > i) pieces.push_back({i, j, true});
        if (j < text.size()) {
            const size_t len = utf8_unit_length(text, j);
            pieces.push_back({j, j + len, false});
            j += len;
        }
        i = j;
    }

    std::vector<Piece> next;
    for (pcre2_code* code : impl_->codes) {
        pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
        if (!md) fail("pre-tokenizer: out of memory");
        next.clear();
        for (const Piece& p : pieces) {
            if (!p.valid) {
                next.push_back(p);
                continue;
            }
            const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + p.begin);
            const size_t len = p.end - p.begin;
            size_t pos = 0, last = 0;
            while (pos <= len) {
                const int rc = pcre2_match(code, subject, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    pcre2_match_data_free(md);
                    PCRE2_UCHAR msg[256];
                    pcre2_get_error_message(rc, msg, sizeof msg);
                    fail("pre-tokenizer: matching failed: {}", reinterpret_cast<const char*>(msg));
                }
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
                const size_t mb = ov[0], me = ov[1];
                if (me == mb) {  // empty match: none of the table's expressions has one; step over a character
                    if (mb >= len) break;
                    pos = mb + utf8_unit_length(std::string_view(text.data() + p.begin, len), mb);
                    continue;
                }
                if (mb > last) next.push_back({p.begin + last, p.begin + mb, true});
                next.push_back({p.begin + mb, p.begin + me, true});
                last = pos = me;
            }
            if (last < len) next.push_back({p.begin + last, p.end, true});
        }
        pcre2_match_data_free(md);
        pieces.swap(next);
    }

    std::vector<std::string_view> out;
    out.reserve(pieces.size());
    for (const Piece& p : pieces) out.push_back(text.substr(p.begin, p.end - p.begin));
    return out;
}

}  // namespace hearth::tok
