#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/error.h"
#include "tensor/kernels.h"

namespace hearth {

namespace {

// The total order the filters work in: higher logit first, lower token id first on equal logits.
// It is strict and total (no NaN reaches it), so every sorted prefix is unique.
struct Before {
    template <typename C>
    bool operator()(const C& a, const C& b) const {
        return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    }
};

// These loops run over the whole vocabulary for every token, so they keep 8 independent lanes (no
// loop-carried dependency on one accumulator; the compiler can map them onto SIMD registers).
constexpr size_t kLanes = 8;

// Copies n logits to dst and sets max_out to their maximum; returns false if any is NaN or +inf.
bool copy_checked(const float* src, float* dst, size_t n, float& max_out) {
    bool ok[kLanes];
    float m[kLanes];
    std::fill(ok, ok + kLanes, true);
    std::fill(m, m + kLanes, -INFINITY);
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (size_t j = 0; j < kLanes; ++j) {
            const float l = src[i + j];
            dst[i + j] = l;
            ok[j] &= l < INFINITY;  // false for NaN and +inf
            m[j] = l > m[j] ? l : m[j];
        }
    bool all = true;
    float r = -INFINITY;
    for (; i < n; ++i) {
        const float l = src[i];
        dst[i] = l;
        all &= l < INFINITY;
        r = l > r ? l : r;
    }
    for (size_t j = 0; j < kLanes; ++j) {
        all &= ok[j];
        r = m[j] > r ? m[j] : r;
    }
    max_out = r;
    return all;
}

float max_of(const float* w, size_t n) {
    float m[kLanes];
    std::fill(m, m + kLanes, -INFINITY);
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (size_t j = 0; j < kLanes; ++j) m[j] = w[i + j] > m[j] ? w[i + j] : m[j];
    float r = -INFINITY;
    for (; i < n; ++i) r = w[i] > r ? w[i] : r;
    for (size_t j = 0; j < kLanes; ++j) r = m[j] > r ? m[j] : r;
    return r;
}

// Unnormalised probability of a logit: exp((logit - max) / T), in float (expf is several times faster
// than exp, and float precision is ample for sampling); every sum of these runs in double.
inline double weight(float logit, float max_logit, float inv_t = 1.0f) {
    return static_cast<double>(std::exp((logit - max_logit) * inv_t));
}

uint64_t draw_random_seed() {
    std::random_device rd;
    uint64_t s = (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd());
    if (s == Sampler::kRandomSeed) s ^= 1;  // the sentinel means "random", never hand it out as a seed
    return s;
}

}  // namespace

Sampler::Sampler(SamplerParams p) : params_(p) {
    // Written as !(valid) so that NaN is rejected too.
    if (!(std::isfinite(p.temperature) && p.temperature >= 0.0f))
        fail("sampler: temperature must be a finite value >= 0 (got {})", p.temperature);
    if (p.top_k < 0) fail("sampler: top_k must be >= 0, 0 disables it (got {})", p.top_k);
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
        fail("sampler: top_p must be in (0, 1], 1 disables it (got {})", p.top_p);
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f))
        fail("sampler: min_p must be in [0, 1], 0 disables it (got {})", p.min_p);
    if (!(std::isfinite(p.repeat_penalty) && p.repeat_penalty > 0.0f))
        fail("sampler: repeat_penalty must be a finite value > 0, 1 disables it (got {})", p.repeat_penalty);
    if (!std::isfinite(p.frequency_penalty))
        fail("sampler: frequency_penalty must be finite (got {})", p.frequency_penalty);
    if (!std::isfinite(p.presence_penalty))
        fail("sampler: presence_penalty must be finite (got {})", p.presence_penalty);
    if (p.penalty_last_n < 0)
        fail("sampler: penalty_last_n must be >= 0, 0 disables penalties (got {})", p.penalty_last_n);

    seed_ = p.seed == kRandomSeed ? draw_random_seed() : p.seed;
    rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
    if (token < 0) fail("sampler: cannot accept negative token id {}", token);
    if (params_.penalty_last_n == 0) return;
    window_.push_back(token);
    ++counts_[token];
    while (window_.size() > static_cast<size_t>(params_.penalty_last_n)) {
        const int32_t old = window_.front();
        window_.pop_front();
        auto it = counts_.find(old);
        if (--it->second == 0) counts_.erase(it);
    }
}

void Sampler::reset() {
    window_.clear();
    counts_.clear();
    rng_.seed(seed_);
}

double Sampler::next_uniform() {
    // The top 53 bits of one raw mt19937_64 output, scaled to [0, 1): exact and library-independent.
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

bool Sampler::apply_penalties(int32_t n_vocab) {
    const SamplerParams& p = params_;
    if (p.penalty_last_n == 0 || counts_.empty()) return false;
    if (p.repeat_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f) return false;
    bool changed = false;
    // Each token is penalised independently, so the map's iteration order does not matter.
    for (const auto& [tok, count] : counts_) {
        if (tok >= n_vocab) continue;
        float& l = work_[static_cast<size_t>(tok)];
        if (l > 0.0f)
            l /= p.repeat_penalty;
        else
            l *= p.repeat_penalty;
        l -= static_cast<float>(count) * p.frequency_penalty + (count > 0 ? p.presence_penalty : 0.0f);
        changed = true;
    }
    return changed;
}

int32_t Sampler::sample(const float* logits, int32_t n_vocab) {
    if (n_vocab <= 0) fail("sampler: n_vocab must be > 0 (got {})", n_vocab);
    if (logits == nullptr) fail("sampler: logits pointer is null");
    const size_t n = static_cast<size_t>(n_vocab);

    work_.resize(n);
    float* w = work_.data();
    float max_logit = -INFINITY;
    if (!copy_checked(logits, w, n, max_logit)) {
        for (size_t i = 0; i < n; ++i) {
            if (std::isnan(w[i])) fail("sampler: logit of token {} is NaN", i);
            if (w[i] == INFINITY) fail("sampler: logit of token {} is +inf", i);
        }
    }
    if (apply_penalties(n_vocab)) max_logit = max_of(w, n);
    if (!(max_logit > -INFINITY)) fail("sampler: every logit is -inf, nothing can be sampled");

    if (params_.temperature == 0.0f) {
        // Greedy: the first maximum in id order, so ties go to the lowest id.
        size_t i = 0;
        while (w[i] != max_logit) ++i;
        if (dist_out_) dist_out_->emplace_back(static_cast<int32_t>(i), 1.0);
        return static_cast<int32_t>(i);
    }
    const size_t k = (params_.top_k == 0 || static_cast<size_t>(params_.top_k) > n) ? n : static_cast<size_t>(params_.top_k);
    if (k < n && k <= 256) return sample_small_k(n, k, max_logit);
    return sample_large(n, k, max_logit);
}

// Every filter keeps a prefix of the candidates in the order Before, so the chain keeps the shortest of
// top-k's, top-p's and min-p's prefixes. min-p (as in llama.cpp) keeps logit >= max + log(min_p), i.e.
// prob >= min_p × max prob; the maximum survives top-k and top-p, so that threshold is the same wherever
// min-p sits in the chain. top-p normalises over what top-k kept and keeps the shortest prefix whose
// probability reaches top_p. Sums over a set always run in token-id order.

int32_t Sampler::sample_small_k(size_t n, size_t k, float max_logit) {
    const SamplerParams& p = params_;
    const float* w = work_.data();
    const Before before;

    // One pass with a heap of the k best; its top is the worst of them. Ids rise during the scan, so a
    // newcomer beats the top only with a strictly larger logit.
    cands_.resize(k);
    for (size_t i = 0; i < k; ++i) cands_[i] = Cand{w[i], static_cast<int32_t>(i)};
    std::make_heap(cands_.begin(), cands_.end(), before);
    float worst = cands_.front().logit;
    for (size_t i = k; i < n; ++i) {
        if (w[i] > worst) {
            std::pop_heap(cands_.begin(), cands_.end(), before);
            cands_.back() = Cand{w[i], static_cast<int32_t>(i)};
            std::push_heap(cands_.begin(), cands_.end(), before);
            worst = cands_.front().logit;
        }
    }

    size_t keep = k;
    if (p.top_p < 1.0f) {
        std::sort(cands_.begin(), cands_.end(), [](const Cand& a, const Cand& b) { return a.id < b.id; });
        double z = 0.0;
        for (const Cand& c : cands_) z += weight(c.logit, max_logit);
        const double target = double(p.top_p) * z;
        std::sort(cands_.begin(), cands_.end(), before);
        double cum = 0.0;
        for (size_t i = 0; i < k; ++i) {
            cum += weight(cands_[i].logit, max_logit);
            if (cum >= target) {
                keep = i + 1;
                break;
            }
        }
    } else {
        std::sort(cands_.begin(), cands_.end(), before);
    }
    if (p.min_p > 0.0f) {
        const float threshold = max_logit + std::log(p.min_p);
        while (keep > 1 && !(cands_[keep - 1].logit >= threshold)) --keep;
    }

    std::sort(cands_.begin(), cands_.begin() + static_cast<ptrdiff_t>(keep),
              [](const Cand& a, const Cand& b) { return a.id < b.id; });
    kept_.clear();
    for (size_t i = 0; i < keep; ++i) kept_.emplace_back(cands_[i].id, cands_[i].logit);
    return draw(max_logit);
}

int32_t Sampler::sample_large(size_t n, size_t k, float max_logit) {
    const SamplerParams& p = params_;
    const float* w = work_.data();
    const Before before;
    if (k >= n && !(p.top_p < 1.0f) && !(p.min_p > 0.0f)) return draw_unfiltered(max_logit);

    // Candidates with a finite logit, in id order; -inf tokens have probability 0 and are never drawn.
    items_.resize(n);
    size_t n_items = 0;
    for (size_t i = 0; i < n; ++i) {
        items_[n_items] = Item{w[i], static_cast<int32_t>(i), 0.0};
        n_items += w[i] > -INFINITY;
    }
    items_.resize(n_items);

    // top-k (off, or k > 256 here): find its last kept candidate, then drop everything after it.
    if (k < items_.size()) {
        Item last{};
        select_prefix(items_, /*by_count=*/true, static_cast<double>(k), last);
        std::erase_if(items_, [&](const Item& c) { return before(last, c); });
    }

    const float threshold = p.min_p > 0.0f ? max_logit + std::log(p.min_p) : -INFINITY;
    bool have_top_p = false;
    Item top_p_last{};
    if (p.top_p < 1.0f) {
        double z = 0.0;
        for (Item& c : items_) z += c.weight = weight(c.logit, max_logit);
        const double target = double(p.top_p) * z;
        // Prefix sums below the min-p threshold do not matter (min-p cuts there anyway), so search only
        // above it; if the target is not reached there, min-p is the shorter prefix.
        sel_b_.clear();
        for (const Item& c : items_)
            if (c.logit >= threshold) sel_b_.push_back(c);
        have_top_p = select_prefix(sel_b_, /*by_count=*/false, target, top_p_last);
    }

    kept_.clear();
    for (const Item& c : items_) {
        if (!(c.logit >= threshold)) continue;
        if (have_top_p && before(top_p_last, c)) continue;
        kept_.emplace_back(c.id, c.logit);
    }
    return draw(max_logit);
}

// The shortest prefix (in the order Before) of `from` whose measure reaches `target`, where the measure
// is the count of candidates (by_count) or the sum of their weights. Sets `last` to the prefix's last
// candidate and returns true, or returns false when the whole set stays below the target.
// `from` must be in id order. Candidates are spread over 256 buckets by logit (bucket 0 holds the
// largest); the bucket where the running measure crosses the target is searched the same way, until it
// is small enough to sort. Bucketing is monotone in the logit and equal logits share a bucket, so each
// bucket is a contiguous run of the order Before. Measures are summed in id order within a bucket and
// in bucket order across buckets.
bool Sampler::select_prefix(const std::vector<Item>& from, bool by_count, double target, Item& last) {
    constexpr int kBuckets = 256;  // bucket ids fit in uint8_t
    constexpr size_t kSortBelow = 64;
    const Before before;
    auto measure = [by_count](const Item& c) { return by_count ? 1.0 : c.weight; };

    if (&from != &sel_b_) sel_b_.assign(from.begin(), from.end());
    std::vector<Item>* cur = &sel_b_;
    std::vector<Item>* next = &sel_a_;
    double sums[kBuckets];
    while (!cur->empty()) {
        float lo = cur->front().logit, hi = lo;
        for (const Item& c : *cur) {
            lo = std::min(lo, c.logit);
            hi = std::max(hi, c.logit);
        }
        if (cur->size() <= kSortBelow || lo == hi) {
            // lo == hi: all tied, and id order is already the order Before.
            if (lo != hi) std::sort(cur->begin(), cur->end(), before);
            double cum = 0.0;
            for (const Item& c : *cur) {
                cum += measure(c);
                if (cum >= target) {
                    last = c;
                    return true;
                }
            }
            return false;
        }
        const double scale = kBuckets / (double(hi) - double(lo));
        auto bucket = [&](float l) { return std::min(kBuckets - 1, static_cast<int>((double(hi) - double(l)) * scale)); };
        std::fill(std::begin(sums), std::end(sums), 0.0);
        bucket_of_.resize(cur->size());
        for (size_t i = 0; i < cur->size(); ++i) {
            const Item& c = (*cur)[i];
            const int b = bucket(c.logit);
            bucket_of_[i] = static_cast<uint8_t>(b);
            sums[b] += measure(c);
        }
        double above = 0.0;
        int b = 0;
        while (b < kBuckets && above + sums[b] < target) above += sums[b++];
        if (b == kBuckets) return false;
        target -= above;
        next->clear();
        for (size_t i = 0; i < cur->size(); ++i)
            if (bucket_of_[i] == b) next->push_back((*cur)[i]);
        std::swap(cur, next);
    }
    return false;
}

int32_t Sampler::draw(float max_logit) {
    // Temperature and softmax over the kept tokens (id order), then one uniform draw.
    const size_t m = kept_.size();
    ids_.resize(m);
    draw_w_.resize(m);
    for (size_t j = 0; j < m; ++j) {
        ids_[j] = kept_[j].first;
        draw_w_[j] = kept_[j].second - max_logit;
    }
    return draw_weights(ids_.data(), m);
}

// draw() over all n_vocab tokens without building the candidate lists: the same weights, summed and walked in
// the same (id) order, so the same token for the same random number. -inf logits weigh exp(-inf) = 0 and are
// skipped as draw() skips them. The plain temperature sampling of most API requests takes this path.
int32_t Sampler::draw_unfiltered(float max_logit) {
    const float* w = work_.data();
    const size_t n = work_.size();
    draw_w_.resize(n);
    for (size_t i = 0; i < n; ++i) draw_w_[i] = w[i] - max_logit;
    return draw_weights(nullptr, n);
}

// The draw of draw() and draw_unfiltered(): draw_w_[j] holds logit - max of token ids[j] (ascending; no
// ids: token j), j < m. The exponentials go through the kernel table's vector exp (every token of the
// vocabulary, every step of every stream; within 1e-6 of expf). The weights are summed per block of 64 token
// ids (float lanes by id % 8, then the lanes in double), so that the sums, and the draw, are the same bits
// whether the zero weights of the tokens a filter dropped are there or not; the walk skips whole blocks.
int32_t Sampler::draw_weights(const int32_t* ids, size_t m) {
    constexpr size_t kBlock = 64;
    float* p = draw_w_.data();
    kernels::active().exp_shift_sum(p, 1.0f / params_.temperature, 0.0f, p, static_cast<int64_t>(m));
    const size_t n_blocks = (work_.size() + kBlock - 1) / kBlock;
    block_w_.assign(n_blocks, 0.0);
    block_end_.assign(n_blocks, 0);
    auto id_of = [&](size_t j) { return ids ? static_cast<size_t>(ids[j]) : j; };
    double total = 0.0;
    for (size_t j = 0; j < m;) {
        const size_t b = id_of(j) / kBlock;
        float part[8] = {};
        for (; j < m && id_of(j) / kBlock == b; ++j) part[id_of(j) % 8] += p[j];
        double sum = 0.0;
        for (float x : part) sum += x;
        total += block_w_[b] = sum;
        block_end_[b] = j;
    }
    // total >= 1: the maximum is always kept, with weight exp(0).
    if (dist_out_) {
        for (size_t j = 0; j < m; ++j)
            if (p[j] > 0.0f) dist_out_->emplace_back(static_cast<int32_t>(id_of(j)), p[j] / total);
        return -1;
    }
    const double u = next_uniform() * total;
    double cum = 0.0;
    int32_t last_positive = -1;
    size_t j = 0;
    for (size_t b = 0; b < n_blocks; ++b) {
        if (block_w_[b] <= 0.0) {  // no weight here (-inf logits, filtered out, or underflow)
            j = std::max(j, block_end_[b]);
            continue;
        }
        const size_t end = block_end_[b];
        if (u >= cum + block_w_[b] && b + 1 < n_blocks) {  // not in this block
            for (size_t i = end; i-- > j;)
                if (p[i] > 0.0f) {
                    last_positive = static_cast<int32_t>(id_of(i));
                    break;
                }
            cum += block_w_[b];
            j = end;
            continue;
        }
        for (; j < end; ++j) {
            if (p[j] <= 0.0f) continue;
            cum += p[j];
            last_positive = static_cast<int32_t>(id_of(j));
            if (u < cum) return last_positive;
        }
    }
    return last_positive;  // only through rounding, with u just below total
}

void Sampler::distribution(const float* logits, int32_t n_vocab, TokenDist& out) {
    out.clear();
    dist_out_ = &out;
    try {
        sample(logits, n_vocab);
    } catch (...) {
        dist_out_ = nullptr;
        throw;
    }
    dist_out_ = nullptr;
}

int32_t Sampler::draw_from(const TokenDist& weights) {
    double total = 0.0;
    for (const auto& [tok, w] : weights) total += w;
    if (!(total > 0.0)) fail("sampler: a distribution to draw from has no positive weight");
    const double u = next_uniform() * total;
    double cum = 0.0;
    int32_t last_positive = -1;
    for (const auto& [tok, w] : weights) {
        if (w <= 0.0) continue;
        cum += w;
        last_positive = tok;
        if (u < cum) return tok;
    }
    return last_positive;
}

float token_logprobs(const float* logits, int32_t n_vocab, int32_t token, int k, std::vector<TokenLogprob>* top) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int32_t i = 0; i < n_vocab; ++i) mx = std::max(mx, logits[i]);
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
    const double log_z = static_cast<double>(mx) + std::log(sum);
    auto lp = [&](int32_t i) { return static_cast<float>(static_cast<double>(logits[i]) - log_z); };
    if (top) {
        top->clear();
        const int32_t kk = std::min<int32_t>(std::max(k, 0), n_vocab);
        if (kk > 0) {
            // A min-heap of the best kk so far: one pass, no copy of the vocabulary.
            auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
            std::vector<int32_t> heap;
            heap.reserve(static_cast<size_t>(kk));
            for (int32_t i = 0; i < n_vocab; ++i) {
                if (static_cast<int32_t>(heap.size()) < kk) {
                    heap.push_back(i);
                    std::push_heap(heap.begin(), heap.end(), better);
                } else if (better(i, heap.front())) {
                    std::pop_heap(heap.begin(), heap.end(), better);
                    heap.back() = i;
                    std::push_heap(heap.begin(), heap.end(), better);
                }
            }
            std::sort(heap.begin(), heap.end(), better);
            for (int32_t i : heap) top->push_back({i, lp(i)});
        }
    }
    return lp(token);
}

}  // namespace hearth
