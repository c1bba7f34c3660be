// The generation loop (model/generate.h) with sampled drafts from a draft model: speculative sampling must leave
// the distribution of the output the target model's. stories260K at temperature 1.5 is drafted for by itself at
// temperature 0.7 (a sharper distribution than the target's: many drafts are kept, many rejected, and the
// rejected ones are replaced from the residual distribution); over many seeds the second generated token (the
// first one a draft covers) is counted and compared with its exact marginal, computed from the model's own
// next-token distributions. A random draft model (almost every draft rejected) is run too.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <vector>

#include "model/draft.h"
#include "model/generate.h"
#include "model/synth.h"
#include "model_test_util.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

std::vector<double> softmax(const float* lg, int n, float temp) {
    std::vector<double> p(static_cast<size_t>(n));
    const float mx = *std::max_element(lg, lg + n);
    double z = 0;
    for (int i = 0; i < n; ++i) z += p[i] = std::exp(static_cast<double>(lg[i] - mx) / temp);
    for (double& x : p) x /= z;
    return p;
}

TEST(Generate, SampledDraftsKeepTheModelsDistribution) {
    const Model& m = test::stories_model();
    const int V = static_cast<int>(m.hp.n_vocab);
    const std::string draft_path = test::tmp_dir() + "/generate_random_draft.gguf";
    if (!std::filesystem::exists(draft_path)) {
        SynthOptions so;
        so.shape = synth_shape("embd=64,layers=1,heads=2,kv_heads=1,ff=128");
        so.vocab_path = test::shared("models/stories260K.gguf");
        so.seed = 5;
        so.stddev = 0.3f;
        synth_model(so, draft_path);
    }
    const std::unique_ptr<Model> random_model = Model::load(draft_path);
    const std::vector<int32_t> prompt = {1, 403, 407, 261, 378};  // BOS "Once upon a time"
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_threads = 1;
    Context ctx(m, cp);

    // The exact marginal of the second token: sum over t1 of p(t1) p(t2 | t1), at temperature 1.5 (flatter, so
    // more tokens are likely enough to be counted), unfiltered.
    constexpr float kTemp = 1.5f;
    Batch b;
    for (int i = 0; i < 5; ++i) b.add(prompt[i], i, 0, i == 4);
    const std::vector<double> p1 = softmax(ctx.decode(b).data(), V, kTemp);
    std::vector<double> p2(static_cast<size_t>(V), 0.0);
    for (int t1 = 0; t1 < V; ++t1) {
        if (p1[t1] < 1e-7) continue;
        ctx.kv().truncate(0, 5);
        Batch one;
        one.add(t1, 5, 0, true);
        const std::vector<double> c = softmax(ctx.decode(one).data(), V, kTemp);
        for (int t = 0; t < V; ++t) p2[t] += p1[t1] * c[t];
    }

    for (const bool random_draft : {false, true}) {
        SCOPED_TRACE(random_draft ? "random draft" : "stories260K at temperature 0.7");
        DraftModel drafter(random_draft ? *random_model : m, cp);
        SamplerParams sp;
        sp.temperature = kTemp;
        sp.top_k = 0;
        sp.top_p = 1.0f;
        sp.min_p = 0.0f;
        constexpr int kRuns = 1500;
        std::vector<int64_t> counts(static_cast<size_t>(V), 0);
        SpeculativeStats total;
        for (int run = 0; run < kRuns; ++run) {
            ctx.kv().clear();
            sp.seed = 1000 + static_cast<uint64_t>(run);
            Sampler sampler(sp);
            SamplerParams dsp = sp;
            dsp.seed = 77777 + static_cast<uint64_t>(run);
            dsp.temperature = random_draft ? 1.0f : 0.7f;
            Sampler draft_sampler(dsp);
            GenerateOptions o;
            o.n_predict = 4;  // the first token from the prompt's pass, then drafts of 2
            o.drafter = &drafter;
            o.draft_max = 2;
            o.draft_sampler = &draft_sampler;
            const GenerateResult r = generate(ctx, prompt, sampler, o);
            ASSERT_GE(r.tokens.size(), 2u);  // stories260K does not end a story after one token
            ++counts[static_cast<size_t>(r.tokens[1])];
            total.drafted += r.spec.drafted;
            total.accepted += r.spec.accepted;
        }
        EXPECT_GE(total.drafted, 2 * kRuns);
        if (random_draft) {
            EXPECT_LT(total.acceptance_rate(), 0.2);
        } else {
            EXPECT_GT(total.acceptance_rate(), 0.3);
            EXPECT_LT(total.acceptance_rate(), 0.9);
        }
        int df = 0;
        const double stat = test::chi_square(p2, counts, kRuns, &df);
        EXPECT_GE(df, 10);
        EXPECT_LT(stat, df + 5 * std::sqrt(2.0 * df)) << "chi-square " << stat << " over " << df << " degrees of freedom";
        std::printf("%s: second token over %d seeds: chi-square %.1f, %d degrees of freedom; acceptance %.3f\n",
                    random_draft ? "random draft" : "self draft at 0.7", kRuns, stat, df, total.acceptance_rate());
    }
}

}  // namespace
}  // namespace hearth
