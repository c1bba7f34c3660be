// Looking up and shape-checking weight tensors by name.
#pragma once
#include <string>
#include <vector>

#include "model/model.h"

namespace hearth {

// Returns the tensor `name` as a Weight of shape [rows][cols] (GGUF dims {cols, rows}; a 1-D tensor of
// `cols` elements when rows == 0). Throws hearth::Error if it is missing (unless optional), has another
// shape, or has a type hearth cannot compute with.
Weight get_weight(const gguf::File& f, const std::string& name, int64_t cols, int64_t rows, bool optional = false);
// The same for a tensor of any rank with GGUF dims `dims` (innermost first): rows of dims[0] elements.
Weight get_weight(const gguf::File& f, const std::string& name, const std::vector<int64_t>& dims);

}  // namespace hearth
