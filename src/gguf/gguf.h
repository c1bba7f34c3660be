// GGUF v2/v3 reader (mmap, zero-copy, validating) and writer.
// Written by hand: GGUF has no packaged C++ library; the format is small and the validation is the point.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tensor/dtype.h"

namespace hearth::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
// "UINT32", "STRING", ...; "unknown" for an id outside the enum.
const char* value_type_name(ValueType t);

// A metadata value. Scalars live in u / i / f / b / s according to `type`; arrays hold their elements in
// `arr` (each element a Value of type `elem_type`; nested arrays allowed).
struct Value {
    ValueType type = ValueType::UINT32;
    ValueType elem_type = ValueType::UINT8;  // meaningful when type == ARRAY
    uint64_t u = 0;      // UINT8..UINT64
    int64_t i = 0;       // INT8..INT64
    double f = 0;        // FLOAT32 / FLOAT64
    bool b = false;      // BOOL
    std::string s;       // STRING
    std::vector<Value> arr;

    static Value u32(uint32_t v);
    static Value i32(int32_t v);
    static Value u64(uint64_t v);
    static Value f32(float v);
    static Value boolean(bool v);
    static Value str(std::string v);
    static Value str_array(const std::vector<std::string>& v);
    static Value f32_array(const std::vector<float>& v);
    static Value i32_array(const std::vector<int32_t>& v);
    // Further constructors (additions): every scalar width, and arrays of any element type.
    static Value u8(uint8_t v);
    static Value i8(int8_t v);
    static Value u16(uint16_t v);
    static Value i16(int16_t v);
    static Value i64(int64_t v);
    static Value f64(double v);
    static Value u32_array(const std::vector<uint32_t>& v);
    // An array whose elements all have type `elem` (each element's `type` must equal `elem`; checked when written).
    static Value array(ValueType elem, std::vector<Value> elems);
};

// A short human-readable rendering ("64", "\"llama\"", "[STRING x 512: \"<unk>\", \"<s>\", ...]"); arrays show at
// most `max_elems` elements and strings at most 64 bytes, non-printable bytes escaped.
std::string value_to_string(const Value& v, size_t max_elems = 8);

struct TensorInfo {
    std::string name;
    DType type = DType::F32;
    std::vector<int64_t> dims;  // dims[0] is the row length (contiguous), as in GGUF/ggml
    uint64_t offset = 0;        // relative to the start of the tensor data section
    size_t nbytes = 0;
    int64_t n_elements = 0;
    const uint8_t* data = nullptr;  // points into the mapping (or the memory buffer)
    int64_t rows() const { return n_elements / (dims.empty() ? 1 : dims[0]); }
};

class File {
public:
    // Maps the file read-only and validates it. Throws hearth::Error "<path>: <what> at offset <N>: <problem>".
    // Map: the file is mapped read-only (zero copy, pages shared with the page cache). Read: the file is read
    // into private anonymous memory (huge pages advised), which the kernel cannot evict under memory pressure.
    enum class LoadMode { Map, Read };
    static File open(const std::string& path, LoadMode mode = LoadMode::Map);
    // Parses a buffer the caller keeps alive (fuzzing, tests). Same validation as open().
    static File from_memory(const uint8_t* data, size_t size, std::string name = "<memory>");

    File(File&&) noexcept;
    File& operator=(File&&) noexcept;
    ~File();

    const std::string& path() const { return name_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    // Start of the tensor data section: the end of the tensor infos rounded up to alignment(). A file without
    // tensors may end before it (llama.cpp's vocab-only files are not padded).
    size_t data_offset() const { return data_offset_; }
    const uint8_t* bytes() const { return base_; }
    size_t size() const { return size_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }

    // Typed getters: throw hearth::Error naming the key when it is missing or of an incompatible type.
    // Integers convert between widths when the value fits; floats accept FLOAT32 or FLOAT64.
    std::string get_str(std::string_view key) const;
    uint64_t get_u64(std::string_view key) const;
    uint32_t get_u32(std::string_view key) const;
    int64_t get_i64(std::string_view key) const;
    float get_f32(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    std::vector<std::string> get_str_array(std::string_view key) const;
    std::vector<float> get_f32_array(std::string_view key) const;
    std::vector<int32_t> get_i32_array(std::string_view key) const;
    std::vector<uint32_t> get_u32_array(std::string_view key) const;
    // The same, returning `def` when the key is absent (still throwing on a wrong type).
    std::string get_str_or(std::string_view key, const std::string& def) const;
    uint32_t get_u32_or(std::string_view key, uint32_t def) const;
    float get_f32_or(std::string_view key, float def) const;
    bool get_bool_or(std::string_view key, bool def) const;
    uint64_t get_u64_or(std::string_view key, uint64_t def) const;
    int64_t get_i64_or(std::string_view key, int64_t def) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;
    // Like find_tensor, but throws hearth::Error "<path>: missing tensor '<name>'" when absent.
    const TensorInfo& tensor(std::string_view name) const;

private:
    File() = default;
    void parse();

    std::string name_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    void* map_ = nullptr;  // non-null when we own an mmap
    size_t map_size_ = 0;
    uint32_t version_ = 0;
    size_t alignment_ = 32;
    size_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

class Writer {
public:
    // Adds or replaces a key (order of first insertion is kept).
    void set(const std::string& key, Value v);
    void remove(const std::string& key);
    // Copies every key of `f` (general.alignment included).
    void copy_metadata(const File& f);
    // The data is copied at write() time from `data`, which must stay alive until then.
    // Throws hearth::Error on an empty or duplicate name, an unknown type, 0 or more than 4 dims, a dim < 1, a
    // row length that is not a multiple of the type's block size, or nbytes different from the tensor's size.
    void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims, const void* data,
                    size_t nbytes);
    // The same for a tensor of an open File (its data must stay mapped until write()).
    void add_tensor(const TensorInfo& t);
    // Writes GGUF v3 with tensor data aligned to general.alignment (default 32): the tensor infos are followed
    // by zero padding to the alignment, and each tensor's data by zero padding to the alignment (as llama.cpp
    // writes them; a file without tensors ends right after its metadata). The file is written to a temporary
    // file beside `path`, synced, and renamed over `path`. Throws hearth::Error naming the path on I/O failure
    // or on a value that cannot be encoded (e.g. an array element whose type differs from the array's).
    void write(const std::string& path) const;
    std::vector<uint8_t> to_bytes() const;

    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    size_t n_tensors() const { return tensors_.size(); }

    class Sink;  // byte destination of serialize(); defined in gguf.cpp


private:
    void serialize(Sink& out) const;
    size_t alignment() const;

    struct PendingTensor {
        std::string name;
        DType type;
        std::vector<int64_t> dims;
        const void* data;
        size_t nbytes;
    };
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace hearth::gguf
