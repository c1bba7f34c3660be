#include "model/embed.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "model/encoder.h"
#include "model/forward.h"
#include "runtime/batch.h"

namespace hearth {

namespace {
// Decoders: sequences are packed into one decode() up to this many KV cells (or the longest one).
constexpr int kDecoderCells = 512;
constexpr int kKvBlock = 16;

Pooling pooling_from_u32(const Model& m, uint32_t v) {
    switch (v) {
        case 0: return Pooling::None;
        case 1: return Pooling::Mean;
        case 2: return Pooling::Cls;
        case 3: return Pooling::Last;
        default: fail("{}: {}.pooling_type {} is not supported (0 none, 1 mean, 2 cls, 3 last)", m.file.path(),
                      m.hp.arch, v);
    }
}
}  // namespace

const char* pooling_name(Pooling p) {
    switch (p) {
        case Pooling::None: return "none";
        case Pooling::Mean: return "mean";
        case Pooling::Cls: return "cls";
        case Pooling::Last: return "last";
    }
    return "?";
}

Pooling parse_pooling(std::string_view name) {
    if (name == "mean") return Pooling::Mean;
    if (name == "cls") return Pooling::Cls;
    if (name == "last") return Pooling::Last;
    fail("unknown pooling '{}' (choose mean, cls or last)", name);
}

Pooling model_pooling(const Model& m) {
    if (!m.hp.causal) return m.hp.pooling;
    const std::string key = m.hp.arch + ".pooling_type";
    if (m.file.has(key)) return pooling_from_u32(m, m.file.get_u32(key));
    return Pooling::Last;
}

void l2_normalize(float* x, int64_t n) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
    if (sum <= 0) return;
    const double inv = 1.0 / std::sqrt(sum);
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * inv);
}

Embedder::Embedder(const Model& model, const tok::Vocab& vocab, const EmbedParams& params)
    : model_(model), vocab_(vocab), params_(params) {
    pooling_ = params.pooling != Pooling::None ? params.pooling : model_pooling(model);
    if (pooling_ == Pooling::None)
        fail("{}: the model declares no pooling ({}.pooling_type is 0 or absent): choose one with --pooling "
             "mean|cls|last",
             model.file.path(), model.hp.arch);
    // (Fewer tokens than embedding rows is common: matrices padded to a multiple of 64 or 128.)
    if (vocab.n_tokens() > model.hp.n_vocab)
        fail("{}: the vocabulary has {} tokens but the model's embedding matrix only {} rows", model.file.path(),
             vocab.n_tokens(), model.hp.n_vocab);
    if (!model.hp.causal) {
        EncoderParams ep;
        ep.n_threads = params.n_threads;
        encoder_ = std::make_unique<Encoder>(model, ep);
    } else if (params.n_threads < 0) {
        fail("threads must be positive (got {})", params.n_threads);
    }
}

Embedder::~Embedder() = default;

std::vector<int32_t> Embedder::tokenize(std::string_view text) const {
    if (text.empty()) fail("the text is empty");
    std::vector<int32_t> ids = vocab_.encode(text, /*add_special=*/true, /*parse_special=*/true);
    if (ids.empty()) fail("the text has no tokens");
    const int64_t max = max_tokens();
    if (static_cast<int64_t>(ids.size()) > max) {
        if (!params_.truncate)
            fail("the text has {} tokens, more than the model's context of {} (--truncate cuts it)", ids.size(), max);
        // Keep the special tokens the vocabulary appends ([SEP], EOS) at the end, as HF's truncation does.
        size_t tail = 0;
        if (vocab_.model() == tok::TokenizerModel::Wpm && vocab_.add_sep()) ++tail;
        if (vocab_.add_eos()) ++tail;
        tail = std::min<size_t>(tail, static_cast<size_t>(max) - 1);
        std::vector<int32_t> cut(ids.begin(), ids.begin() + (max - static_cast<int64_t>(tail)));
        cut.insert(cut.end(), ids.end() - static_cast<int64_t>(tail), ids.end());
        ids = std::move(cut);
    }
    return ids;
}

std::vector<float> Embedder::embed_tokens(const std::vector<std::vector<int32_t>>& seqs) {
    std::vector<float> out = encoder_ ? encoder_->encode(seqs, pooling_) : embed_decoder(seqs);
    if (params_.normalize)
        for (size_t i = 0; i < seqs.size(); ++i) l2_normalize(out.data() + i * dim(), dim());
    return out;
}

std::vector<float> Embedder::embed(const std::vector<std::string>& texts) {
    std::vector<std::vector<int32_t>> seqs;
    seqs.reserve(texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
        try {
            seqs.push_back(tokenize(texts[i]));
        } catch (const Error& e) {
            fail("input {}: {}", i + 1, e.what());
        }
    }
    return embed_tokens(seqs);
}

std::vector<float> Embedder::embed_decoder(const std::vector<std::vector<int32_t>>& seqs) {
    const HParams& hp = model_.hp;
    const int64_t E = hp.n_embd;
    auto cells = [](size_t n) { return static_cast<int>((n + kKvBlock - 1) / kKvBlock * kKvBlock); };
    int longest = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
        if (seqs[i].empty()) fail("sequence {} is empty", i);
        if (static_cast<int64_t>(seqs[i].size()) > hp.n_ctx_train)
            fail("sequence {} has {} tokens, more than the model's context of {}", i, seqs[i].size(), hp.n_ctx_train);
        longest = std::max(longest, cells(seqs[i].size()));
    }
    const int need = std::max(longest, kDecoderCells);
    if (!ctx_ || ctx_->n_ctx() < longest) {
        ctx_.reset();
        ContextParams cp;
        cp.n_ctx = need;
        cp.n_threads = params_.n_threads;
        cp.kv_block_size = kKvBlock;
        cp.embeddings = true;
        ctx_ = std::make_unique<Context>(model_, cp);
    }
    std::vector<float> out(seqs.size() * static_cast<size_t>(E));
    for (size_t s0 = 0; s0 < seqs.size();) {
        // Pack whole sequences into the context's cells; each gets its own sequence id.
        size_t s1 = s0;
        int used = 0;
        Batch b;
        while (s1 < seqs.size() && (s1 == s0 || used + cells(seqs[s1].size()) <= ctx_->n_ctx())) {
            const auto& sq = seqs[s1];
            const int n = static_cast<int>(sq.size());
            for (int j = 0; j < n; ++j) {
                const bool want = pooling_ == Pooling::Mean || (pooling_ == Pooling::Last ? j == n - 1 : j == 0);
                b.add(sq[j], j, static_cast<int32_t>(s1 - s0), want);
            }
            used += cells(sq.size());
            ++s1;
        }
        ctx_->kv().clear();
        const std::vector<float>& h = ctx_->decode(b);
        ctx_->kv().clear();
        const float* row = h.data();
        for (size_t i = s0; i < s1; ++i) {
            float* o = out.data() + i * E;
            if (pooling_ == Pooling::Mean) {
                const size_t n = seqs[i].size();
                for (int64_t d = 0; d < E; ++d) {
                    double sum = 0;
                    for (size_t t = 0; t < n; ++t) sum += row[t * E + d];
                    o[d] = static_cast<float>(sum / static_cast<double>(n));
                }
                row += n * E;
            } else {
                std::memcpy(o, row, sizeof(float) * static_cast<size_t>(E));
                row += E;
            }
        }
        s0 = s1;
    }
    return out;
}

}  // namespace hearth
