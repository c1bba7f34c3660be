// The AVX-512 attention kernel against its scalar reference, over paged blocks with partial last blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/attention.h"
#include "tensor/kernels.h"

namespace hearth {
namespace {

TEST(Attention, DispatchedMatchesReference) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int head_dim : {16, 64, 128}) {
        for (int group : {1, 3, 4, 8}) {
            for (int n_kv : {1, 5, 16, 17, 100, 255}) {
                const int bs = 16, n_kv_heads = 2;
                const int64_t kv_dim = static_cast<int64_t>(n_kv_heads) * head_dim;
                const int n_blocks = (n_kv + bs - 1) / bs;
                std::vector<std::vector<float>> kb(n_blocks, std::vector<float>(kv_dim * bs)),
                    vb(n_blocks, std::vector<float>(kv_dim * bs));
                std::vector<const float*> kp, vp;
                // Blocks in scrambled order, as a paged cache hands them out.
                for (int b = n_blocks - 1; b >= 0; --b) {
                    for (auto& x : kb[b]) x = nd(rng) * 2;
                    for (auto& x : vb[b]) x = nd(rng);
                }
                for (int b = 0; b < n_blocks; ++b) kp.push_back(kb[b].data()), vp.push_back(vb[b].data());
                const KvSeqView view{kp.data(), vp.data(), bs, kv_dim};
                std::vector<float> q(static_cast<size_t>(group) * head_dim), out(q.size()), ref(q.size()),
                    work(q.size() + 64);
                for (auto& x : q) x = nd(rng);
                const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
                attend(q.data(), group, view, 1, n_kv, head_dim, scale, out.data(), work.data());
                attend_ref(q.data(), group, view, 1, n_kv, head_dim, scale, ref.data(), work.data());
                for (size_t i = 0; i < out.size(); ++i)
                    ASSERT_NEAR(out[i], ref[i], 2e-5f * (1 + std::abs(ref[i])))
                        << "head_dim " << head_dim << " group " << group << " n_kv " << n_kv << " i " << i;
                // A single cell: attention returns its V row.
                if (n_kv == 1)
                    for (int h = 0; h < group; ++h)
                        for (int j = 0; j < head_dim; ++j)
                            ASSERT_NEAR(out[h * head_dim + j], vb[0][head_dim + j], 1e-6f);
            }
        }
    }
    if (kernels::active().isa != kernels::Isa::Avx512) GTEST_LOG_(INFO) << "no AVX-512 here: compared ref with ref";
}

}  // namespace
}  // namespace hearth
