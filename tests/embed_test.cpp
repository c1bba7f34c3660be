// Embeddings: the bert loader and encoder against a float64 numpy oracle (tests/oracle/bert_ref.py, run by
// Debian's /usr/bin/python3) on random-weight models written by synth with the real bert-bge WordPiece vocab;
// pooling, normalisation, batching and thread-count invariance; decoder embeddings (stories260K); bad files;
// and the `hearth embed` command.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "gguf/gguf.h"
#include "model/embed.h"
#include "model/encoder.h"
#include "model/forward.h"
#include "model/quantize.h"
#include "model/synth.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth {
namespace {

const std::string kBgeVocab = "tokenizers/llama.cpp-vocab/ggml-vocab-bert-bge.gguf";

using test::tmp_dir;  // synth models are cached in it

// A synth bert model with the bge vocab. Weights have stddev 1/sqrt(n_embd), so that attention and the FFN
// change the hidden states substantially (synth's default 0.02 leaves a near-identity network whose [CLS]
// vector hardly depends on the text, which would make the oracle comparison weak).
std::string bert_model(const std::string& shape, DType type, const std::string& pooling = "cls",
                       const std::string& quant = "") {
    const std::string path = tmp_dir() + "/" + shape + "-" + dtype_name(type) + "-" + pooling +
                             (quant.empty() ? "" : "-" + quant) + ".gguf";
    if (std::filesystem::exists(path)) return path;
    SynthOptions o;
    o.shape = synth_shape(shape);
    o.shape.pooling = synth_pooling(pooling);
    o.vocab_path = test::shared(kBgeVocab);
    o.type = type;
    o.seed = 11;
    o.stddev = 1.0f / std::sqrt(static_cast<float>(o.shape.n_embd));
    if (quant.empty()) {
        synth_model(o, path);
    } else {
        const std::string src = path + ".src.gguf";
        synth_model(o, src);
        quantize_model(src, path, quant, 2);
        std::filesystem::remove(src);
    }
    return path;
}
std::string bert_tiny(DType type = DType::F32, const std::string& pooling = "cls") {
    return bert_model("bert-tiny", type, pooling);
}

struct Loaded {
    std::unique_ptr<Model> model;
    std::unique_ptr<tok::Vocab> vocab;
};
Loaded load(const std::string& path) {
    Loaded l;
    l.model = Model::load(path);
    l.vocab = std::make_unique<tok::Vocab>(tok::Vocab::from_gguf(l.model->file));
    return l;
}

// Texts of different lengths, with accents, CJK, emoji, punctuation and a control-token text.
const std::vector<std::string> kTexts = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog, again and again, until the dog finally wakes up.",
    "héllo, wörld! Ça va? naïve café — 你好，世界 🙂",
    "a",
    "Embeddings map sentences to vectors; similar sentences [SEP] land close together in that space.",
    "1234 5678 $%& ()",
};

std::string join_seqs(const std::vector<std::vector<int32_t>>& seqs) {
    std::string s;
    for (size_t i = 0; i < seqs.size(); ++i) {
        if (i) s += ';';
        for (size_t j = 0; j < seqs[i].size(); ++j) s += (j ? "," : "") + std::to_string(seqs[i][j]);
    }
    return s;
}


// The oracle's embeddings: pooling "all" gives {"mean", "cls", "last"} -> vectors per sequence.
nlohmann::json oracle(const std::string& model, const std::vector<std::vector<int32_t>>& seqs,
                      const std::string& pooling, bool normalize = true) {
    const std::string cmd = "/usr/bin/python3 " + std::string(HEARTH_SOURCE_DIR) + "/tests/oracle/bert_ref.py '" +
                            model + "' --seqs '" + join_seqs(seqs) + "' --pooling " + pooling +
                            (normalize ? "" : " --no-normalize");
    const test::RunResult r = test::run_command(cmd);
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.err;
    return nlohmann::json::parse(r.out).at("embeddings");
}

double cosine(const float* a, const std::vector<double>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        ab += a[i] * b[i];
        aa += static_cast<double>(a[i]) * a[i];
        bb += b[i] * b[i];
    }
    return ab / std::sqrt(aa * bb);
}
double cosine(const float* a, const float* b, int64_t n) {
    return cosine(a, std::vector<double>(b, b + n));
}
double norm(const float* a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * a[i];
    return std::sqrt(s);
}

// hearth's pooled vectors against the oracle's for each pooling; returns the worst cosine. Also checks that
// the inputs' vectors differ from each other much more than from the oracle (the check is not vacuous).
double check_oracle(const std::string& path, const std::vector<std::string>& poolings, double min_cos,
                    double max_rel_err, const char* label) {
    Loaded l = load(path);
    EmbedParams ep;
    ep.n_threads = 2;
    std::vector<std::vector<int32_t>> seqs;
    {
        Embedder e(*l.model, *l.vocab, ep);
        for (const auto& t : kTexts) seqs.push_back(e.tokenize(t));
    }
    const nlohmann::json want = oracle(path, seqs, "all");
    double worst = 1;
    for (const std::string& pname : poolings) {
        ep.pooling = parse_pooling(pname);
        Embedder e(*l.model, *l.vocab, ep);
        const std::vector<float> got = e.embed_tokens(seqs);
        const int64_t E = e.dim();
        double worst_p = 1, max_cross = -1, max_rel = 0;
        for (size_t i = 0; i < seqs.size(); ++i) {
            const auto w = want.at(pname).at(i).get<std::vector<double>>();
            if (static_cast<int64_t>(w.size()) != E) {
                ADD_FAILURE() << "oracle vector of " << w.size() << " floats";
                return 0;
            }
            const double c = cosine(got.data() + i * E, w);
            EXPECT_GE(c, min_cos) << label << " " << pname << " input " << i << " '" << kTexts[i] << "'";
            // Cosine is 1 - (relative error)^2 / 2 near 1, so report the relative L2 error as well.
            double d2 = 0, w2 = 0;
            for (int64_t d = 0; d < E; ++d) {
                d2 += (got[i * E + d] - w[d]) * (got[i * E + d] - w[d]);
                w2 += w[d] * w[d];
            }
            max_rel = std::max(max_rel, std::sqrt(d2 / w2));
            EXPECT_LE(std::sqrt(d2 / w2), max_rel_err) << label << " " << pname << " input " << i;
            EXPECT_NEAR(norm(got.data() + i * E, E), 1.0, 1e-5);
            worst_p = std::min(worst_p, c);
            for (size_t j = 0; j < i; ++j)
                max_cross = std::max(max_cross, cosine(got.data() + i * E, got.data() + j * E, E));
        }
        EXPECT_LT(max_cross, 0.99) << "the inputs' vectors are nearly identical: the comparison says little";
        std::printf("  %s %s pooling, %zu inputs: worst cosine with the oracle 1 - %.1e, worst relative L2 error "
                    "%.1e (the two most similar inputs: cosine %.4f)\n",
                    label, pname.c_str(), seqs.size(), 1 - worst_p, max_rel, max_cross);
        worst = std::min(worst, worst_p);
    }
    return worst;
}

// ---- loader -----------------------------------------------------------------------------------------------

TEST(BertLoad, DecoderContextRefusesAnEncoder) {
    const Loaded l = load(bert_tiny());
    ContextParams cp;
    cp.n_ctx = 32;
    Context ctx(*l.model, cp);
    Batch b;
    b.add(101, 0, 0, true);
    EXPECT_THROW(ctx.decode(b), Error);
}

// Rewrites a bert-tiny file with edits to its metadata and tensors; returns the new path.
std::string edited(const std::string& name, const std::function<void(gguf::Writer&)>& edit,
                   const std::vector<std::string>& drop_tensors = {},
                   const std::map<std::string, DType>& retype = {}) {
    const gguf::File f = gguf::File::open(bert_tiny());
    gguf::Writer w;
    w.copy_metadata(f);
    std::vector<std::vector<uint8_t>> keep;  // converted tensor data, alive until write()
    for (const auto& t : f.tensors()) {
        if (std::find(drop_tensors.begin(), drop_tensors.end(), t.name) != drop_tensors.end()) continue;
        if (auto it = retype.find(t.name); it != retype.end()) {
            std::vector<float> x(static_cast<size_t>(t.n_elements));
            std::memcpy(x.data(), t.data, x.size() * sizeof(float));  // bert_tiny() is all F32
            keep.emplace_back(row_bytes(it->second, t.dims[0]) * static_cast<size_t>(t.rows()));
            for (int64_t r = 0; r < t.rows(); ++r)
                kernels::quantize_row(it->second, x.data() + r * t.dims[0],
                                      keep.back().data() + r * row_bytes(it->second, t.dims[0]), t.dims[0]);
            w.add_tensor(t.name, it->second, t.dims, keep.back().data(), keep.back().size());
        } else {
            w.add_tensor(t);
        }
    }
    edit(w);
    const std::string path = tmp_dir() + "/edited-" + name + ".gguf";
    w.write(path);
    return path;
}

void expect_load_error(const std::string& path, const std::string& needle) {
    try {
        Model::load(path);
        ADD_FAILURE() << "loaded " << path << " (expected an error mentioning '" << needle << "')";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
}

TEST(BertLoad, UnsupportedVariantsAreNamedErrors) {
    using gguf::Value;
    expect_load_error(edited("causal", [](gguf::Writer& w) { w.set("bert.attention.causal", Value::boolean(true)); }),
                      "causal");
    expect_load_error(edited("pool7", [](gguf::Writer& w) { w.set("bert.pooling_type", Value::u32(7)); }),
                      "pooling_type 7");
    expect_load_error(edited("rank", [](gguf::Writer& w) { w.set("bert.pooling_type", Value::u32(4)); }),
                      "rank");
    expect_load_error(edited("gqa", [](gguf::Writer& w) { w.set("bert.attention.head_count_kv", Value::u32(2)); }),
                      "head_count_kv");
    expect_load_error(edited("heads", [](gguf::Writer& w) { w.set("bert.attention.head_count", Value::u32(5)); }),
                      "not a multiple of head_count");
    expect_load_error(edited("noctx", [](gguf::Writer& w) { w.remove("bert.context_length"); }), "context_length");
    expect_load_error(edited("ctx", [](gguf::Writer& w) { w.set("bert.context_length", Value::u32(64)); }),
                      "position_embd.weight");
    expect_load_error(edited("missing", [](gguf::Writer&) {}, {"blk.1.layer_output_norm.bias"}),
                      "blk.1.layer_output_norm.bias");
    expect_load_error(edited("notypes", [](gguf::Writer&) {}, {"token_types.weight"}), "token_types.weight");
    expect_load_error(edited("f16norm", [](gguf::Writer&) {}, {}, {{"blk.0.attn_output_norm.weight", DType::F16}}),
                      "must be F32");
}

TEST(BertLoad, TruncatedAndCorruptFilesAreErrorsNotCrashes) {
    const std::string path = bert_tiny();
    std::string bytes = test::read_file(path);
    const gguf::File ok = gguf::File::open(path);
    const size_t data_off = ok.data_offset();
    // Truncations: inside the header, the metadata, the tensor table and the data.
    for (size_t cut : {size_t{3}, size_t{20}, size_t{1000}, data_off / 2, data_off - 1, data_off + 7, bytes.size() / 2,
                       bytes.size() - 1}) {
        const std::string p = tmp_dir() + "/truncated.gguf";
        std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
        EXPECT_THROW(Model::load(p), Error) << "cut at " << cut;
    }
    // Byte corruptions of the metadata and the tensor table (the part a loader interprets): each either loads
    // or throws hearth::Error; what loads must embed without crashing (ASan/UBSan check the memory).
    auto* buf = reinterpret_cast<uint8_t*>(bytes.data());
    uint64_t rng = 12345;
    int loaded = 0, rejected = 0;
    // The header and first keys, then the bert.* keys and the tensor infos, which sit just before the data.
    const size_t table_start = data_off > 8192 ? data_off - 8192 : 0;
    for (int i = 0; i < 160; ++i) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        const size_t off = i < 60 ? (rng >> 33) % 256 : table_start + (rng >> 33) % (data_off - table_start);
        const uint8_t old = buf[off];
        buf[off] = static_cast<uint8_t>(old ^ (1u << ((rng >> 40) % 8)));
        try {
            Model m{gguf::File::from_memory(buf, bytes.size(), "corrupt.gguf")};
            m.hp.arch = m.file.get_str_or("general.architecture", "");
            if (m.hp.arch != "bert") throw Error("not bert");
            arch::load_bert(m);
            const tok::Vocab v = tok::Vocab::from_gguf(m.file);
            EmbedParams ep;
            ep.n_threads = 2;
            ep.pooling = Pooling::Mean;
            Embedder e(m, v, ep);
            const std::vector<float> x = e.embed({"corrupt"});
            EXPECT_EQ(static_cast<int64_t>(x.size()), m.hp.n_embd);
            ++loaded;
        } catch (const Error&) {
            ++rejected;
        }
        buf[off] = old;
    }
    std::printf("  corrupt files: %d rejected with an error, %d still loaded and embedded\n", rejected, loaded);
    EXPECT_GT(rejected, 0);
}

// ---- tokens -------------------------------------------------------------------------------------------------

TEST(Embed, WordPieceInputsGetClsAndSep) {
    const Loaded l = load(bert_tiny());
    Embedder e(*l.model, *l.vocab, {});
    const std::vector<int32_t> ids = e.tokenize("Hello world");
    ASSERT_EQ(ids.size(), 4u);
    EXPECT_EQ(ids.front(), 101);  // [CLS]
    EXPECT_EQ(ids.back(), 102);   // [SEP]
    EXPECT_EQ(ids[1], 7592);      // hello
    EXPECT_EQ(ids[2], 2088);      // world
    EXPECT_THROW(e.tokenize(""), Error);
}

TEST(Embed, LongInputsFailOrTruncateKeepingSep) {
    const Loaded l = load(bert_tiny());  // context 128
    std::string text;
    for (int i = 0; i < 200; ++i) text += "word ";
    {
        Embedder e(*l.model, *l.vocab, {});
        try {
            e.tokenize(text);
            ADD_FAILURE() << "no error";
        } catch (const Error& err) {
            EXPECT_NE(std::string(err.what()).find("202 tokens, more than the model's context of 128"),
                      std::string::npos)
                << err.what();
        }
    }
    EmbedParams ep;
    ep.truncate = true;
    Embedder e(*l.model, *l.vocab, ep);
    const std::vector<int32_t> ids = e.tokenize(text);
    ASSERT_EQ(ids.size(), 128u);
    EXPECT_EQ(ids.front(), 101);
    EXPECT_EQ(ids.back(), 102);
    EXPECT_EQ(e.embed_tokens({ids}).size(), 64u);
    Encoder enc(*l.model, {});
    EXPECT_THROW(enc.encode({std::vector<int32_t>(129, 1000)}, Pooling::Cls), Error);
    EXPECT_THROW(enc.encode({{101, 30522}}, Pooling::Cls), Error);
    EXPECT_THROW(enc.encode({{}}, Pooling::Cls), Error);
    EXPECT_THROW(enc.encode({{101, 102}}, Pooling::Cls, {{0, 2}}), Error);  // token type out of range
}

// ---- numerics ------------------------------------------------------------------------------------------------

// The one bge-small test (synthesizing it takes seconds): hyper-parameters as the loader reads them, then the
// oracle.
TEST(EmbedOracle, BgeSmallF16MatchesNumpy) {
    const std::string path = bert_model("bge-small", DType::F16);
    {
        const Loaded l = load(path);
        const HParams& hp = l.model->hp;
        EXPECT_EQ(hp.arch, "bert");
        EXPECT_EQ(hp.n_embd, 384);
        EXPECT_EQ(hp.n_layer, 12);
        EXPECT_EQ(hp.n_head, 12);
        EXPECT_EQ(hp.head_dim, 32);
        EXPECT_EQ(hp.n_ff, 1536);
        EXPECT_EQ(hp.n_ctx_train, 512);
        EXPECT_EQ(hp.n_vocab, 30522);
        EXPECT_EQ(hp.n_token_types, 2);
        EXPECT_FALSE(hp.causal);
        EXPECT_EQ(hp.norm_type, NormType::Layer);
        EXPECT_EQ(hp.ffn_act, FfnAct::Gelu);
        EXPECT_EQ(hp.pooling, Pooling::Cls);
        EXPECT_FLOAT_EQ(hp.rms_eps, 1e-12f);
        EXPECT_TRUE(l.model->layers[11].layer_out_norm_b);
        EXPECT_EQ(l.vocab->model(), tok::TokenizerModel::Wpm);
    }
    check_oracle(path, {"cls", "mean"}, 0.9999, 1e-4, "bge-small F16");
}

TEST(EmbedOracle, BertTinyF32AllPoolingsMatchNumpy) {
    check_oracle(bert_tiny(DType::F32), {"cls", "mean", "last"}, 0.9999, 1e-4, "bert-tiny F32");
}

TEST(EmbedOracle, BertTinyQ8_0MatchesNumpyOnTheSameWeights) {
    // The oracle dequantizes the same Q8_0 weights; hearth also quantizes the activations to 8 bits.
    check_oracle(bert_model("bert-tiny", DType::F32, "cls", "Q8_0"), {"cls", "mean"}, 0.999, 3e-2, "bert-tiny Q8_0");
}

TEST(EmbedOracle, TokenTypesAndUnpooledStatesMatchNumpy) {
    const std::string path = bert_tiny();
    const Loaded l = load(path);
    const std::vector<std::vector<int32_t>> seqs = {{101, 7592, 102, 2088, 999, 102}, {101, 2023, 102}};
    const std::vector<std::vector<int32_t>> types = {{0, 0, 0, 1, 1, 1}, {0, 0, 0}};
    Encoder enc(*l.model, {});
    const std::vector<float> got = enc.encode(seqs, Pooling::None, types);
    const std::string cmd = "/usr/bin/python3 " + std::string(HEARTH_SOURCE_DIR) + "/tests/oracle/bert_ref.py '" +
                            path + "' --seqs '" + join_seqs(seqs) + "' --types '" + join_seqs(types) +
                            "' --pooling none";
    const test::RunResult r = test::run_command(cmd);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto want = nlohmann::json::parse(r.out).at("embeddings");
    const int64_t E = l.model->hp.n_embd;
    size_t row = 0;
    double max_abs = 0;
    for (size_t s = 0; s < seqs.size(); ++s)
        for (size_t t = 0; t < seqs[s].size(); ++t, ++row) {
            const auto w = want.at(s).at(t).get<std::vector<double>>();
            for (int64_t d = 0; d < E; ++d) max_abs = std::max(max_abs, std::abs(got[row * E + d] - w[d]));
        }
    std::printf("  bert-tiny per-token states with token types: max |delta| %.2e (states have unit scale)\n", max_abs);
    EXPECT_LT(max_abs, 1e-3);
    // Token types matter: the same tokens with all-zero types give other states.
    const std::vector<float> zero = enc.encode(seqs, Pooling::None);
    EXPECT_NE(std::vector<float>(zero.begin() + 3 * E, zero.begin() + 4 * E),
              std::vector<float>(got.begin() + 3 * E, got.begin() + 4 * E));
}

TEST(Encoder, PoolingOfTheTokenStates) {
    const Loaded l = load(bert_tiny());
    const std::vector<std::vector<int32_t>> seqs = {
        {101, 7592, 2088, 102}, {101, 102}, {101, 1037, 2204, 2154, 999, 102}};
    Encoder enc(*l.model, {});
    const int64_t E = l.model->hp.n_embd;
    const std::vector<float> all = enc.encode(seqs, Pooling::None);
    const std::vector<float> cls = enc.encode(seqs, Pooling::Cls);
    const std::vector<float> last = enc.encode(seqs, Pooling::Last);
    const std::vector<float> mean = enc.encode(seqs, Pooling::Mean);
    size_t row = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
        const size_t n = seqs[s].size();
        for (int64_t d = 0; d < E; ++d) {
            EXPECT_EQ(cls[s * E + d], all[row * E + d]);
            EXPECT_EQ(last[s * E + d], all[(row + n - 1) * E + d]);
            double sum = 0;
            for (size_t t = 0; t < n; ++t) sum += all[(row + t) * E + d];
            EXPECT_NEAR(mean[s * E + d], sum / static_cast<double>(n), 1e-6);
        }
        row += n;
    }
}

TEST(Encoder, BatchEqualsOneAtATimeAndThreadCountsAgree) {
    const Loaded l = load(bert_tiny(DType::F16));
    std::vector<std::vector<int32_t>> seqs;
    {
        Embedder e(*l.model, *l.vocab, {});
        for (const auto& t : kTexts) seqs.push_back(e.tokenize(t));
    }
    const int64_t E = l.model->hp.n_embd;
    EncoderParams one;
    one.n_threads = 1;
    Encoder single(*l.model, one);
    std::vector<float> ref;
    for (const auto& s : seqs) {
        const std::vector<float> v = single.encode({s}, Pooling::Mean);
        ref.insert(ref.end(), v.begin(), v.end());
    }
    for (int threads : {1, 2, 3}) {
        for (int ubatch : {2048, 40, 1}) {  // all in one micro-batch, a few, one sequence each
            EncoderParams p;
            p.n_threads = threads;
            p.n_ubatch = ubatch;
            Encoder enc(*l.model, p);
            const std::vector<float> got = enc.encode(seqs, Pooling::Mean);
            ASSERT_EQ(got.size(), ref.size());
            double max_abs = 0;
            for (size_t i = 0; i < got.size(); ++i)
                max_abs = std::max(max_abs, static_cast<double>(std::abs(got[i] - ref[i])));
            EXPECT_LE(max_abs, 1e-6) << threads << " threads, micro-batch " << ubatch;
            if (threads == 3)
                std::printf("  micro-batch %d: max |delta| %.1e from one sequence at a time\n", ubatch, max_abs);
            if (ubatch == 1) {
                EXPECT_EQ(got, ref) << threads << " threads: the same micro-batches must give the same bits";
            }
        }
    }
    (void)E;
}

TEST(Embed, NormalisationAndTheNoNormalizeOption) {
    const Loaded l = load(bert_tiny());
    EmbedParams ep;
    ep.normalize = false;
    Embedder raw(*l.model, *l.vocab, ep);
    Embedder unit(*l.model, *l.vocab, {});
    const std::vector<float> a = raw.embed(kTexts), b = unit.embed(kTexts);
    const int64_t E = unit.dim();
    for (size_t i = 0; i < kTexts.size(); ++i) {
        const double n = norm(a.data() + i * E, E);
        EXPECT_GT(std::abs(n - 1.0), 1e-3);  // LayerNorm output: norm about sqrt(E), not 1
        EXPECT_NEAR(norm(b.data() + i * E, E), 1.0, 1e-6);
        for (int64_t d = 0; d < E; ++d) EXPECT_NEAR(b[i * E + d], a[i * E + d] / n, 1e-6);
    }
}

TEST(Embed, ModelPoolingAndNoPoolingError) {
    {
        const Loaded l = load(bert_tiny(DType::F32, "mean"));
        EXPECT_EQ(model_pooling(*l.model), Pooling::Mean);
        EXPECT_EQ(Embedder(*l.model, *l.vocab, {}).pooling(), Pooling::Mean);
    }
    const Loaded l = load(bert_tiny(DType::F32, "none"));
    EXPECT_EQ(model_pooling(*l.model), Pooling::None);
    try {
        Embedder e(*l.model, *l.vocab, {});
        ADD_FAILURE() << "no error";
    } catch (const Error& err) {
        EXPECT_NE(std::string(err.what()).find("--pooling"), std::string::npos) << err.what();
    }
    EmbedParams ep;
    ep.pooling = Pooling::Cls;
    EXPECT_EQ(Embedder(*l.model, *l.vocab, ep).embed({"x"}).size(), 64u);
    EXPECT_THROW(parse_pooling("max"), Error);
}

// ---- decoders ----------------------------------------------------------------------------------------------

TEST(EmbedDecoder, Stories260KLastTokenIsTheNormedHiddenState) {
    const std::string path = test::shared("models/stories260K.gguf");
    const Loaded l = load(path);
    EXPECT_EQ(model_pooling(*l.model), Pooling::Last);
    EmbedParams ep;
    ep.normalize = false;
    ep.n_threads = 2;
    Embedder e(*l.model, *l.vocab, ep);
    const std::vector<std::string> texts = {"Once upon a time", "The cat sat on the mat and looked at the sun.", "Hi"};
    std::vector<std::vector<int32_t>> seqs;
    for (const auto& t : texts) seqs.push_back(e.tokenize(t));
    EXPECT_EQ(seqs[0].front(), l.vocab->bos());
    const std::vector<float> got = e.embed_tokens(seqs);
    const int64_t E = e.dim();
    // The same hidden state straight from the decoder in embedding mode, one sequence at a time.
    for (size_t i = 0; i < seqs.size(); ++i) {
        ContextParams cp;
        cp.n_ctx = 64;
        cp.n_threads = 1;
        cp.embeddings = true;
        Context ctx(*l.model, cp);
        Batch b;
        for (size_t j = 0; j < seqs[i].size(); ++j)
            b.add(seqs[i][j], static_cast<int32_t>(j), 0, j + 1 == seqs[i].size());
        const std::vector<float>& h = ctx.decode(b);
        ASSERT_EQ(static_cast<int64_t>(h.size()), E);
        for (int64_t d = 0; d < E; ++d) EXPECT_NEAR(got[i * E + d], h[d], 1e-5) << i << " " << d;
    }
    // And against the float64 oracle (llama_ref.py's forward pass with an identity output projection).
    const nlohmann::json want = oracle(path, seqs, "all");
    ep.normalize = true;
    for (const char* pname : {"last", "mean"}) {
        ep.pooling = parse_pooling(pname);
        Embedder pe(*l.model, *l.vocab, ep);
        const std::vector<float> v = pe.embed_tokens(seqs);
        double worst = 1;
        for (size_t i = 0; i < seqs.size(); ++i) {
            const double c = cosine(v.data() + i * E, want.at(pname).at(i).get<std::vector<double>>());
            EXPECT_GE(c, 0.9999) << pname << " " << i;
            worst = std::min(worst, c);
        }
        std::printf("  stories260K %s pooling: worst cosine with the oracle 1 - %.2e\n", pname, 1 - worst);
    }
}

TEST(EmbedDecoder, BatchOfSequencesEqualsOneAtATime) {
    const Loaded l = load(test::shared("models/stories260K.gguf"));
    EmbedParams ep;
    ep.pooling = Pooling::Mean;
    ep.n_threads = 2;
    Embedder e(*l.model, *l.vocab, ep);
    const std::vector<std::string> texts = {"Lily went to the park.", "Tom", "A big red ball rolled down the hill.",
                                            "She was happy."};
    const std::vector<float> all = e.embed(texts);
    const int64_t E = e.dim();
    for (size_t i = 0; i < texts.size(); ++i) {
        const std::vector<float> one = e.embed({texts[i]});
        for (int64_t d = 0; d < E; ++d) EXPECT_NEAR(all[i * E + d], one[d], 1e-5);
    }
}

// ---- hearth embed ----------------------------------------------------------------------------------------------

using Cli = test::RunResult;
using test::q;

// hearth embed fails with one line on stderr and nothing on stdout.
void expect_embed_error(const Cli& r, const std::string& needle) {
    test::expect_one_line_error(r, needle);
    EXPECT_TRUE(r.out.empty()) << r.out.substr(0, 200);
}

std::vector<std::vector<double>> parse_lines(const std::string& out) {
    std::vector<std::vector<double>> v;
    std::istringstream ls(out);
    std::string line;
    while (std::getline(ls, line)) {
        std::istringstream ss(line);
        v.emplace_back();
        double x;
        while (ss >> x) v.back().push_back(x);
    }
    return v;
}

TEST(EmbedCli, PlainOutputIsOneVectorPerInput) {
    const std::string m = bert_tiny();
    const Cli r = test::run_hearth("embed -m " + q(m) + " -p 'Hello world' -p 'héllo, wörld! 你好' -t 2");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto v = parse_lines(r.out);
    ASSERT_EQ(v.size(), 2u);
    // The same vectors as the library's, to float precision (the CLI prints the shortest round trip).
    const Loaded l = load(m);
    Embedder e(*l.model, *l.vocab, {});
    const std::vector<float> want = e.embed({"Hello world", "héllo, wörld! 你好"});
    for (size_t i = 0; i < 2; ++i) {
        ASSERT_EQ(v[i].size(), 64u);
        for (size_t d = 0; d < 64; ++d) EXPECT_EQ(static_cast<float>(v[i][d]), want[i * 64 + d]);
    }
}

TEST(EmbedCli, JsonlFileAndJsonOutput) {
    const std::string m = bert_tiny();
    const std::string f = tmp_dir() + "/in.jsonl";
    std::ofstream(f) << "\"Hello world\"\n\n{\"text\": \"a second one\", \"id\": 7}\r\n\"ünïcode ☃\"\n";
    const Cli r = test::run_hearth("embed -m " + q(m) + " -f " + q(f) + " --json --pooling mean --no-normalize");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("model"), m);
    EXPECT_EQ(j.at("dim"), 64);
    EXPECT_EQ(j.at("pooling"), "mean");
    EXPECT_EQ(j.at("normalized"), false);
    EXPECT_EQ(j.at("n_inputs"), 3);
    ASSERT_EQ(j.at("data").size(), 3u);
    EXPECT_EQ(j["data"][0].at("index"), 0);
    EXPECT_EQ(j["data"][0].at("n_tokens"), 4);  // [CLS] hello world [SEP]
    EXPECT_EQ(j["data"][1].at("n_tokens"), 5);
    for (const auto& d : j["data"]) EXPECT_EQ(d.at("embedding").size(), 64u);
    // The plain output of the same run holds the same numbers.
    const Cli plain = test::run_hearth("embed -m " + q(m) + " -f " + q(f) + " --pooling mean --no-normalize");
    const auto v = parse_lines(plain.out);
    ASSERT_EQ(v.size(), 3u);
    for (size_t i = 0; i < 3; ++i)
        for (size_t d = 0; d < 64; ++d)
            EXPECT_EQ(static_cast<float>(v[i][d]), j["data"][i]["embedding"][d].get<float>());
}

TEST(EmbedCli, DecoderModel) {
    const Cli r = test::run_hearth("embed -m " + q(test::shared("models/stories260K.gguf")) + " -p 'Once upon a time' --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("pooling"), "last");
    EXPECT_EQ(j.at("dim"), 64);
    std::vector<float> v = j["data"][0]["embedding"].get<std::vector<float>>();
    EXPECT_NEAR(norm(v.data(), static_cast<int64_t>(v.size())), 1.0, 1e-5);
}

TEST(EmbedCli, ErrorsAreOneLine) {
    const std::string m = q(bert_tiny());
    const std::string f = tmp_dir() + "/bad.jsonl";
    std::ofstream(f) << "\"fine\"\n{\"text\": 3}\n";
    expect_embed_error(test::run_hearth("embed -m " + m + " -f " + q(f)), "bad.jsonl:2: expected a JSON string or an object");
    std::ofstream(f) << "\"fine\"\n\"also fine\"\n{oops\n";
    expect_embed_error(test::run_hearth("embed -m " + m + " -f " + q(f)), "bad.jsonl:3: not valid JSON");
    std::ofstream(f) << "\n  \n";
    expect_embed_error(test::run_hearth("embed -m " + m + " -f " + q(f)), "no inputs");
    std::ofstream(f) << "\"x\"\n\"\"\n";
    expect_embed_error(test::run_hearth("embed -m " + m + " -f " + q(f)), "bad.jsonl:2: the text is empty");
    expect_embed_error(test::run_hearth("embed -m " + m + " -f " + q(tmp_dir() + "/nope.jsonl")), "cannot open");
    expect_embed_error(test::run_hearth("embed -m " + m), "-p TEXT or -f FILE.jsonl");
    expect_embed_error(test::run_hearth("embed -m " + m + " -p hi -p ''"), "input 2: the text is empty");
    std::string long_text;
    for (int i = 0; i < 150; ++i) long_text += "word ";
    expect_embed_error(test::run_hearth("embed -m " + m + " -p '" + long_text + "'"), "more than the model's context of 128");
    const Cli t = test::run_hearth("embed -m " + m + " -p '" + long_text + "' --truncate");
    EXPECT_EQ(t.code, 0) << t.err;
    expect_embed_error(test::run_hearth("embed -m " + q(bert_tiny(DType::F32, "none")) + " -p hi"), "--pooling");
    expect_embed_error(test::run_hearth("embed -m " + m + " -p hi -t 0"), "threads");
    expect_embed_error(test::run_hearth("embed -m " + q(tmp_dir() + "/missing.gguf") + " -p hi"), "missing.gguf");
    const Cli p = test::run_hearth("embed -m " + m + " -p hi --pooling max");
    EXPECT_NE(p.code, 0);
    EXPECT_NE(p.err.find("max"), std::string::npos) << p.err;
    const Cli both = test::run_hearth("embed -m " + m + " -p hi -f " + q(f));
    EXPECT_NE(both.code, 0);
    EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace hearth
