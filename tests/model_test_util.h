// Helpers the model tests share.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "model/forward.h"
#include "test_util.h"

namespace hearth::test {

// stories260K (the one real trained model in ../shared), loaded once per test process.
inline const Model& stories_model() {
    static const std::unique_ptr<Model> m = Model::load(shared("models/stories260K.gguf"));
    return *m;
}

// n pseudo-random token ids of stories260K's vocabulary after BOS: a prompt with no structure to exploit.
inline std::vector<int32_t> story_prompt(int n) {
    std::vector<int32_t> p = {1};
    uint32_t x = 12345;
    while (static_cast<int>(p.size()) < n) {
        x = x * 1103515245u + 12345u;
        p.push_back(static_cast<int32_t>(3 + (x >> 8) % 500));
    }
    return p;
}

}  // namespace hearth::test
