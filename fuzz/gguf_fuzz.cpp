// libFuzzer target for the GGUF reader: any input must either parse into a self-consistent File or throw
// hearth::Error. A parsed file is walked completely (every value, every typed getter, every tensor's bytes) so
// that a bad size or pointer is caught by ASan, and re-serialized with the Writer and parsed again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "gguf/gguf.h"

using hearth::gguf::File;
using hearth::gguf::Value;
using hearth::gguf::ValueType;

namespace {

[[noreturn]] void invariant_broken(const char* what) {
    __builtin_trap();
    (void)what;
}

size_t walk_value(const Value& v, int depth) {
    size_t sum = v.s.size() + static_cast<size_t>(v.u) + static_cast<size_t>(v.i) + (v.b ? 1 : 0);
    if (v.type == ValueType::ARRAY) {
        if (depth > 64) invariant_broken("array nesting not bounded");
        for (const Value& e : v.arr) {
            if (e.type != v.elem_type) invariant_broken("array element of the wrong type");
            sum += walk_value(e, depth + 1);
        }
    }
    (void)hearth::gguf::value_to_string(v, 4);
    return sum;
}

// Calls every getter on a key; each either returns or throws hearth::Error.
template <typename F>
void try_get(F&& f) {
    try {
        f();
    } catch (const hearth::Error&) {
    }
}

size_t walk(const File& f) {
    size_t sum = f.version() + f.alignment() + f.data_offset();
    for (const auto& kv : f.metadata()) {
        const std::string& key = kv.first;  // (clang 14 cannot capture structured bindings in lambdas)
        const Value& v = kv.second;
        if (f.find(key) != &v) invariant_broken("find() disagrees with metadata()");
        sum += walk_value(v, 0);
        try_get([&] { sum += f.get_str(key).size(); });
        try_get([&] { sum += f.get_u64(key); });
        try_get([&] { sum += f.get_u32(key); });
        try_get([&] { sum += static_cast<size_t>(f.get_i64(key)); });
        try_get([&] { sum += f.get_f32(key) > 0; });
        try_get([&] { sum += f.get_bool(key); });
        try_get([&] { sum += f.get_str_array(key).size(); });
        try_get([&] { sum += f.get_f32_array(key).size(); });
        try_get([&] { sum += f.get_i32_array(key).size(); });
        try_get([&] { sum += f.get_u32_array(key).size(); });
        try_get([&] { sum += f.get_u32_or(key, 0); });
    }
    const uint8_t* lo = f.bytes() + f.data_offset();
    const uint8_t* hi = f.bytes() + f.size();
    for (const auto& t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) invariant_broken("find_tensor() disagrees with tensors()");
        if (t.dims.size() > 4 || t.n_elements < 1) invariant_broken("bad dims");
        if (t.data < lo || t.data > hi || t.nbytes > static_cast<size_t>(hi - t.data))
            invariant_broken("tensor data outside the file");
        if (t.offset % f.alignment() != 0) invariant_broken("misaligned tensor");
        const auto* info = hearth::dtype_info(static_cast<uint32_t>(t.type));
        if (!info) invariant_broken("unknown type accepted");
        if (t.nbytes > 0) sum += t.data[0] + t.data[t.nbytes - 1];
        sum += static_cast<size_t>(t.rows());
    }
    return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        File f = File::from_memory(data, size, "fuzz.gguf");
        volatile size_t sink = walk(f);
        (void)sink;
        // Whatever parsed must survive a write/read cycle with the same metadata and tensors.
        hearth::gguf::Writer w;
        w.copy_metadata(f);
        for (const auto& t : f.tensors()) w.add_tensor(t);
        const std::vector<uint8_t> out = w.to_bytes();
        File g = File::from_memory(out.data(), out.size(), "rewritten.gguf");
        if (g.metadata().size() != f.metadata().size() || g.tensors().size() != f.tensors().size())
            invariant_broken("rewrite changed the contents");
        for (size_t k = 0; k < f.tensors().size(); ++k) {
            const auto& a = f.tensors()[k];
            const auto& b = g.tensors()[k];
            if (a.name != b.name || a.dims != b.dims || a.type != b.type || a.nbytes != b.nbytes ||
                (a.nbytes && std::memcmp(a.data, b.data, a.nbytes) != 0))
                invariant_broken("rewrite changed a tensor");
        }
    } catch (const hearth::Error&) {
    }
    return 0;
}
