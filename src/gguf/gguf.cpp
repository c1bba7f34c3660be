#include <algorithm>
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>

#include "base/error.h"

namespace hearth::gguf {
namespace {

constexpr uint32_t kMaxArrayDepth = 8;  // nesting levels of arrays inside a value
constexpr uint32_t kMaxDims = 4;
constexpr uint32_t kDefaultAlignment = 32;
constexpr const char* kAlignmentKey = "general.alignment";

// Smallest encoded size of the key/value pairs and tensor infos: they bound how many can fit in what is left.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key length, value type, one-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset

std::string errno_message(int e) { return std::system_category().message(e); }

bool known_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

// Encoded size of a scalar, or the smallest encoded size of a string (its length) or array (type + count).
uint64_t min_encoded_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::BOOL: return 1;
        case ValueType::UINT16:
        case ValueType::INT16: return 2;
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::FLOAT32: return 4;
        case ValueType::UINT64:
        case ValueType::INT64:
        case ValueType::FLOAT64:
        case ValueType::STRING: return 8;
        case ValueType::ARRAY: return 12;
    }
    return 1;
}

bool is_unsigned(ValueType t) {
    return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 || t == ValueType::UINT64;
}
bool is_signed(ValueType t) {
    return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 || t == ValueType::INT64;
}
bool is_float(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

// Quotes a name for an error message: printable ASCII kept, everything else escaped, long names shortened.
std::string quote(std::string_view s, size_t max_len = 96, char q = '\'') {
    std::string out(1, q);
    size_t n = 0;
    for (unsigned char c : s) {
        if (n++ == max_len) {
            out += "...";
            break;
        }
        if (c == '\\' || c == static_cast<unsigned char>(q)) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += fmt::format("\\x{:02x}", c);
        }
    }
    out += q;
    return out;
}

bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

std::string type_description(const Value& v) {
    if (v.type == ValueType::ARRAY) return fmt::format("ARRAY of {}", value_type_name(v.elem_type));
    return value_type_name(v.type);
}

// Reads little-endian GGUF fields with bounds checks. Errors read
// "<file>: <subject><index path> <field> at offset <N>: <problem>".
class Parser {
public:
    Parser(const std::string& name, const uint8_t* data, size_t size) : name_(name), p_(data), size_(size) {}

    size_t pos = 0;
    std::string subject;               // "header", "key 'general.name'", "tensor 'output.weight'"
    std::vector<uint64_t> index_path;  // element indices inside (nested) arrays

    size_t left() const { return size_ - pos; }
    size_t size() const { return size_; }

    [[noreturn]] void error_at(size_t at, std::string_view field, const std::string& problem) const {
        std::string where = subject;
        for (uint64_t i : index_path) where += fmt::format("[{}]", i);
        if (!field.empty()) {
            if (!where.empty()) where += ' ';
            where += field;
        }
        fail("{}: {} at offset {}: {}", name_, where, at, problem);
    }

    void need(uint64_t n, std::string_view field) const {
        if (n > left())
            error_at(pos, field,
                     fmt::format("file truncated: need {} bytes, only {} left (file is {} bytes)", n, left(), size_));
    }

    template <typename T>
    T scalar(std::string_view field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, p_ + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    uint8_t u8(std::string_view f) { return scalar<uint8_t>(f); }
    uint32_t u32(std::string_view f) { return scalar<uint32_t>(f); }
    uint64_t u64(std::string_view f) { return scalar<uint64_t>(f); }

    // A GGUF string: u64 length + bytes. `field` names the length field in errors.
    std::string str(std::string_view field) {
        const size_t at = pos;
        const uint64_t n = u64(field);
        if (n > left())
            error_at(at, field,
                     fmt::format("string length {} runs past the end of the file ({} bytes left; file truncated?)",
                                 n, left()));
        std::string s(reinterpret_cast<const char*>(p_ + pos), static_cast<size_t>(n));
        pos += static_cast<size_t>(n);
        return s;
    }

    // Checks that `count` items of at least `min_size` encoded bytes each can fit in what is left, before any
    // memory is reserved for them.
    void check_count(size_t at, std::string_view field, uint64_t count, uint64_t min_size, std::string_view what) {
        if (count > left() / min_size)
            error_at(at, field,
                     fmt::format("{} = {} is too large: that many {} need at least {} bytes each, but only {} bytes "
                                 "are left (file truncated or corrupt)",
                                 field, count, what, min_size, left()));
    }

    Value value(ValueType type, uint32_t depth) {
        Value v;
        v.type = type;
        switch (type) {
            case ValueType::UINT8: v.u = scalar<uint8_t>("value"); break;
            case ValueType::INT8: v.i = scalar<int8_t>("value"); break;
            case ValueType::UINT16: v.u = scalar<uint16_t>("value"); break;
            case ValueType::INT16: v.i = scalar<int16_t>("value"); break;
            case ValueType::UINT32: v.u = scalar<uint32_t>("value"); break;
            case ValueType::INT32: v.i = scalar<int32_t>("value"); break;
            case ValueType::UINT64: v.u = scalar<uint64_t>("value"); break;
            case ValueType::INT64: v.i = scalar<int64_t>("value"); break;
            case ValueType::FLOAT32: v.f = scalar<float>("value"); break;
            case ValueType::FLOAT64: v.f = scalar<double>("value"); break;
            case ValueType::BOOL: {
                const size_t at = pos;
                const uint8_t b = u8("value");
                if (b > 1) error_at(at, "value", fmt::format("invalid BOOL value {} (must be 0 or 1)", b));
                v.b = b != 0;
                break;
            }
            case ValueType::STRING: v.s = str("string length"); break;
            case ValueType::ARRAY: {
                size_t at = pos;
                const uint32_t et = u32("array element type");
                if (!known_value_type(et)) error_at(at, "array element type", fmt::format("unknown value type {}", et));
                v.elem_type = static_cast<ValueType>(et);
                if (v.elem_type == ValueType::ARRAY && depth + 1 >= kMaxArrayDepth)
                    error_at(at, "array element type",
                             fmt::format("arrays nested deeper than {} levels are not supported", kMaxArrayDepth));
                at = pos;
                const uint64_t count = u64("array count");
                check_count(at, "array count", count, min_encoded_size(v.elem_type),
                            fmt::format("{} elements", value_type_name(v.elem_type)));
                v.arr.reserve(static_cast<size_t>(count));
                index_path.push_back(0);
                for (uint64_t k = 0; k < count; ++k) {
                    index_path.back() = k;
                    v.arr.push_back(value(v.elem_type, depth + 1));
                }
                index_path.pop_back();
                break;
            }
        }
        return v;
    }

private:
    const std::string& name_;
    const uint8_t* p_;
    size_t size_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Value

const char* value_type_name(ValueType t) {
    switch (t) {
        case ValueType::UINT8: return "UINT8";
        case ValueType::INT8: return "INT8";
        case ValueType::UINT16: return "UINT16";
        case ValueType::INT16: return "INT16";
        case ValueType::UINT32: return "UINT32";
        case ValueType::INT32: return "INT32";
        case ValueType::FLOAT32: return "FLOAT32";
        case ValueType::BOOL: return "BOOL";
        case ValueType::STRING: return "STRING";
        case ValueType::ARRAY: return "ARRAY";
        case ValueType::UINT64: return "UINT64";
        case ValueType::INT64: return "INT64";
        case ValueType::FLOAT64: return "FLOAT64";
    }
    return "unknown";
}

namespace {
Value make_uint(ValueType t, uint64_t v) {
    Value r;
    r.type = t;
    r.u = v;
    return r;
}
Value make_int(ValueType t, int64_t v) {
    Value r;
    r.type = t;
    r.i = v;
    return r;
}
Value make_float(ValueType t, double v) {
    Value r;
    r.type = t;
    r.f = v;
    return r;
}
}  // namespace

Value Value::u8(uint8_t v) { return make_uint(ValueType::UINT8, v); }
Value Value::u16(uint16_t v) { return make_uint(ValueType::UINT16, v); }
Value Value::u32(uint32_t v) { return make_uint(ValueType::UINT32, v); }
Value Value::u64(uint64_t v) { return make_uint(ValueType::UINT64, v); }
Value Value::i8(int8_t v) { return make_int(ValueType::INT8, v); }
Value Value::i16(int16_t v) { return make_int(ValueType::INT16, v); }
Value Value::i32(int32_t v) { return make_int(ValueType::INT32, v); }
Value Value::i64(int64_t v) { return make_int(ValueType::INT64, v); }
Value Value::f32(float v) { return make_float(ValueType::FLOAT32, v); }
Value Value::f64(double v) { return make_float(ValueType::FLOAT64, v); }

Value Value::boolean(bool v) {
    Value r;
    r.type = ValueType::BOOL;
    r.b = v;
    return r;
}

Value Value::str(std::string v) {
    Value r;
    r.type = ValueType::STRING;
    r.s = std::move(v);
    return r;
}

Value Value::array(ValueType elem, std::vector<Value> elems) {
    Value r;
    r.type = ValueType::ARRAY;
    r.elem_type = elem;
    r.arr = std::move(elems);
    return r;
}

Value Value::str_array(const std::vector<std::string>& v) {
    std::vector<Value> e;
    e.reserve(v.size());
    for (const auto& s : v) e.push_back(str(s));
    return array(ValueType::STRING, std::move(e));
}

Value Value::f32_array(const std::vector<float>& v) {
    std::vector<Value> e;
    e.reserve(v.size());
    for (float x : v) e.push_back(f32(x));
    return array(ValueType::FLOAT32, std::move(e));
}

Value Value::i32_array(const std::vector<int32_t>& v) {
    std::vector<Value> e;
    e.reserve(v.size());
    for (int32_t x : v) e.push_back(i32(x));
    return array(ValueType::INT32, std::move(e));
}

Value Value::u32_array(const std::vector<uint32_t>& v) {
    std::vector<Value> e;
    e.reserve(v.size());
    for (uint32_t x : v) e.push_back(u32(x));
    return array(ValueType::UINT32, std::move(e));
}

std::string value_to_string(const Value& v, size_t max_elems) {
    switch (v.type) {
        case ValueType::UINT8:
        case ValueType::UINT16:
        case ValueType::UINT32:
        case ValueType::UINT64: return fmt::format("{}", v.u);
        case ValueType::INT8:
        case ValueType::INT16:
        case ValueType::INT32:
        case ValueType::INT64: return fmt::format("{}", v.i);
        case ValueType::FLOAT32: return fmt::format("{}", static_cast<float>(v.f));
        case ValueType::FLOAT64: return fmt::format("{}", v.f);
        case ValueType::BOOL: return v.b ? "true" : "false";
        case ValueType::STRING: return quote(v.s, 64, '"');
        case ValueType::ARRAY: {
            std::string out = fmt::format("[{} x {}", value_type_name(v.elem_type), v.arr.size());
            for (size_t k = 0; k < v.arr.size() && k < max_elems; ++k)
                out += (k == 0 ? ": " : ", ") + value_to_string(v.arr[k], max_elems);
            if (v.arr.size() > max_elems) out += ", ...";
            return out + "]";
        }
    }
    return fmt::format("<value of unknown type {}>", static_cast<uint32_t>(v.type));
}

// ---------------------------------------------------------------------------------------------------------------
// File

File File::open(const std::string& path, LoadMode mode) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("{}: cannot open: {}", path, errno_message(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fail("{}: cannot stat: {}", path, errno_message(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("{}: not a regular file", path);
    }
    File f;
    f.name_ = path;
    if (st.st_size > 0) {
        const size_t size = static_cast<size_t>(st.st_size);
        void* m = MAP_FAILED;
        int e = 0;
        if (mode == LoadMode::Map) {
            m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
            e = errno;
        } else {
            // Anonymous memory cannot be evicted like page-cache pages (there is no swap on these machines),
            // and huge pages cut TLB misses when decode streams every weight once per token.
            m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            e = errno;
            if (m != MAP_FAILED) {
                ::madvise(m, size, MADV_HUGEPAGE);
                size_t done = 0;
                while (done < size) {
                    const ssize_t n = ::read(fd, static_cast<uint8_t*>(m) + done, std::min<size_t>(size - done, 1 << 30));
                    if (n < 0 && errno == EINTR) continue;
                    if (n <= 0) {
                        e = n < 0 ? errno : EIO;
                        ::munmap(m, size);
                        ::close(fd);
                        fail("{}: cannot read byte {} of {}: {}", path, done, size, errno_message(e));
                    }
                    done += static_cast<size_t>(n);
                }
            }
        }
        ::close(fd);
        if (m == MAP_FAILED) fail("{}: cannot map {} bytes: {}", path, size, errno_message(e));
        f.map_ = m;
        f.map_size_ = size;
        f.base_ = static_cast<const uint8_t*>(m);
        f.size_ = size;
    } else {
        ::close(fd);
        static const uint8_t empty = 0;
        f.base_ = &empty;
        f.size_ = 0;
    }
    f.parse();  // on error, f's destructor unmaps
    return f;
}

File File::from_memory(const uint8_t* data, size_t size, std::string name) {
    static const uint8_t empty = 0;
    File f;
    f.name_ = std::move(name);
    f.base_ = data ? data : &empty;
    f.size_ = data ? size : 0;
    f.parse();
    return f;
}

File::File(File&& o) noexcept
    : name_(std::move(o.name_)),
      base_(o.base_),
      size_(o.size_),
      map_(o.map_),
      map_size_(o.map_size_),
      version_(o.version_),
      alignment_(o.alignment_),
      data_offset_(o.data_offset_),
      kv_(std::move(o.kv_)),
      kv_index_(std::move(o.kv_index_)),
      tensors_(std::move(o.tensors_)),
      tensor_index_(std::move(o.tensor_index_)) {
    o.map_ = nullptr;
    o.map_size_ = 0;
    o.base_ = nullptr;
    o.size_ = 0;
}

File& File::operator=(File&& o) noexcept {
    if (this != &o) {
        if (map_) ::munmap(map_, map_size_);
        name_ = std::move(o.name_);
        base_ = o.base_;
        size_ = o.size_;
        map_ = o.map_;
        map_size_ = o.map_size_;
        version_ = o.version_;
        alignment_ = o.alignment_;
        data_offset_ = o.data_offset_;
        kv_ = std::move(o.kv_);
        kv_index_ = std::move(o.kv_index_);
        tensors_ = std::move(o.tensors_);
        tensor_index_ = std::move(o.tensor_index_);
        o.map_ = nullptr;
        o.map_size_ = 0;
        o.base_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

File::~File() {
    if (map_) ::munmap(map_, map_size_);
}

void File::parse() {
    Parser r(name_, base_, size_);

    // Header.
    r.subject = "header";
    r.need(4, "magic");
    if (std::memcmp(base_, "GGUF", 4) != 0)
        r.error_at(0, "magic",
                   fmt::format("bad magic {} (expected 'GGUF'; not a GGUF file)",
                               quote(std::string_view(reinterpret_cast<const char*>(base_), 4))));
    r.pos = 4;
    version_ = r.u32("version");
    if (version_ != 2 && version_ != 3) {
        if (version_ == 1)
            r.error_at(4, "version", "GGUF version 1 is not supported (only versions 2 and 3 are)");
        if (__builtin_bswap32(version_) == 2 || __builtin_bswap32(version_) == 3)
            r.error_at(4, "version",
                       fmt::format("GGUF version {} looks like a big-endian file, which is not supported",
                                   __builtin_bswap32(version_)));
        r.error_at(4, "version", fmt::format("unsupported GGUF version {} (only versions 2 and 3 are supported)",
                                             version_));
    }
    const size_t n_tensors_at = r.pos;
    const uint64_t n_tensors = r.u64("n_tensors");
    const size_t n_kv_at = r.pos;
    const uint64_t n_kv = r.u64("n_kv");
    r.check_count(n_kv_at, "n_kv", n_kv, kMinKvBytes, "key-value pairs");

    // Metadata.
    kv_.reserve(static_cast<size_t>(n_kv));
    kv_index_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        r.subject = fmt::format("key #{}", k);
        const size_t key_at = r.pos;
        std::string key = r.str("name length");
        if (key.empty()) r.error_at(key_at, "name", "empty key name");
        r.subject = "key " + quote(key);
        if (kv_index_.count(key)) r.error_at(key_at, "name", "duplicate key");
        const size_t type_at = r.pos;
        const uint32_t t = r.u32("value type");
        if (!known_value_type(t)) r.error_at(type_at, "value type", fmt::format("unknown value type {}", t));
        Value v = r.value(static_cast<ValueType>(t), 0);
        if (key == kAlignmentKey) {
            if (v.type != ValueType::UINT32)
                r.error_at(type_at, "value type",
                           fmt::format("general.alignment must be UINT32, found {}", type_description(v)));
            if (!is_pow2(v.u))
                r.error_at(type_at + 4, "value",
                           fmt::format("alignment {} is not a power of two (and nonzero)", v.u));
            alignment_ = static_cast<size_t>(v.u);
        }
        kv_index_.emplace(key, kv_.size());
        kv_.emplace_back(std::move(key), std::move(v));
    }

    // Tensor infos.
    r.subject = "header";
    r.check_count(n_tensors_at, "n_tensors", n_tensors, kMinTensorInfoBytes, "tensor infos");
    tensors_.reserve(static_cast<size_t>(n_tensors));
    tensor_index_.reserve(static_cast<size_t>(n_tensors));
    std::vector<size_t> offset_at;
    offset_at.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        TensorInfo t;
        r.subject = fmt::format("tensor #{}", k);
        const size_t name_at = r.pos;
        t.name = r.str("name length");
        if (t.name.empty()) r.error_at(name_at, "name", "empty tensor name");
        r.subject = "tensor " + quote(t.name);
        if (tensor_index_.count(t.name)) r.error_at(name_at, "name", "duplicate tensor name");

        const size_t ndims_at = r.pos;
        const uint32_t n_dims = r.u32("n_dims");
        if (n_dims > kMaxDims)
            r.error_at(ndims_at, "n_dims", fmt::format("n_dims {} is more than the maximum of {}", n_dims, kMaxDims));
        t.dims.reserve(n_dims);
        int64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const size_t dim_at = r.pos;
            const uint64_t dim = r.u64("dims");
            if (dim == 0) r.error_at(dim_at, "dims", fmt::format("dimension {} is 0", d));
            if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                r.error_at(dim_at, "dims", fmt::format("dimension {} = {} does not fit in int64", d, dim));
            if (__builtin_mul_overflow(n_elements, static_cast<int64_t>(dim), &n_elements))
                r.error_at(dim_at, "dims", "the product of the dimensions overflows int64");
            t.dims.push_back(static_cast<int64_t>(dim));
        }
        t.n_elements = n_elements;

        const size_t type_at = r.pos;
        const uint32_t type_id = r.u32("type");
        const DTypeInfo* info = dtype_info(type_id);
        if (!info) r.error_at(type_at, "type", fmt::format("unknown ggml type {}", type_id));
        t.type = static_cast<DType>(type_id);
        const int64_t row = t.dims.empty() ? 1 : t.dims[0];
        if (row % info->block_elems != 0)
            r.error_at(type_at, "type",
                       fmt::format("row length dims[0] = {} is not a multiple of the {} block size {}", row,
                                   info->name, info->block_elems));
        uint64_t nbytes = 0;
        if (__builtin_mul_overflow(static_cast<uint64_t>(n_elements / info->block_elems),
                                   static_cast<uint64_t>(info->block_bytes), &nbytes) ||
            nbytes > std::numeric_limits<size_t>::max())
            r.error_at(type_at, "type", fmt::format("the tensor's size in bytes overflows ({} elements of {})",
                                                    n_elements, info->name));
        t.nbytes = static_cast<size_t>(nbytes);

        const size_t off_at = r.pos;
        t.offset = r.u64("offset");
        if (t.offset % alignment_ != 0)
            r.error_at(off_at, "offset",
                       fmt::format("offset {} is not a multiple of the alignment {}", t.offset, alignment_));
        offset_at.push_back(off_at);
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }

    // Data section: starts at the next multiple of the alignment. A file without tensors may end right after its
    // metadata (llama.cpp's vocab-only files do).
    const uint64_t header_end = r.pos;
    const uint64_t data_start = align_up(header_end, alignment_);
    data_offset_ = static_cast<size_t>(data_start);
    if (tensors_.empty()) return;
    if (data_start > size_) {
        r.subject = "header";
        r.error_at(header_end, "data section",
                   fmt::format("file truncated: the tensor data should start at offset {} but the file is {} bytes",
                               data_start, size_));
    }
    const uint64_t data_size = size_ - data_start;
    for (size_t k = 0; k < tensors_.size(); ++k) {
        TensorInfo& t = tensors_[k];
        if (t.offset > data_size || t.nbytes > data_size - t.offset) {
            r.subject = "tensor " + quote(t.name);
            r.error_at(offset_at[k], "offset",
                       fmt::format("data at offset {} + {} bytes is out of range: the data section holds only {} "
                                   "bytes (file truncated?)",
                                   t.offset, t.nbytes, data_size));
        }
        t.data = base_ + data_start + t.offset;
    }
}

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(std::string(key));
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(std::string(name));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
    const TensorInfo* t = find_tensor(name);
    if (!t) fail("{}: missing tensor {}", name_, quote(name));
    return *t;
}

// Typed getters ---------------------------------------------------------------------------------------------------

namespace {

[[noreturn]] void wrong_type(const std::string& file, std::string_view key, const Value& v, std::string_view want) {
    fail("{}: key {}: expected {}, found {}", file, quote(key), want, type_description(v));
}

// Integer value as a wide signed/unsigned pair: returns false when `v` is not an integer type.
bool int_value(const Value& v, bool& negative, uint64_t& magnitude_or_u, int64_t& i) {
    if (is_unsigned(v.type)) {
        negative = false;
        magnitude_or_u = v.u;
        i = 0;
        return true;
    }
    if (is_signed(v.type)) {
        negative = v.i < 0;
        magnitude_or_u = negative ? 0 : static_cast<uint64_t>(v.i);
        i = v.i;
        return true;
    }
    return false;
}

// Converts an integer Value to T, or throws naming the key.
template <typename T>
T int_as(const std::string& file, std::string_view key, const Value& v, std::string_view want,
         std::string_view elem = {}) {
    bool neg = false;
    uint64_t u = 0;
    int64_t i = 0;
    if (!int_value(v, neg, u, i)) wrong_type(file, key, v, want);
    const std::string where = elem.empty() ? quote(key) : quote(key) + std::string(elem);
    if (neg) {
        if (!std::numeric_limits<T>::is_signed || i < static_cast<int64_t>(std::numeric_limits<T>::min()))
            fail("{}: key {}: value {} does not fit in {}", file, where, i, want);
        return static_cast<T>(i);
    }
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        fail("{}: key {}: value {} does not fit in {}", file, where, u, want);
    return static_cast<T>(u);
}

// A FLOAT64 outside float's range cannot become a float (converting it would be undefined behaviour).
float to_f32(const std::string& file, std::string_view key, double d, std::string_view elem = {}) {
    if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
        fail("{}: key {}{}: value {} does not fit in FLOAT32", file, quote(key), elem, d);
    return static_cast<float>(d);
}

const Value& array_of(const std::string& file, std::string_view key, const Value& v, std::string_view want) {
    if (v.type != ValueType::ARRAY) wrong_type(file, key, v, want);
    return v;
}

}  // namespace

#define HEARTH_GGUF_REQUIRE(key)                                          \
    const Value* vp = find(key);                                          \
    if (!vp) fail("{}: missing key {}", name_, quote(key));               \
    const Value& v = *vp

std::string File::get_str(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    if (v.type != ValueType::STRING) wrong_type(name_, key, v, "STRING");
    return v.s;
}

uint64_t File::get_u64(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    return int_as<uint64_t>(name_, key, v, "UINT64");
}

uint32_t File::get_u32(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    return int_as<uint32_t>(name_, key, v, "UINT32");
}

int64_t File::get_i64(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    return int_as<int64_t>(name_, key, v, "INT64");
}

float File::get_f32(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    if (!is_float(v.type)) wrong_type(name_, key, v, "FLOAT32 or FLOAT64");
    return to_f32(name_, key, v.f);
}

bool File::get_bool(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    if (v.type != ValueType::BOOL) wrong_type(name_, key, v, "BOOL");
    return v.b;
}

std::vector<std::string> File::get_str_array(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    const Value& a = array_of(name_, key, v, "ARRAY of STRING");
    if (a.elem_type != ValueType::STRING) wrong_type(name_, key, v, "ARRAY of STRING");
    std::vector<std::string> out;
    out.reserve(a.arr.size());
    for (const Value& e : a.arr) out.push_back(e.s);
    return out;
}

std::vector<float> File::get_f32_array(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    const Value& a = array_of(name_, key, v, "ARRAY of FLOAT32");
    if (!is_float(a.elem_type)) wrong_type(name_, key, v, "ARRAY of FLOAT32 or FLOAT64");
    std::vector<float> out;
    out.reserve(a.arr.size());
    for (size_t k = 0; k < a.arr.size(); ++k) out.push_back(to_f32(name_, key, a.arr[k].f, fmt::format("[{}]", k)));
    return out;
}

std::vector<int32_t> File::get_i32_array(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    const Value& a = array_of(name_, key, v, "ARRAY of INT32");
    if (!is_signed(a.elem_type) && !is_unsigned(a.elem_type)) wrong_type(name_, key, v, "ARRAY of integers");
    std::vector<int32_t> out;
    out.reserve(a.arr.size());
    for (size_t k = 0; k < a.arr.size(); ++k)
        out.push_back(int_as<int32_t>(name_, key, a.arr[k], "INT32", fmt::format("[{}]", k)));
    return out;
}

std::vector<uint32_t> File::get_u32_array(std::string_view key) const {
    HEARTH_GGUF_REQUIRE(key);
    const Value& a = array_of(name_, key, v, "ARRAY of UINT32");
    if (!is_signed(a.elem_type) && !is_unsigned(a.elem_type)) wrong_type(name_, key, v, "ARRAY of integers");
    std::vector<uint32_t> out;
    out.reserve(a.arr.size());
    for (size_t k = 0; k < a.arr.size(); ++k)
        out.push_back(int_as<uint32_t>(name_, key, a.arr[k], "UINT32", fmt::format("[{}]", k)));
    return out;
}

#undef HEARTH_GGUF_REQUIRE

std::string File::get_str_or(std::string_view key, const std::string& def) const {
    return has(key) ? get_str(key) : def;
}
uint32_t File::get_u32_or(std::string_view key, uint32_t def) const { return has(key) ? get_u32(key) : def; }
float File::get_f32_or(std::string_view key, float def) const { return has(key) ? get_f32(key) : def; }
bool File::get_bool_or(std::string_view key, bool def) const { return has(key) ? get_bool(key) : def; }
uint64_t File::get_u64_or(std::string_view key, uint64_t def) const { return has(key) ? get_u64(key) : def; }
int64_t File::get_i64_or(std::string_view key, int64_t def) const { return has(key) ? get_i64(key) : def; }

// ---------------------------------------------------------------------------------------------------------------
// Writer

class Writer::Sink {
public:
    virtual ~Sink() = default;
    virtual void put(const void* p, size_t n) = 0;
    void zeros(size_t n) {
        static const uint8_t z[256] = {};
        while (n > 0) {
            const size_t k = n < sizeof(z) ? n : sizeof(z);
            put(z, k);
            n -= k;
        }
    }
    size_t written = 0;
};

namespace {

class VectorSink : public Writer::Sink {
public:
    std::vector<uint8_t> bytes;
    void put(const void* p, size_t n) override {
        const auto* b = static_cast<const uint8_t*>(p);
        bytes.insert(bytes.end(), b, b + n);
        written += n;
    }
};

// Buffered writes to a file descriptor; errors name the destination path.
class FdSink : public Writer::Sink {
public:
    FdSink(int fd, const std::string& path) : fd_(fd), path_(path) { buf_.reserve(kBuf); }
    void put(const void* p, size_t n) override {
        written += n;
        const auto* b = static_cast<const uint8_t*>(p);
        if (buf_.size() + n > kBuf) flush();
        if (n >= kBuf) {
            raw(b, n);
            return;
        }
        buf_.insert(buf_.end(), b, b + n);
    }
    void flush() {
        raw(buf_.data(), buf_.size());
        buf_.clear();
    }

private:
    static constexpr size_t kBuf = 1 << 20;
    void raw(const uint8_t* p, size_t n) {
        while (n > 0) {
            const ssize_t w = ::write(fd_, p, n);
            if (w < 0) {
                if (errno == EINTR) continue;
                fail("{}: write failed: {}", path_, errno_message(errno));
            }
            p += w;
            n -= static_cast<size_t>(w);
        }
    }
    int fd_;
    const std::string& path_;
    std::vector<uint8_t> buf_;
};

template <typename T>
void put_le(Writer::Sink& s, T v) {
    s.put(&v, sizeof(T));
}

void put_str(Writer::Sink& s, const std::string& v) {
    put_le<uint64_t>(s, v.size());
    s.put(v.data(), v.size());
}

// Writes one value's payload (not its type tag), checking that it can be encoded.
void put_value(Writer::Sink& s, const std::string& key, const Value& v, uint32_t depth) {
    auto fits_u = [&](uint64_t max) {
        if (v.u > max) fail("gguf writer: key {}: value {} does not fit in {}", quote(key), v.u, value_type_name(v.type));
    };
    auto fits_i = [&](int64_t min, int64_t max) {
        if (v.i < min || v.i > max)
            fail("gguf writer: key {}: value {} does not fit in {}", quote(key), v.i, value_type_name(v.type));
    };
    switch (v.type) {
        case ValueType::UINT8: fits_u(UINT8_MAX); put_le<uint8_t>(s, static_cast<uint8_t>(v.u)); break;
        case ValueType::UINT16: fits_u(UINT16_MAX); put_le<uint16_t>(s, static_cast<uint16_t>(v.u)); break;
        case ValueType::UINT32: fits_u(UINT32_MAX); put_le<uint32_t>(s, static_cast<uint32_t>(v.u)); break;
        case ValueType::UINT64: put_le<uint64_t>(s, v.u); break;
        case ValueType::INT8: fits_i(INT8_MIN, INT8_MAX); put_le<int8_t>(s, static_cast<int8_t>(v.i)); break;
        case ValueType::INT16: fits_i(INT16_MIN, INT16_MAX); put_le<int16_t>(s, static_cast<int16_t>(v.i)); break;
        case ValueType::INT32: fits_i(INT32_MIN, INT32_MAX); put_le<int32_t>(s, static_cast<int32_t>(v.i)); break;
        case ValueType::INT64: put_le<int64_t>(s, v.i); break;
        case ValueType::FLOAT32:
            if (std::isfinite(v.f) && std::fabs(v.f) > static_cast<double>(std::numeric_limits<float>::max()))
                fail("gguf writer: key {}: value {} does not fit in FLOAT32", quote(key), v.f);
            put_le<float>(s, static_cast<float>(v.f));
            break;
        case ValueType::FLOAT64: put_le<double>(s, v.f); break;
        case ValueType::BOOL: put_le<uint8_t>(s, v.b ? 1 : 0); break;
        case ValueType::STRING: put_str(s, v.s); break;
        case ValueType::ARRAY: {
            if (!known_value_type(static_cast<uint32_t>(v.elem_type)))
                fail("gguf writer: key {}: unknown array element type {}", quote(key),
                     static_cast<uint32_t>(v.elem_type));
            if (v.elem_type == ValueType::ARRAY && depth + 1 >= kMaxArrayDepth)
                fail("gguf writer: key {}: arrays nested deeper than {} levels are not supported", quote(key),
                     kMaxArrayDepth);
            put_le<uint32_t>(s, static_cast<uint32_t>(v.elem_type));
            put_le<uint64_t>(s, v.arr.size());
            for (size_t k = 0; k < v.arr.size(); ++k) {
                const Value& e = v.arr[k];
                if (e.type != v.elem_type)
                    fail("gguf writer: key {}: element {} has type {} in an ARRAY of {}", quote(key), k,
                         value_type_name(e.type), value_type_name(v.elem_type));
                put_value(s, key, e, depth + 1);
            }
            break;
        }
        default:
            fail("gguf writer: key {}: unknown value type {}", quote(key), static_cast<uint32_t>(v.type));
    }
}

void check_alignment_value(const Value& v) {
    if (v.type != ValueType::UINT32)
        fail("gguf writer: general.alignment must be UINT32, found {}", type_description(v));
    if (v.u > UINT32_MAX || !is_pow2(v.u))
        fail("gguf writer: general.alignment {} is not a power of two (and nonzero)", v.u);
}

std::atomic<uint64_t> g_tmp_counter{0};

}  // namespace

void Writer::set(const std::string& key, Value v) {
    if (key.empty()) fail("gguf writer: empty key name");
    if (key == kAlignmentKey) check_alignment_value(v);
    for (auto& kv : kv_) {
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    }
    kv_.emplace_back(key, std::move(v));
}

void Writer::remove(const std::string& key) {
    for (auto it = kv_.begin(); it != kv_.end(); ++it) {
        if (it->first == key) {
            kv_.erase(it);
            return;
        }
    }
}

void Writer::copy_metadata(const File& f) {
    // Fast path for an empty writer: keys of a File are already unique.
    if (kv_.empty()) {
        kv_ = f.metadata();
        return;
    }
    for (const auto& kv : f.metadata()) set(kv.first, kv.second);
}

void Writer::add_tensor(const std::string& name, DType type, const std::vector<int64_t>& dims, const void* data,
                        size_t nbytes) {
    if (name.empty()) fail("gguf writer: empty tensor name");
    for (const auto& t : tensors_)
        if (t.name == name) fail("gguf writer: duplicate tensor name {}", quote(name));
    const DTypeInfo* info = dtype_info(static_cast<uint32_t>(type));
    if (!info) fail("gguf writer: tensor {}: unknown ggml type {}", quote(name), static_cast<uint32_t>(type));
    if (dims.size() > kMaxDims)
        fail("gguf writer: tensor {}: {} dims, at most {} are supported", quote(name), dims.size(), kMaxDims);
    int64_t n = 1;
    for (size_t d = 0; d < dims.size(); ++d) {
        if (dims[d] < 1) fail("gguf writer: tensor {}: dimension {} is {}", quote(name), d, dims[d]);
        if (__builtin_mul_overflow(n, dims[d], &n))
            fail("gguf writer: tensor {}: the product of the dimensions overflows int64", quote(name));
    }
    const int64_t row = dims.empty() ? 1 : dims[0];
    if (row % info->block_elems != 0)
        fail("gguf writer: tensor {}: row length {} is not a multiple of the {} block size {}", quote(name), row,
             info->name, info->block_elems);
    uint64_t expect = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(n / info->block_elems), static_cast<uint64_t>(info->block_bytes),
                               &expect))
        fail("gguf writer: tensor {}: size in bytes overflows", quote(name));
    if (expect != nbytes)
        fail("gguf writer: tensor {}: {} bytes given, but {} elements of {} take {} bytes", quote(name), nbytes, n,
             info->name, expect);
    if (!data && nbytes > 0) fail("gguf writer: tensor {}: no data", quote(name));
    tensors_.push_back(PendingTensor{name, type, dims, data, nbytes});
}

void Writer::add_tensor(const TensorInfo& t) { add_tensor(t.name, t.type, t.dims, t.data, t.nbytes); }

size_t Writer::alignment() const {
    for (const auto& kv : kv_) {
        if (kv.first == kAlignmentKey) {
            check_alignment_value(kv.second);
            return static_cast<size_t>(kv.second.u);
        }
    }
    return kDefaultAlignment;
}

void Writer::serialize(Sink& out) const {
    const size_t align = alignment();
    out.put("GGUF", 4);
    put_le<uint32_t>(out, 3);
    put_le<uint64_t>(out, tensors_.size());
    put_le<uint64_t>(out, kv_.size());
    for (const auto& [key, v] : kv_) {
        put_str(out, key);
        put_le<uint32_t>(out, static_cast<uint32_t>(v.type));
        put_value(out, key, v, 0);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        put_str(out, t.name);
        put_le<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
        for (int64_t d : t.dims) put_le<uint64_t>(out, static_cast<uint64_t>(d));
        put_le<uint32_t>(out, static_cast<uint32_t>(t.type));
        put_le<uint64_t>(out, offset);
        offset = align_up(offset + t.nbytes, align);
    }
    if (tensors_.empty()) return;
    out.zeros(align_up(out.written, align) - out.written);
    for (const auto& t : tensors_) {
        out.put(t.data, t.nbytes);
        out.zeros(align_up(t.nbytes, align) - t.nbytes);
    }
}

std::vector<uint8_t> Writer::to_bytes() const {
    VectorSink s;
    serialize(s);
    return std::move(s.bytes);
}

void Writer::write(const std::string& path) const {
    const std::string tmp = fmt::format("{}.tmp.{}.{}", path, static_cast<long>(::getpid()), g_tmp_counter++);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) fail("{}: cannot create temporary file {}: {}", path, quote(tmp, 4096), errno_message(errno));
    try {
        FdSink sink(fd, path);
        serialize(sink);
        sink.flush();
        if (::fsync(fd) != 0) fail("{}: fsync failed: {}", path, errno_message(errno));
        const int rc = ::close(fd);
        fd = -1;
        if (rc != 0) fail("{}: close failed: {}", path, errno_message(errno));
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            fail("{}: cannot rename {} to it: {}", path, quote(tmp, 4096), errno_message(errno));
    } catch (const Error& e) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        // Writer errors that do not name the path yet (value encoding) get it prefixed.
        const std::string msg = e.what();
        if (msg.rfind(path + ":", 0) == 0) throw;
        throw Error(path + ": " + msg);
    } catch (...) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
}

}  // namespace hearth::gguf
