// Tokenizer encoding throughput (issue 3): llama-spm, llama3 (llama-bpe) and qwen2 over the same ~1 MB text,
// one core. The text mixes English prose (the Markdown documents of ../shared and of this repository),
// C++ source (this repository's src/), and CJK text. No CJK corpus is available offline, so the CJK part is
// made of the Qwen vocabulary's own all-CJK tokens, decoded and joined in a fixed pseudo-random order with
// CJK punctuation: real words in a realistic character mix, though not real sentences.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tokenizer/import.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

std::string shared_dir() {
    if (const char* e = std::getenv("HEARTH_SHARED"); e && *e) return e;
    return std::string(HEARTH_SOURCE_DIR) + "/../shared";
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Every file with one of the extensions under `dir`, sorted by path so the text is the same on every run.
std::string concat_files(const fs::path& dir, const std::vector<std::string>& exts) {
    std::vector<fs::path> files;
    if (!fs::exists(dir)) return {};
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && std::find(exts.begin(), exts.end(), e.path().extension().string()) != exts.end())
            files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::string s;
    for (const auto& f : files) s += read_file(f) + "\n";
    return s;
}

tok::Vocab imported(const std::string& path, const std::string& pre) { return tok::import_vocab(path, pre); }

bool all_cjk(const std::string& s) {
    // Decodes UTF-8 by hand: only 3-byte characters in the CJK / kana / Hangul blocks count.
    if (s.empty() || s.size() % 3 != 0) return false;
    for (size_t i = 0; i < s.size(); i += 3) {
        const auto c0 = static_cast<uint8_t>(s[i]), c1 = static_cast<uint8_t>(s[i + 1]),
                   c2 = static_cast<uint8_t>(s[i + 2]);
        if ((c0 & 0xF0) != 0xE0 || (c1 & 0xC0) != 0x80 || (c2 & 0xC0) != 0x80) return false;
        const uint32_t cp = ((c0 & 0x0Fu) << 12) | ((c1 & 0x3Fu) << 6) | (c2 & 0x3Fu);
        const bool cjk = (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3040 && cp <= 0x30FF) ||
                         (cp >= 0xAC00 && cp <= 0xD7AF);
        if (!cjk) return false;
    }
    return true;
}

const std::string& corpus() {
    static const std::string text = [] {
        const std::string shared = shared_dir();
        const std::string english =
            concat_files(shared, {".md"}) + concat_files(fs::path(HEARTH_SOURCE_DIR) / "docs", {".md"}) +
            read_file(fs::path(HEARTH_SOURCE_DIR) / "README.md");
        const std::string code = concat_files(fs::path(HEARTH_SOURCE_DIR) / "src", {".cpp", ".h"});
        // CJK words from the Qwen vocabulary.
        const tok::Vocab q = imported(shared + "/tokenizers/qwen3-npm/tokenizer.json", "qwen2");
        std::vector<std::string> words;
        for (int32_t id = 0; id < q.n_tokens(); ++id) {
            const std::string piece = q.token_to_piece(id);
            if (all_cjk(piece)) words.push_back(piece);
        }
        std::mt19937 rng(7);
        std::string cjk;
        const char* punct[] = {"\xEF\xBC\x8C", "\xE3\x80\x82", "\xE3\x80\x81", "\n"};  // ， 。 、 newline
        while (cjk.size() < 200000 && !words.empty()) {
            for (int k = 0; k < 6; ++k) cjk += words[rng() % words.size()];
            cjk += punct[rng() % 4];
        }
        // ~45 % English, ~35 % code, ~20 % CJK, interleaved in 4 KiB slices, 1 MiB in all.
        std::string out;
        size_t ie = 0, ic = 0, ij = 0;
        auto take = [](const std::string& src, size_t& at, size_t n) {
            if (src.empty()) return std::string();
            std::string s;
            while (s.size() < n) {
                const size_t k = std::min(n - s.size(), src.size() - at);
                s.append(src, at, k);
                at = (at + k) % src.size();
            }
            return s;
        };
        const size_t total = size_t(1) << 20;
        while (out.size() < total) {
            out += take(english, ie, 4096 * 9 / 20);
            out += take(code, ic, 4096 * 7 / 20);
            // Cut CJK on a character boundary.
            std::string c = take(cjk, ij, 4096 * 4 / 20);
            while (!c.empty() && (static_cast<uint8_t>(c.back()) & 0xC0) == 0x80) c.pop_back();
            if (!c.empty() && static_cast<uint8_t>(c.back()) >= 0xC0) c.pop_back();
            out += c;
        }
        out.resize(total);
        while (!out.empty() && (static_cast<uint8_t>(out.back()) & 0xC0) == 0x80) out.pop_back();
        if (!out.empty() && static_cast<uint8_t>(out.back()) >= 0xC0) out.pop_back();
        return out;
    }();
    return text;
}

void bm_encode(benchmark::State& state, const tok::Vocab* (*get)()) {
    const tok::Vocab& v = *get();
    const std::string& text = corpus();
    size_t n_tokens = 0;
    for (auto _ : state) {
        const std::vector<int32_t> ids = v.encode(text, false, false);
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
    state.counters["tokens"] = double(n_tokens);
    state.counters["MB/s"] =
        benchmark::Counter(double(text.size()) * 1e-6 * double(state.iterations()), benchmark::Counter::kIsRate);
}

const tok::Vocab* llama_spm() {
    static const tok::Vocab v = [] {
        const gguf::File f = gguf::File::open(shared_dir() + "/tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
        return tok::Vocab::from_gguf(f);
    }();
    return &v;
}
const tok::Vocab* llama3() {
    static const tok::Vocab v = imported(shared_dir() + "/tokenizers/llama3.2-bpe/encoder.json", "llama-bpe");
    return &v;
}
const tok::Vocab* qwen2() {
    static const tok::Vocab v = imported(shared_dir() + "/tokenizers/qwen3-npm/tokenizer.json", "qwen2");
    return &v;
}

BENCHMARK_CAPTURE(bm_encode, llama_spm, &llama_spm)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(bm_encode, llama3, &llama3)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK_CAPTURE(bm_encode, qwen2, &qwen2)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
}  // namespace hearth
