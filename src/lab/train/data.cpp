#include "lab/train/data.h"

#include <algorithm>

#include "base/error.h"
#include "lab/data/corpus.h"
#include "tokenizer/vocab.h"

namespace hearth::lab {

TokenStream tokenize_split(const std::string& dir, const std::string& split, const tok::Vocab& vocab, int n_threads) {
    const std::vector<Document> docs = read_corpus_split(dir, split);
    if (vocab.bos() < 0 || vocab.eos() < 0)
        fail("the tokenizer has no BOS or EOS token: training marks document boundaries with them");
    std::vector<std::vector<int32_t>> parts(docs.size());
#pragma omp parallel for num_threads(n_threads > 0 ? n_threads : 1) schedule(dynamic, 16)
    for (size_t i = 0; i < docs.size(); ++i) parts[i] = vocab.encode(docs[i].text, false, false);
    TokenStream s;
    size_t total = 0;
    for (const auto& p : parts) total += p.size() + 2;
    s.tokens.reserve(total);
    for (size_t i = 0; i < docs.size(); ++i) {
        s.tokens.push_back(vocab.bos());
        s.tokens.insert(s.tokens.end(), parts[i].begin(), parts[i].end());
        s.tokens.push_back(vocab.eos());
        s.bytes += static_cast<int64_t>(docs[i].text.size());
    }
    s.documents = static_cast<int64_t>(docs.size());
    return s;
}

namespace {
// SplitMix64: a well-mixed 64-bit hash, enough to place windows uniformly.
uint64_t mix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
}  // namespace

void sample_rows(const TokenStream& s, int seq, uint64_t seed, int64_t step, int micro, int row_begin, int row_end,
                 int32_t* out) {
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    if (n < seq + 1) fail("the training data has {} tokens, fewer than one row of {} + 1", n, seq);
    const uint64_t span = static_cast<uint64_t>(n - seq);  // offsets 0 .. n - seq - 1
    for (int r = row_begin; r < row_end; ++r) {
        const uint64_t h = mix(mix(mix(mix(seed) ^ static_cast<uint64_t>(step)) ^ static_cast<uint64_t>(micro)) ^
                               static_cast<uint64_t>(r));
        const int64_t off = static_cast<int64_t>(h % span);
        std::copy(s.tokens.begin() + off, s.tokens.begin() + off + seq + 1, out + static_cast<int64_t>(r - row_begin) * (seq + 1));
    }
}

int64_t n_eval_windows(const TokenStream& s, int n_ctx) { return static_cast<int64_t>(s.tokens.size()) / n_ctx; }

void eval_window(const TokenStream& s, int n_ctx, int64_t w, int32_t bos, int32_t* out) {
    std::copy(s.tokens.begin() + w * n_ctx, s.tokens.begin() + (w + 1) * n_ctx, out);
    out[0] = bos;
}

}  // namespace hearth::lab
