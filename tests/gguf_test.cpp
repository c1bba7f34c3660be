// GGUF reader/writer: the shared real-world files, byte-identical round trips, synthetic files of every value
// type, typed getters, and corrupted input (truncation, random damage, crafted bad headers).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "gguf/gguf.h"
#include "test_util.h"

namespace hearth::gguf {
namespace {

namespace fs = std::filesystem;

// Every GGUF under the shared folders the writer must reproduce.
std::vector<std::string> shared_ggufs() {
    std::vector<std::string> out;
    for (const char* dir : {"models", "conformance", "tokenizers/llama.cpp-vocab"}) {
        const fs::path root = test::shared(dir);
        if (!fs::exists(root)) continue;
        for (const auto& e : fs::recursive_directory_iterator(root))
            if (e.is_regular_file() && e.path().extension() == ".gguf") out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string error_of(const std::vector<uint8_t>& bytes, const std::string& name = "t.gguf") {
    try {
        File::from_memory(bytes.data(), bytes.size(), name);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

void expect_error(const std::vector<uint8_t>& bytes, const std::vector<std::string>& words) {
    const std::string msg = error_of(bytes);
    ASSERT_FALSE(msg.empty()) << "expected an error containing '" << words.front() << "', but the file parsed";
    EXPECT_EQ(msg.rfind("t.gguf: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(" at offset "), std::string::npos) << msg;
    for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
}

// Reads everything a parsed file exposes, so that a bad pointer or size would show up (under ASan, or as a
// crash) in the corruption tests.
size_t walk(const File& f) {
    size_t sum = 0;
    std::vector<const Value*> stack;
    for (const auto& [k, v] : f.metadata()) {
        sum += k.size();
        stack.push_back(&v);
        while (!stack.empty()) {
            const Value* x = stack.back();
            stack.pop_back();
            sum += x->s.size() + static_cast<size_t>(x->u) + (x->b ? 1 : 0);
            for (const auto& e : x->arr) stack.push_back(&e);
        }
        EXPECT_EQ(f.find(k), &v);
    }
    for (const auto& t : f.tensors()) {
        EXPECT_EQ(f.find_tensor(t.name), &t);
        EXPECT_GE(t.data, f.bytes() + f.data_offset());
        EXPECT_LE(t.data + t.nbytes, f.bytes() + f.size());
        if (t.nbytes > 0) sum += t.data[0] + t.data[t.nbytes - 1];
    }
    return sum;
}

// Builds raw GGUF bytes by hand, for headers the Writer refuses to produce.
struct Bytes {
    std::vector<uint8_t> b;
    Bytes& raw(const void* p, size_t n) {
        const auto* c = static_cast<const uint8_t*>(p);
        b.insert(b.end(), c, c + n);
        return *this;
    }
    Bytes& u8(uint8_t v) { return raw(&v, 1); }
    Bytes& u32(uint32_t v) { return raw(&v, 4); }
    Bytes& u64(uint64_t v) { return raw(&v, 8); }
    Bytes& str(const std::string& s) { return u64(s.size()).raw(s.data(), s.size()); }
    Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        return raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
    }
    Bytes& kv_u32(const std::string& k, uint32_t v) { return str(k).u32(4).u32(v); }
    Bytes& kv_str(const std::string& k, const std::string& v) { return str(k).u32(8).str(v); }
    Bytes& tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type, uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(dims.size()));
        for (uint64_t d : dims) u64(d);
        return u32(type).u64(offset);
    }
    Bytes& pad(size_t align) {
        while (b.size() % align) b.push_back(0);
        return *this;
    }
    Bytes& zeros(size_t n) {
        b.resize(b.size() + n, 0);
        return *this;
    }
};

// A small file with every value type, nested arrays, and tensors of several types.
struct Synthetic {
    std::vector<float> a;        // F32 [5, 3]
    std::vector<uint16_t> h;     // F16 [7]
    std::vector<uint8_t> q40;    // Q4_0 [64, 2]
    std::vector<uint8_t> q4k;    // Q4_K [256]   (144 bytes)
    std::vector<uint8_t> last;   // Q8_0 [32, 16] (544 bytes: ends aligned, so the file has no tail padding)
    Writer w;

    explicit Synthetic(bool with_tensors = true, uint32_t alignment = 0) {
        if (alignment) w.set("general.alignment", Value::u32(alignment));
        w.set("general.architecture", Value::str("testarch"));
        w.set("t.u8", Value::u8(200));
        w.set("t.i8", Value::i8(-100));
        w.set("t.u16", Value::u16(60000));
        w.set("t.i16", Value::i16(-30000));
        w.set("t.u32", Value::u32(4000000000u));
        w.set("t.i32", Value::i32(-2000000000));
        w.set("t.u64", Value::u64(1ull << 40));
        w.set("t.i64", Value::i64(-(1ll << 50)));
        w.set("t.f32", Value::f32(0.25f));
        w.set("t.f64", Value::f64(-1.0e300));
        w.set("t.bool", Value::boolean(true));
        w.set("t.str", Value::str(std::string("h\xc3\xa9llo\0x", 8)));
        w.set("t.empty_str", Value::str(""));
        w.set("t.strs", Value::str_array({"a", "", "ccc"}));
        w.set("t.f32s", Value::f32_array({1.5f, -2.0f}));
        w.set("t.i32s", Value::i32_array({-1, 0, 7}));
        w.set("t.u32s", Value::u32_array({1, 2, 3}));
        w.set("t.u8s", Value::array(ValueType::UINT8, {Value::u8(1), Value::u8(255)}));
        w.set("t.empty_arr", Value::array(ValueType::INT64, {}));
        w.set("t.nested", Value::array(ValueType::ARRAY, {Value::i32_array({1, 2}), Value::str_array({"x"}),
                                                          Value::array(ValueType::BOOL, {})}));
        if (!with_tensors) return;
        std::mt19937 rng(7);
        for (int k = 0; k < 15; ++k) a.push_back(static_cast<float>(k) * 0.5f - 3.0f);
        for (int k = 0; k < 7; ++k) h.push_back(static_cast<uint16_t>(rng()));
        q40.resize(2 * 2 * 18);
        q4k.resize(144);
        last.resize(16 * 34);
        for (auto* v : {&q40, &q4k, &last})
            for (auto& x : *v) x = static_cast<uint8_t>(rng());
        w.add_tensor("a", DType::F32, {5, 3}, a.data(), a.size() * 4);
        w.add_tensor("h", DType::F16, {7}, h.data(), h.size() * 2);
        w.add_tensor("blk.0.q40", DType::Q4_0, {64, 2}, q40.data(), q40.size());
        w.add_tensor("blk.0.q4k", DType::Q4_K, {256}, q4k.data(), q4k.size());
        w.add_tensor("z.last", DType::Q8_0, {32, 16}, last.data(), last.size());
    }
};

// ---------------------------------------------------------------------------------------------------------------
// Shared real-world files

TEST(GgufShared, EveryFileOpensAndIsConsistent) {
    const auto files = shared_ggufs();
    ASSERT_GE(files.size(), 40u) << "shared GGUFs not found under " << test::shared_dir();
    for (const auto& path : files) {
        SCOPED_TRACE(path);
        File f = File::open(path);
        EXPECT_EQ(f.path(), path);
        EXPECT_EQ(f.version(), 3u);
        EXPECT_EQ(f.alignment(), 32u);
        EXPECT_FALSE(f.get_str("general.architecture").empty());
        EXPECT_EQ(f.data_offset() % 32, 0u);
        const auto tokens = f.get_str_array("tokenizer.ggml.tokens");
        EXPECT_GT(tokens.size(), 100u);
        if (f.has("tokenizer.ggml.scores")) {
            EXPECT_EQ(f.get_f32_array("tokenizer.ggml.scores").size(), tokens.size());
        }
        if (f.has("tokenizer.ggml.token_type")) {
            EXPECT_EQ(f.get_i32_array("tokenizer.ggml.token_type").size(), tokens.size());
        }
        const bool vocab_only = path.find("llama.cpp-vocab") != std::string::npos;
        if (vocab_only) {
            EXPECT_TRUE(f.tensors().empty());
        } else {
            EXPECT_FALSE(f.tensors().empty());
            EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr);
        }
        for (const auto& t : f.tensors()) {
            SCOPED_TRACE(t.name);
            ASSERT_NE(dtype_info(static_cast<uint32_t>(t.type)), nullptr);
            EXPECT_TRUE(dtype_info(t.type).supported);
            EXPECT_EQ(t.nbytes, row_bytes(t.type, t.dims[0]) * static_cast<size_t>(t.rows()));
            EXPECT_EQ(t.offset % f.alignment(), 0u);
            EXPECT_EQ(t.data, f.bytes() + f.data_offset() + t.offset);
            EXPECT_LE(t.data + t.nbytes, f.bytes() + f.size());
            // Zero copy: the mapping is page aligned, so tensor data is aligned in memory too.
            EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % f.alignment(), 0u);
        }
        walk(f);
    }
}

TEST(GgufShared, Stories260KFacts) {
    File f = File::open(test::shared("models/stories260K.gguf"));
    EXPECT_EQ(f.get_str("general.architecture"), "llama");
    EXPECT_EQ(f.get_u32("llama.embedding_length"), 64u);
    EXPECT_EQ(f.get_u64("llama.embedding_length"), 64u);
    EXPECT_EQ(f.get_i64("llama.block_count"), 5);
    EXPECT_EQ(f.get_u32("llama.attention.head_count"), 8u);
    EXPECT_EQ(f.get_u32("llama.attention.head_count_kv"), 4u);
    EXPECT_EQ(f.get_u32("llama.feed_forward_length"), 172u);
    EXPECT_EQ(f.get_u32("tokenizer.ggml.padding_token_id"), 4294967295u);
    EXPECT_FLOAT_EQ(f.get_f32("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
    EXPECT_EQ(f.get_str("tokenizer.ggml.model"), "llama");
    const auto tokens = f.get_str_array("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 512u);
    EXPECT_EQ(tokens[0], "<unk>");
    EXPECT_EQ(tokens[1], "<s>");
    EXPECT_EQ(tokens[2], "</s>");
    const auto types = f.get_i32_array("tokenizer.ggml.token_type");
    ASSERT_EQ(types.size(), 512u);
    EXPECT_EQ(types[0], 2);
    EXPECT_EQ(types[1], 3);
    EXPECT_EQ(f.find("tokenizer.ggml.tokens")->elem_type, ValueType::STRING);
    EXPECT_EQ(f.find("tokenizer.ggml.scores")->elem_type, ValueType::FLOAT32);
    EXPECT_EQ(f.tensors().size(), 48u);
    EXPECT_EQ(f.data_offset(), 14176u);

    const TensorInfo& emb = f.tensor("token_embd.weight");
    EXPECT_EQ(emb.type, DType::F32);
    EXPECT_EQ(emb.dims, (std::vector<int64_t>{64, 512}));
    EXPECT_EQ(emb.n_elements, 64 * 512);
    EXPECT_EQ(emb.rows(), 512);
    EXPECT_EQ(emb.nbytes, 64u * 512u * 4u);
    EXPECT_EQ(emb.offset, 0u);
    float first[4];
    std::memcpy(first, emb.data, sizeof first);
    EXPECT_FLOAT_EQ(first[0], -0.29474878f);
    EXPECT_FLOAT_EQ(first[1], 0.5618956f);
    EXPECT_FLOAT_EQ(first[3], 0.3405736f);
    const TensorInfo& norm = f.tensor("output_norm.weight");
    EXPECT_EQ(norm.dims, (std::vector<int64_t>{64}));
    EXPECT_EQ(norm.offset, 131072u);
    float n0;
    std::memcpy(&n0, norm.data, 4);
    EXPECT_FLOAT_EQ(n0, 2.4583089f);
    EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").dims, (std::vector<int64_t>{172, 64}));
    EXPECT_EQ(f.find_tensor("no.such.tensor"), nullptr);
    try {
        f.tensor("no.such.tensor");
        ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("missing tensor 'no.such.tensor'"), std::string::npos) << e.what();
    }
}

TEST(GgufShared, ConformanceTensorTypes) {
    auto types_of = [](const std::string& rel) {
        File f = File::open(test::shared(rel));
        std::set<DType> s;
        for (const auto& t : f.tensors()) s.insert(t.type);
        return s;
    };
    EXPECT_EQ(types_of("conformance/llama/llama.Q4_K_M.gguf"), (std::set<DType>{DType::Q4_K, DType::Q6_K, DType::F32}));
    EXPECT_EQ(types_of("conformance/llama/llama.Q8_0.gguf"), (std::set<DType>{DType::Q8_0, DType::F32}));
    EXPECT_EQ(types_of("conformance/llama/llama.BF16.gguf"), (std::set<DType>{DType::BF16, DType::F32}));
    EXPECT_EQ(types_of("conformance/llama/llama.Q2_K.gguf"),
              (std::set<DType>{DType::Q2_K, DType::Q3_K, DType::Q6_K, DType::F32}));
    EXPECT_EQ(types_of("conformance/llama/llama.IQ4_NL.gguf"), (std::set<DType>{DType::IQ4_NL, DType::Q6_K, DType::F32}));

    File f = File::open(test::shared("conformance/llama/llama.Q4_K_M.gguf"));
    const TensorInfo& out = f.tensor("output.weight");
    EXPECT_EQ(out.type, DType::Q6_K);
    EXPECT_EQ(out.dims, (std::vector<int64_t>{256, 512}));
    EXPECT_EQ(out.nbytes, 512u * 210u);
    const TensorInfo& emb = f.tensor("token_embd.weight");
    EXPECT_EQ(emb.type, DType::Q4_K);
    EXPECT_EQ(emb.offset, 108544u);
    EXPECT_EQ(f.get_u32("general.file_type"), 15u);
}

TEST(GgufShared, VocabOnlyFiles) {
    File f = File::open(test::shared("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_EQ(f.get_str("general.name"), "llama-spm");
    EXPECT_EQ(f.get_u32("llama.vocab_size"), 32000u);
    EXPECT_EQ(f.get_str_array("tokenizer.ggml.tokens").size(), 32000u);
    EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token"));
    EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token"));
    EXPECT_EQ(f.get_str("tokenizer.ggml.pre"), "default");
    // A vocab-only file ends right after its metadata, unpadded.
    EXPECT_GE(f.data_offset(), f.size());
    EXPECT_LT(f.data_offset() - f.size(), 32u);
}

TEST(GgufShared, OpenErrorsNameThePath) {
    const std::string missing = test::shared("models/does-not-exist.gguf");
    try {
        File::open(missing);
        ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(missing + ": cannot open", 0), 0u) << e.what();
    }
    try {
        File::open(test::shared("models"));
        ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
    const fs::path empty = fs::temp_directory_path() / fmt::format("hearth-gguf-empty-{}.gguf", getpid());
    { std::ofstream(empty.string()); }
    try {
        File::open(empty.string());
        ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
    fs::remove(empty);
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

TEST(GgufRoundTrip, EverySharedFileByteIdentical) {
    const auto files = shared_ggufs();
    ASSERT_GE(files.size(), 40u);
    for (const auto& path : files) {
        SCOPED_TRACE(path);
        File f = File::open(path);
        Writer w;
        w.copy_metadata(f);
        for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.dims, t.data, t.nbytes);
        const std::vector<uint8_t> out = w.to_bytes();
        ASSERT_EQ(out.size(), f.size());
        EXPECT_EQ(std::memcmp(out.data(), f.bytes(), f.size()), 0);
    }
}

TEST(GgufRoundTrip, WriteToDiskIsIdenticalAndAtomic) {
    const std::string src = test::shared("models/stories260K.gguf");
    const fs::path dir = fs::temp_directory_path() / fmt::format("hearth-gguf-test-{}", getpid());
    fs::create_directories(dir);
    const std::string dst = (dir / "copy.gguf").string();
    {
        std::ofstream(dst) << "old contents";  // replaced atomically
        File f = File::open(src);
        Writer w;
        w.copy_metadata(f);
        for (const auto& t : f.tensors()) w.add_tensor(t);
        w.write(dst);
    }
    EXPECT_EQ(test::read_file(dst), test::read_file(src));
    size_t n_files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n_files;
    EXPECT_EQ(n_files, 1u) << "temporary file left behind";

    Writer w;
    w.set("general.architecture", Value::str("x"));
    const std::string bad = (dir / "no-such-dir" / "out.gguf").string();
    try {
        w.write(bad);
        ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind(bad + ": ", 0), 0u) << e.what();
        EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
    }
    // An encoding error aborts the write, names the path and leaves nothing behind.
    Value mixed = Value::array(ValueType::INT32, {Value::i32(1), Value::str("two")});
    w.set("bad.array", mixed);
    const std::string dst2 = (dir / "bad.gguf").string();
    try {
        w.write(dst2);
        ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_EQ(msg.rfind(dst2 + ": ", 0), 0u) << msg;
        EXPECT_NE(msg.find("'bad.array'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("element 1 has type STRING in an ARRAY of INT32"), std::string::npos) << msg;
    }
    EXPECT_FALSE(fs::exists(dst2));
    n_files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n_files;
    EXPECT_EQ(n_files, 1u);
    fs::remove_all(dir);
}

TEST(GgufWriter, SyntheticFileReadsBack) {
    for (uint32_t alignment : {0u, 1u, 64u, 4096u}) {
        SCOPED_TRACE(alignment);
        Synthetic s(true, alignment);
        const std::vector<uint8_t> bytes = s.w.to_bytes();
        File f = File::from_memory(bytes.data(), bytes.size(), "synthetic");
        const size_t align = alignment ? alignment : 32;
        EXPECT_EQ(f.version(), 3u);
        EXPECT_EQ(f.alignment(), align);
        EXPECT_EQ(f.data_offset() % align, 0u);
        EXPECT_EQ(f.metadata().size(), s.w.metadata().size());
        EXPECT_EQ(f.find("t.u8")->type, ValueType::UINT8);
        EXPECT_EQ(f.find("t.u8")->u, 200u);
        EXPECT_EQ(f.find("t.i8")->i, -100);
        EXPECT_EQ(f.find("t.u16")->u, 60000u);
        EXPECT_EQ(f.find("t.i16")->i, -30000);
        EXPECT_EQ(f.get_u32("t.u32"), 4000000000u);
        EXPECT_EQ(f.get_i64("t.i32"), -2000000000);
        EXPECT_EQ(f.get_u64("t.u64"), 1ull << 40);
        EXPECT_EQ(f.get_i64("t.i64"), -(1ll << 50));
        EXPECT_EQ(f.get_f32("t.f32"), 0.25f);
        EXPECT_EQ(f.find("t.f64")->f, -1.0e300);
        EXPECT_TRUE(f.get_bool("t.bool"));
        EXPECT_EQ(f.get_str("t.str"), std::string("h\xc3\xa9llo\0x", 8));
        EXPECT_EQ(f.get_str("t.empty_str"), "");
        EXPECT_EQ(f.get_str_array("t.strs"), (std::vector<std::string>{"a", "", "ccc"}));
        EXPECT_EQ(f.get_f32_array("t.f32s"), (std::vector<float>{1.5f, -2.0f}));
        EXPECT_EQ(f.get_i32_array("t.i32s"), (std::vector<int32_t>{-1, 0, 7}));
        EXPECT_EQ(f.get_u32_array("t.u32s"), (std::vector<uint32_t>{1, 2, 3}));
        EXPECT_EQ(f.get_i32_array("t.u8s"), (std::vector<int32_t>{1, 255}));
        const Value* e = f.find("t.empty_arr");
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->elem_type, ValueType::INT64);
        EXPECT_TRUE(e->arr.empty());
        const Value* n = f.find("t.nested");
        ASSERT_NE(n, nullptr);
        ASSERT_EQ(n->arr.size(), 3u);
        EXPECT_EQ(n->elem_type, ValueType::ARRAY);
        EXPECT_EQ(n->arr[0].elem_type, ValueType::INT32);
        EXPECT_EQ(n->arr[0].arr[1].i, 2);
        EXPECT_EQ(n->arr[1].arr[0].s, "x");
        EXPECT_EQ(n->arr[2].elem_type, ValueType::BOOL);
        EXPECT_EQ(value_to_string(*n), "[ARRAY x 3: [INT32 x 2: 1, 2], [STRING x 1: \"x\"], [BOOL x 0]]");
        EXPECT_EQ(value_to_string(*f.find("t.str")), "\"h\\xc3\\xa9llo\\x00x\"");

        ASSERT_EQ(f.tensors().size(), 5u);
        const char* order[] = {"a", "h", "blk.0.q40", "blk.0.q4k", "z.last"};
        uint64_t expect_offset = 0;
        for (size_t k = 0; k < 5; ++k) {
            const TensorInfo& t = f.tensors()[k];
            EXPECT_EQ(t.name, order[k]);
            EXPECT_EQ(t.offset, expect_offset);
            expect_offset = (t.offset + t.nbytes + align - 1) / align * align;
        }
        EXPECT_EQ(f.size(), f.data_offset() + expect_offset);
        const TensorInfo& a = f.tensor("a");
        EXPECT_EQ(a.dims, (std::vector<int64_t>{5, 3}));
        EXPECT_EQ(a.rows(), 3);
        EXPECT_EQ(std::memcmp(a.data, s.a.data(), a.nbytes), 0);
        EXPECT_EQ(f.tensor("h").nbytes, 14u);
        EXPECT_EQ(std::memcmp(f.tensor("h").data, s.h.data(), 14), 0);
        EXPECT_EQ(f.tensor("blk.0.q40").nbytes, s.q40.size());
        EXPECT_EQ(std::memcmp(f.tensor("blk.0.q40").data, s.q40.data(), s.q40.size()), 0);
        EXPECT_EQ(std::memcmp(f.tensor("blk.0.q4k").data, s.q4k.data(), 144), 0);
        EXPECT_EQ(f.tensor("z.last").type, DType::Q8_0);
        EXPECT_EQ(std::memcmp(f.tensor("z.last").data, s.last.data(), s.last.size()), 0);
        // Padding is zero.
        for (size_t k = f.tensor("h").offset + 14; k < f.tensor("blk.0.q40").offset; ++k)
            EXPECT_EQ(f.bytes()[f.data_offset() + k], 0) << k;

        // And it round-trips byte for byte itself.
        Writer w2;
        w2.copy_metadata(f);
        for (const auto& t : f.tensors()) w2.add_tensor(t);
        EXPECT_EQ(w2.to_bytes(), bytes);
    }
}

TEST(GgufWriter, VersionTwoAndUnsupportedTypesLoad) {
    // A v2 file with a tensor of a known type hearth cannot compute with (Q8_K): it loads; the model loader decides.
    Bytes b;
    b.header(1, 1, 2).kv_str("general.architecture", "llama").tensor("w", {256, 2}, 15, 0).pad(32).zeros(2 * 292);
    File f = File::from_memory(b.b.data(), b.b.size());
    EXPECT_EQ(f.version(), 2u);
    ASSERT_EQ(f.tensors().size(), 1u);
    EXPECT_EQ(static_cast<uint32_t>(f.tensors()[0].type), 15u);
    EXPECT_FALSE(dtype_info(f.tensors()[0].type).supported);
    EXPECT_EQ(f.tensors()[0].nbytes, 2u * 292u);
    // A scalar tensor (n_dims 0) is one element.
    Bytes s;
    s.header(1, 0).tensor("scalar", {}, 0, 0).pad(32).zeros(4);
    File g = File::from_memory(s.b.data(), s.b.size());
    EXPECT_EQ(g.tensors()[0].n_elements, 1);
    EXPECT_EQ(g.tensors()[0].nbytes, 4u);
    EXPECT_EQ(g.tensors()[0].rows(), 1);
}

TEST(GgufWriter, RejectsBadInput) {
    auto expect_throw = [](auto&& fn, const std::string& word) {
        try {
            fn();
            ADD_FAILURE() << "expected an error containing '" << word << "'";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
        }
    };
    Writer w;
    float data[64] = {};
    w.add_tensor("x", DType::F32, {4}, data, 16);
    expect_throw([&] { w.add_tensor("x", DType::F32, {4}, data, 16); }, "duplicate tensor name 'x'");
    expect_throw([&] { w.add_tensor("", DType::F32, {4}, data, 16); }, "empty tensor name");
    expect_throw([&] { w.add_tensor("y", static_cast<DType>(99), {4}, data, 16); }, "unknown ggml type 99");
    expect_throw([&] { w.add_tensor("y", DType::F32, {1, 1, 1, 1, 1}, data, 4); }, "at most 4");
    expect_throw([&] { w.add_tensor("y", DType::F32, {0}, data, 0); }, "dimension 0 is 0");
    expect_throw([&] { w.add_tensor("y", DType::Q4_0, {16}, data, 9); }, "not a multiple of the Q4_0 block size 32");
    expect_throw([&] { w.add_tensor("y", DType::F32, {4}, data, 15); }, "15 bytes given, but 4 elements of F32 take 16");
    expect_throw([&] { w.add_tensor("y", DType::F32, {4}, nullptr, 16); }, "no data");
    expect_throw([&] { w.add_tensor("y", DType::F32, {1ll << 40, 1ll << 40}, data, 16); }, "overflows");
    expect_throw([&] { w.set("general.alignment", Value::u32(48)); }, "power of two");
    expect_throw([&] { w.set("general.alignment", Value::u32(0)); }, "power of two");
    expect_throw([&] { w.set("general.alignment", Value::u64(32)); }, "must be UINT32");
    expect_throw([&] { w.set("", Value::u32(1)); }, "empty key");
    Value big = Value::u32(0);
    big.type = ValueType::UINT8;
    big.u = 300;
    w.set("too.big", big);
    expect_throw([&] { w.to_bytes(); }, "value 300 does not fit in UINT8");

    // set() replaces in place; remove() drops.
    Writer v;
    v.set("a", Value::u32(1));
    v.set("b", Value::u32(2));
    v.set("a", Value::str("one"));
    ASSERT_EQ(v.metadata().size(), 2u);
    EXPECT_EQ(v.metadata()[0].first, "a");
    EXPECT_EQ(v.metadata()[0].second.s, "one");
    v.remove("a");
    v.remove("not-there");
    ASSERT_EQ(v.metadata().size(), 1u);
    EXPECT_EQ(v.metadata()[0].first, "b");
}

// ---------------------------------------------------------------------------------------------------------------
// Typed getters

TEST(GgufGetters, ConversionsAndErrors) {
    Synthetic s(false);
    s.w.set("t.f64_small", Value::f64(0.5));
    s.w.set("t.i64s_big", Value::array(ValueType::INT64, {Value::i64(1), Value::i64(1ll << 40)}));
    s.w.set("t.neg_i32s", Value::i32_array({3, -3}));
    const std::vector<uint8_t> bytes = s.w.to_bytes();
    File f = File::from_memory(bytes.data(), bytes.size(), "g.gguf");
    auto error = [](auto&& fn) -> std::string {
        try {
            fn();
        } catch (const Error& e) {
            return e.what();
        }
        return "(no error)";
    };
    // Integer widths convert when the value fits.
    EXPECT_EQ(f.get_u32("t.u8"), 200u);
    EXPECT_EQ(f.get_i64("t.u8"), 200);
    EXPECT_EQ(f.get_u64("t.u16"), 60000u);
    EXPECT_EQ(f.get_i64("t.i8"), -100);
    EXPECT_EQ(f.get_i64("t.u32"), 4000000000ll);
    EXPECT_EQ(f.get_u64("t.u32"), 4000000000ull);
    EXPECT_EQ(f.get_f32("t.f64_small"), 0.5f);
    EXPECT_EQ(error([&] { f.get_u32("t.u64"); }), "g.gguf: key 't.u64': value 1099511627776 does not fit in UINT32");
    EXPECT_EQ(error([&] { f.get_u64("t.i8"); }), "g.gguf: key 't.i8': value -100 does not fit in UINT64");
    EXPECT_EQ(error([&] { f.get_u32("t.i16"); }), "g.gguf: key 't.i16': value -30000 does not fit in UINT32");
    EXPECT_EQ(error([&] { f.get_f32("t.f64"); }), "g.gguf: key 't.f64': value -1e+300 does not fit in FLOAT32");
    // Wrong types name the key, the wanted type and the actual one.
    EXPECT_EQ(error([&] { f.get_str("t.u32"); }), "g.gguf: key 't.u32': expected STRING, found UINT32");
    EXPECT_EQ(error([&] { f.get_u32("t.str"); }), "g.gguf: key 't.str': expected UINT32, found STRING");
    EXPECT_EQ(error([&] { f.get_i64("t.f32"); }), "g.gguf: key 't.f32': expected INT64, found FLOAT32");
    EXPECT_EQ(error([&] { f.get_f32("t.u32"); }), "g.gguf: key 't.u32': expected FLOAT32 or FLOAT64, found UINT32");
    EXPECT_EQ(error([&] { f.get_bool("t.u8"); }), "g.gguf: key 't.u8': expected BOOL, found UINT8");
    EXPECT_EQ(error([&] { f.get_str_array("t.f32s"); }),
              "g.gguf: key 't.f32s': expected ARRAY of STRING, found ARRAY of FLOAT32");
    EXPECT_EQ(error([&] { f.get_str_array("t.str"); }), "g.gguf: key 't.str': expected ARRAY of STRING, found STRING");
    EXPECT_EQ(error([&] { f.get_f32_array("t.strs"); }),
              "g.gguf: key 't.strs': expected ARRAY of FLOAT32 or FLOAT64, found ARRAY of STRING");
    EXPECT_EQ(error([&] { f.get_i32_array("t.strs"); }),
              "g.gguf: key 't.strs': expected ARRAY of integers, found ARRAY of STRING");
    EXPECT_EQ(error([&] { f.get_i32_array("t.i64s_big"); }),
              "g.gguf: key 't.i64s_big'[1]: value 1099511627776 does not fit in INT32");
    EXPECT_EQ(error([&] { f.get_u32_array("t.neg_i32s"); }),
              "g.gguf: key 't.neg_i32s'[1]: value -3 does not fit in UINT32");
    EXPECT_EQ(error([&] { f.get_u32("nope"); }), "g.gguf: missing key 'nope'");
    EXPECT_EQ(error([&] { f.get_str_array("nope"); }), "g.gguf: missing key 'nope'");
    // Defaults apply only when the key is absent; a present key of the wrong type is still an error.
    EXPECT_TRUE(f.has("t.bool"));
    EXPECT_FALSE(f.has("t.boo"));
    EXPECT_EQ(f.get_u32_or("nope", 7), 7u);
    EXPECT_EQ(f.get_str_or("nope", "d"), "d");
    EXPECT_EQ(f.get_f32_or("nope", 1.5f), 1.5f);
    EXPECT_TRUE(f.get_bool_or("nope", true));
    EXPECT_EQ(f.get_u64_or("nope", 9), 9u);
    EXPECT_EQ(f.get_i64_or("nope", -9), -9);
    EXPECT_EQ(f.get_u32_or("t.u8", 7), 200u);
    EXPECT_EQ(f.get_str_or("general.architecture", "d"), "testarch");
    EXPECT_EQ(f.get_f32_or("t.f32", 1.0f), 0.25f);
    EXPECT_EQ(error([&] { f.get_u32_or("t.str", 7); }), "g.gguf: key 't.str': expected UINT32, found STRING");
    EXPECT_EQ(error([&] { f.get_bool_or("t.u8", false); }), "g.gguf: key 't.u8': expected BOOL, found UINT8");
}

// ---------------------------------------------------------------------------------------------------------------
// Corrupted input

TEST(GgufCorrupt, EveryTruncationThrows) {
    for (bool with_tensors : {true, false}) {
        SCOPED_TRACE(with_tensors);
        Synthetic s(with_tensors);
        const std::vector<uint8_t> full = s.w.to_bytes();
        ASSERT_NO_THROW(File::from_memory(full.data(), full.size()));
        for (size_t len = 0; len < full.size(); ++len) {
            // An exactly sized copy, so that an over-read is caught by ASan builds.
            const std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<ptrdiff_t>(len));
            const std::string msg = error_of(cut);
            ASSERT_FALSE(msg.empty()) << "a truncation to " << len << " bytes parsed";
            ASSERT_NE(msg.find("truncated"), std::string::npos) << len << ": " << msg;
            ASSERT_NE(msg.find(" at offset "), std::string::npos) << len << ": " << msg;
        }
    }
}

TEST(GgufCorrupt, RealVocabTruncationsThrow) {
    const std::string full = test::read_file(test::shared("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
    ASSERT_GT(full.size(), 100000u);
    std::mt19937_64 rng(99);
    for (int it = 0; it < 200; ++it) {
        const size_t len = it < 100 ? static_cast<size_t>(rng() % 2048) : static_cast<size_t>(rng() % full.size());
        const std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<ptrdiff_t>(len));
        const std::string msg = error_of(cut, "spm.gguf");
        ASSERT_FALSE(msg.empty()) << len;
        EXPECT_NE(msg.find("truncated"), std::string::npos) << len << ": " << msg;
    }
    // Cut inside the token list: the message says which element.
    const std::vector<uint8_t> cut(full.begin(), full.begin() + 400000);
    const std::string msg = error_of(cut, "spm.gguf");
    EXPECT_EQ(msg.rfind("spm.gguf: key 'tokenizer.ggml.tokens'[", 0), 0u) << msg;
}

// Parses damaged copies of `base`; every one must parse or throw hearth::Error.
template <typename Damage>
void damage_test(const std::vector<uint8_t>& base, int iterations, uint64_t seed, Damage damage) {
    std::mt19937_64 rng(seed);
    int parsed = 0, rejected = 0;
    for (int it = 0; it < iterations; ++it) {
        std::vector<uint8_t> b = base;
        damage(b, rng);
        try {
            File f = File::from_memory(b.data(), b.size(), "d.gguf");
            walk(f);
            ++parsed;
        } catch (const Error& e) {
            ++rejected;
            const std::string msg = e.what();
            if (msg.rfind("d.gguf: ", 0) != 0 || msg.find(" at offset ") == std::string::npos)
                ADD_FAILURE() << "badly formed message: " << msg;
        }
    }
    EXPECT_GT(parsed, 0);
    EXPECT_GT(rejected, 0);
}

TEST(GgufCorrupt, RandomByteFlipsParseOrThrow) {
    Synthetic s;
    const std::vector<uint8_t> base = s.w.to_bytes();
    const size_t header = File::from_memory(base.data(), base.size()).data_offset();
    damage_test(base, 20000, 1, [&](std::vector<uint8_t>& b, std::mt19937_64& rng) {
        const int n = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n; ++k) {
            // Mostly in the header, where the structure is.
            const size_t at = (rng() % 4 != 0) ? rng() % header : rng() % b.size();
            b[at] ^= static_cast<uint8_t>(1 + rng() % 255);
        }
    });
}

TEST(GgufCorrupt, RandomU64PatchesParseOrThrow) {
    Synthetic s;
    const std::vector<uint8_t> base = s.w.to_bytes();
    const size_t header = File::from_memory(base.data(), base.size()).data_offset();
    damage_test(base, 20000, 2, [&](std::vector<uint8_t>& b, std::mt19937_64& rng) {
        const uint64_t patterns[] = {0,          1,           2,          31,         32,
                                     0xffffffff, 1ull << 32,  1ull << 60, 1ull << 63, ~0ull,
                                     ~0ull - 31, b.size(),    b.size() - 1, rng(),    rng() % 4096};
        const uint64_t v = patterns[rng() % (sizeof(patterns) / sizeof(patterns[0]))];
        const size_t at = rng() % (header - 8);
        std::memcpy(b.data() + at, &v, 8);
    });
}

TEST(GgufCorrupt, RealModelHeaderFlipsParseOrThrow) {
    const std::string s = test::read_file(test::shared("models/stories260K.gguf"));
    const std::vector<uint8_t> base(s.begin(), s.end());
    const size_t header = File::from_memory(base.data(), base.size()).data_offset();
    damage_test(base, 600, 3, [&](std::vector<uint8_t>& b, std::mt19937_64& rng) {
        if (rng() % 2) {
            b[rng() % header] ^= static_cast<uint8_t>(1 + rng() % 255);
        } else {
            const uint64_t v = (rng() % 2) ? rng() : (rng() % 2 ? ~0ull : rng() % 100000);
            std::memcpy(b.data() + rng() % (header - 8), &v, 8);
        }
    });
}

TEST(GgufCorrupt, CraftedHeadersGiveClearErrors) {
    const std::string q = "blk.0.attn_q.weight";
    {
        SCOPED_TRACE("empty input");
        expect_error({}, {"header magic at offset 0", "file truncated"});
    }
    {
        SCOPED_TRACE("bad magic");
        Bytes b;
        b.raw("GGML", 4).u32(3).u64(0).u64(0);
        expect_error(b.b, {"header magic at offset 0", "bad magic 'GGML'"});
    }
    {
        SCOPED_TRACE("version 1");
        Bytes b;
        b.header(0, 0, 1);
        expect_error(b.b, {"header version at offset 4", "GGUF version 1 is not supported"});
    }
    {
        SCOPED_TRACE("version 4");
        Bytes b;
        b.header(0, 0, 4);
        expect_error(b.b, {"unsupported GGUF version 4"});
    }
    {
        SCOPED_TRACE("big-endian");
        Bytes b;
        b.header(0, 0, 0x03000000);
        expect_error(b.b, {"big-endian"});
    }
    {
        SCOPED_TRACE("n_kv = 2^60");
        Bytes b;
        b.header(0, 1ull << 60).kv_u32("a", 1);
        expect_error(b.b, {"header n_kv at offset 16", "n_kv = 1152921504606846976 is too large"});
    }
    {
        SCOPED_TRACE("n_tensors = 2^62");
        Bytes b;
        b.header(1ull << 62, 0).zeros(64);
        expect_error(b.b, {"header n_tensors at offset 8", "too large"});
    }
    {
        SCOPED_TRACE("key length past the end");
        Bytes b;
        b.header(0, 1).u64(1000).raw("abc", 3).u32(4).u32(1);
        expect_error(b.b, {"key #0 name length at offset 24", "string length 1000 runs past the end of the file"});
    }
    {
        SCOPED_TRACE("string value length past the end");
        Bytes b;
        b.header(0, 1).str("k").u32(8).u64(1ull << 63).zeros(8);
        expect_error(b.b, {"key 'k' string length at offset 37", "past the end"});
    }
    {
        SCOPED_TRACE("unknown value type");
        Bytes b;
        b.header(0, 1).str("k").u32(13).u32(0);
        expect_error(b.b, {"key 'k' value type at offset 33", "unknown value type 13"});
    }
    {
        SCOPED_TRACE("unknown array element type");
        Bytes b;
        b.header(0, 1).str("k").u32(9).u32(77).u64(0);
        expect_error(b.b, {"key 'k' array element type at offset 37", "unknown value type 77"});
    }
    {
        SCOPED_TRACE("array count too large");
        Bytes b;
        b.header(0, 1).str("k").u32(9).u32(4).u64(1ull << 40).zeros(16);
        expect_error(b.b, {"key 'k' array count at offset 41", "array count = 1099511627776 is too large"});
    }
    {
        SCOPED_TRACE("string element length past the end");
        Bytes b;
        b.header(0, 1).str("k").u32(9).u32(8).u64(2).str("ok").u64(99).raw("x", 1);
        expect_error(b.b, {"key 'k'[1] string length at offset", "string length 99 runs past the end"});
    }
    {
        SCOPED_TRACE("arrays nested too deep");
        Bytes b;
        b.header(0, 1).str("k").u32(9);
        for (int d = 0; d < 20; ++d) b.u32(9).u64(1);
        b.u32(4).u64(0);
        expect_error(b.b, {"key 'k'", "nested deeper than 8 levels"});
    }
    {
        SCOPED_TRACE("invalid bool");
        Bytes b;
        b.header(0, 1).str("k").u32(7).u8(2);
        expect_error(b.b, {"key 'k' value at offset 37", "invalid BOOL value 2"});
    }
    {
        SCOPED_TRACE("duplicate key");
        Bytes b;
        b.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
        expect_error(b.b, {"key 'k' name at offset 41", "duplicate key"});
    }
    {
        SCOPED_TRACE("empty key");
        Bytes b;
        b.header(0, 1).kv_u32("", 1);
        expect_error(b.b, {"key #0 name at offset 24", "empty key name"});
    }
    for (uint32_t a : {0u, 48u, 3u}) {
        SCOPED_TRACE(a);
        Bytes b;
        b.header(0, 1).kv_u32("general.alignment", a);
        expect_error(b.b, {"key 'general.alignment' value at offset", fmt::format("alignment {} is not a power of two", a)});
    }
    {
        SCOPED_TRACE("alignment of the wrong type");
        Bytes b;
        b.header(0, 1).kv_str("general.alignment", "32");
        expect_error(b.b, {"general.alignment must be UINT32, found STRING"});
    }
    {
        SCOPED_TRACE("unknown ggml type: exact message");
        Bytes b;
        b.header(1, 0);
        const size_t type_at = b.b.size() + 8 + q.size() + 4 + 2 * 8;
        b.tensor(q, {64, 2}, 99, 0).pad(32).zeros(512);
        EXPECT_EQ(error_of(b.b, "model.gguf"),
                  fmt::format("model.gguf: tensor '{}' type at offset {}: unknown ggml type 99", q, type_at));
    }
    {
        SCOPED_TRACE("n_dims 5");
        Bytes b;
        b.header(1, 0).tensor(q, {1, 1, 1, 1, 1}, 0, 0).pad(32).zeros(32);
        expect_error(b.b, {"tensor 'blk.0.attn_q.weight' n_dims at offset", "n_dims 5 is more than the maximum of 4"});
    }
    {
        SCOPED_TRACE("dims product overflow");
        Bytes b;
        b.header(1, 0).tensor(q, {1ull << 32, 1ull << 32}, 0, 0).pad(32).zeros(32);
        expect_error(b.b, {"tensor 'blk.0.attn_q.weight' dims at offset", "product of the dimensions overflows int64"});
    }
    {
        SCOPED_TRACE("dim beyond int64");
        Bytes b;
        b.header(1, 0).tensor(q, {1ull << 63}, 0, 0).pad(32).zeros(32);
        expect_error(b.b, {"does not fit in int64"});
    }
    {
        SCOPED_TRACE("dim 0");
        Bytes b;
        b.header(1, 0).tensor(q, {4, 0}, 0, 0).pad(32).zeros(32);
        expect_error(b.b, {"dimension 1 is 0"});
    }
    {
        SCOPED_TRACE("size in bytes overflows");
        Bytes b;
        b.header(1, 0).tensor(q, {1ull << 62}, 28, 0).pad(32).zeros(32);
        expect_error(b.b, {"size in bytes overflows"});
    }
    {
        SCOPED_TRACE("row not a multiple of the block");
        Bytes b;
        b.header(1, 0).tensor(q, {100, 2}, 12, 0).pad(32).zeros(512);
        expect_error(b.b, {"dims[0] = 100 is not a multiple of the Q4_K block size 256"});
    }
    {
        SCOPED_TRACE("misaligned offset");
        Bytes b;
        b.header(1, 0).tensor(q, {8}, 0, 4).pad(32).zeros(64);
        expect_error(b.b, {"tensor 'blk.0.attn_q.weight' offset at offset", "offset 4 is not a multiple of the alignment 32"});
    }
    {
        SCOPED_TRACE("misaligned for a custom alignment");
        Bytes b;
        b.header(1, 1).kv_u32("general.alignment", 64).tensor("w", {8}, 0, 32).pad(64).zeros(128);
        expect_error(b.b, {"offset 32 is not a multiple of the alignment 64"});
    }
    {
        SCOPED_TRACE("tensor offset out of range");
        Bytes b;
        b.header(1, 0).tensor(q, {8}, 0, 64).pad(32).zeros(64);
        expect_error(b.b, {"tensor 'blk.0.attn_q.weight' offset at offset", "out of range", "holds only 64 bytes"});
    }
    {
        SCOPED_TRACE("tensor offset near 2^64");
        Bytes b;
        b.header(1, 0).tensor(q, {8}, 0, ~0ull - 31).pad(32).zeros(64);
        expect_error(b.b, {"out of range"});
    }
    {
        SCOPED_TRACE("data section missing");
        Bytes b;
        b.header(1, 0).tensor("w", {8}, 0, 0);
        expect_error(b.b, {"data section at offset", "file truncated"});
    }
    {
        SCOPED_TRACE("duplicate tensor name");
        Bytes b;
        b.header(2, 0).tensor(q, {8}, 0, 0).tensor(q, {8}, 0, 32).pad(32).zeros(64);
        expect_error(b.b, {"tensor 'blk.0.attn_q.weight' name at offset", "duplicate tensor name"});
    }
    {
        SCOPED_TRACE("empty tensor name");
        Bytes b;
        b.header(1, 0).tensor("", {8}, 0, 0).pad(32).zeros(32);
        expect_error(b.b, {"tensor #0 name at offset 24", "empty tensor name"});
    }
    {
        SCOPED_TRACE("unprintable names are escaped");
        Bytes b;
        b.header(1, 0).tensor(std::string("a\x01'b", 4), {8}, 99, 0).pad(32).zeros(32);
        expect_error(b.b, {"tensor 'a\\x01\\'b' type at offset", "unknown ggml type 99"});
    }
}

}  // namespace
}  // namespace hearth::gguf
