// Training data: a corpus split (lab/data/corpus.h) tokenized into one stream of documents, each as BOS, its
// tokens, EOS; batches of windows drawn from it at positions that depend only on (seed, step, micro-batch,
// row), so a resumed run and every MPI rank see exactly the batches of an uninterrupted single process.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hearth::tok {
class Vocab;
}

namespace hearth::lab {

struct TokenStream {
    std::vector<int32_t> tokens;
    int64_t documents = 0;
    int64_t bytes = 0;  // of text
};

// Tokenizes DIR's split ("train" or "val") with the vocabulary, documents shared between threads and joined in
// corpus order. Throws hearth::Error naming the problem (what read_corpus_split refuses; a vocabulary without
// BOS or EOS).
TokenStream tokenize_split(const std::string& dir, const std::string& split, const tok::Vocab& vocab, int n_threads);

// Rows [row_begin, row_end) of micro-batch `micro` of step `step`: each row seq + 1 consecutive tokens of the
// stream at an offset drawn from (seed, step, micro, row). Throws if the stream is shorter than seq + 1.
void sample_rows(const TokenStream& s, int seq, uint64_t seed, int64_t step, int micro, int row_begin, int row_end,
                 int32_t* out);

// Evaluation windows as llama.cpp's perplexity takes them: non-overlapping windows of n_ctx tokens, the first
// token replaced by BOS, the second half scored. Window w as a row of n_ctx tokens (inputs are its first
// n_ctx - 1, targets its last n_ctx - 1).
int64_t n_eval_windows(const TokenStream& s, int n_ctx);
void eval_window(const TokenStream& s, int n_ctx, int64_t w, int32_t bos, int32_t* out);

}  // namespace hearth::lab
