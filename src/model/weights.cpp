#include "model/weights.h"

#include <fmt/ranges.h>

#include "base/error.h"

namespace hearth {

Weight get_weight(const gguf::File& f, const std::string& name, int64_t cols, int64_t rows, bool optional) {
    if (!optional || f.find_tensor(name))
        return get_weight(f, name, rows == 0 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows});
    return {};
}

Weight get_weight(const gguf::File& f, const std::string& name, const std::vector<int64_t>& want) {
    const gguf::TensorInfo* t = f.find_tensor(name);
    if (!t) fail("{}: tensor '{}' is missing", f.path(), name);
    const DTypeInfo& info = dtype_info(t->type);
    if (!info.supported) fail("{}: tensor '{}' has type {}, which hearth does not support", f.path(), name, info.name);
    const int64_t cols = want[0];
    int64_t rows = 1;
    for (size_t i = 1; i < want.size(); ++i) rows *= want[i];
    if (t->dims != want)
        fail("{}: tensor '{}' has shape [{}], expected [{}]", f.path(), name, fmt::join(t->dims, ", "),
             fmt::join(want, ", "));
    Weight w;
    w.name = name;
    w.type = t->type;
    w.data = t->data;
    w.cols = cols;
    w.rows = rows;
    w.row_bytes = row_bytes(t->type, cols);
    return w;
}

}  // namespace hearth
