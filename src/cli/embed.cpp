// hearth embed: one embedding vector per input text (-p, repeatable, or a JSONL file), from an encoder (bert)
// or a decoder model.
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/embed.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

namespace {

// JSON whose numbers are floats, so that vectors print with float precision (shortest round trip).
using FloatJson =
    nlohmann::basic_json<nlohmann::ordered_map, std::vector, std::string, bool, std::int64_t, std::uint64_t, float>;

constexpr size_t kChunk = 256;  // inputs embedded (and printed) at a time

struct Input {
    std::string text;
    std::string where;  // "input 2" or "FILE:7", for error messages
};

// A JSONL file: each non-blank line a JSON string or an object with a string "text".
std::vector<Input> read_jsonl(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open the input file", path);
    std::vector<Input> out;
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        const std::string where = fmt::format("{}:{}", path, n);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
            fail("{}: not valid JSON ({})", where, e.what());
        }
        if (j.is_string()) {
            out.push_back({j.get<std::string>(), where});
        } else if (j.is_object() && j.contains("text") && j["text"].is_string()) {
            out.push_back({j["text"].get<std::string>(), where});
        } else {
            fail("{}: expected a JSON string or an object with a string \"text\" field", where);
        }
    }
    if (out.empty()) fail("{}: no inputs (the file has no non-blank lines)", path);
    return out;
}

}  // namespace

void add_embed(CLI::App& app) {
    auto* cmd = app.add_subcommand("embed", "Embedding vectors of texts (encoders such as BERT/BGE, or decoders)");
    struct Opts {
        std::string model, file, pooling;
        std::vector<std::string> prompts;
        int threads = 0;
        bool json = false, no_normalize = false, truncate = false, mmap = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    auto* p = cmd->add_option("-p,--prompt", o->prompts, "Text to embed (repeatable: one vector each)");
    auto* f = cmd->add_option("-f,--file", o->file,
                              "JSONL file: one input per line, a JSON string or an object with a \"text\" field");
    // One text per -p (a vector option would otherwise swallow the words that follow).
    p->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    p->excludes(f);
    cmd->add_option("--pooling", o->pooling, "mean, cls or last (default: the model's own)")
        ->check(CLI::IsMember({"mean", "cls", "last"}));
    cmd->add_flag("--no-normalize", o->no_normalize, "Do not L2-normalise the vectors");
    cmd->add_flag("--truncate", o->truncate, "Cut inputs longer than the model's context instead of failing");
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_flag("--mmap", o->mmap, "Map the model file instead of reading it into memory");
    cmd->add_flag("--json", o->json, "Print JSON: model, dim, pooling, normalized, and per input n_tokens and "
                                     "the embedding");
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        if (o->prompts.empty() && o->file.empty()) fail("give the texts to embed with -p TEXT or -f FILE.jsonl");
        std::vector<Input> inputs;
        if (!o->file.empty()) {
            inputs = read_jsonl(o->file);
        } else {
            for (size_t i = 0; i < o->prompts.size(); ++i)
                inputs.push_back({o->prompts[i], fmt::format("input {}", i + 1)});
        }

        auto model = Model::load(store::resolve_model(o->model), o->mmap);
        const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
        EmbedParams ep;
        if (!o->pooling.empty()) ep.pooling = parse_pooling(o->pooling);
        ep.normalize = !o->no_normalize;
        ep.truncate = o->truncate;
        ep.n_threads = o->threads;
        Embedder emb(*model, vocab, ep);

        // Tokenize everything first, so that a bad input fails before any output.
        std::vector<std::vector<int32_t>> seqs;
        seqs.reserve(inputs.size());
        for (const Input& in : inputs) {
            try {
                seqs.push_back(emb.tokenize(in.text));
            } catch (const Error& e) {
                fail("{}: {}", in.where, e.what());
            }
        }

        const int64_t dim = emb.dim();
        if (o->json) {
            FloatJson head;
            head["model"] = o->model;
            head["dim"] = dim;
            head["pooling"] = pooling_name(emb.pooling());
            head["normalized"] = emb.normalize();
            head["n_inputs"] = inputs.size();
            std::string h = head.dump();
            h.pop_back();  // the closing brace: the data array follows
            fmt::print("{},\"data\":[\n", h);
        }
        for (size_t c0 = 0; c0 < seqs.size(); c0 += kChunk) {
            const size_t c1 = std::min(seqs.size(), c0 + kChunk);
            const std::vector<std::vector<int32_t>> chunk(seqs.begin() + static_cast<int64_t>(c0),
                                                          seqs.begin() + static_cast<int64_t>(c1));
            const std::vector<float> vecs = emb.embed_tokens(chunk);
            std::string text;
            for (size_t i = c0; i < c1; ++i) {
                const float* v = vecs.data() + (i - c0) * static_cast<size_t>(dim);
                if (o->json) {
                    FloatJson item;
                    item["index"] = i;
                    item["n_tokens"] = seqs[i].size();
                    item["embedding"] = std::vector<float>(v, v + dim);
                    text += item.dump();
                    text += i + 1 < seqs.size() ? ",\n" : "\n";
                } else {
                    for (int64_t d = 0; d < dim; ++d) {
                        if (d) text += ' ';
                        fmt::format_to(std::back_inserter(text), "{}", v[d]);
                    }
                    text += '\n';
                }
            }
            fmt::print("{}", text);
            std::fflush(stdout);
        }
        if (o->json) fmt::print("]}}\n");
    });
}

}  // namespace hearth::cli
