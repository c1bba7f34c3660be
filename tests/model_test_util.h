// Helpers the model tests share.
#pragma once
#include <memory>

#include "model/forward.h"
#include "test_util.h"

namespace hearth::test {

// stories260K (the one real trained model in ../shared), loaded once per test process.
inline const Model& stories_model() {
    static const std::unique_ptr<Model> m = Model::load(shared("models/stories260K.gguf"));
    return *m;
}

}  // namespace hearth::test
