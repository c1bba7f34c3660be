// End-to-end tests of the `hearth` binary: real models from ../shared, every subcommand, and bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <tuple>

#include "chat/chat_template.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"
#include "jsonschema_oracle.h"
#include "test_util.h"

namespace hearth {
namespace {


using Result = test::RunResult;
using test::tmp_dir;
Result hearth(const std::string& args) { return test::run_hearth(args); }

using test::q;
std::string stories_arg() { return q(test::shared("models/stories260K.gguf")); }

// The three blocks of the llama2.c reference file, keyed by their command line.
std::vector<std::pair<std::string, std::string>> reference_blocks() {
    std::ifstream in(test::shared("models/stories260K.greedy-reference.txt"));
    std::vector<std::pair<std::string, std::string>> blocks;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("### ", 0) == 0) {
            blocks.push_back({line, ""});
        } else if (!blocks.empty()) {
            blocks.back().second += line + "\n";
        }
    }
    for (auto& [cmd, text] : blocks)  // run.c ends its output with one newline; the file adds a blank line
        while (!text.empty() && text.back() == '\n') text.pop_back();
    return blocks;
}

using test::expect_one_line_error;

TEST(Cli, Stories260KGreedyMatchesLlama2cByteForByte) {
    const auto blocks = reference_blocks();
    ASSERT_EQ(blocks.size(), 3u);
    // Block 1: no prompt, 256 steps (run.c's -n counts positions: BOS + 255... each step emits one token).
    {
        const std::string want = blocks[0].second;
        const Result r = hearth("run -m " + stories_arg() + " -p '' -n 256 --temp 0");
        ASSERT_EQ(r.code, 0) << r.err;
        std::string got = r.out;
        ASSERT_FALSE(got.empty());
        got.pop_back();  // our trailing newline
        EXPECT_EQ(got.substr(0, want.size()), want);
        EXPECT_EQ(got, want);
    }
    // Block 3: prompt "Lily and Tom went to", 64 positions in all.
    {
        const std::string want = blocks[2].second;
        const Result js = hearth("run -m " + stories_arg() + " -p 'Lily and Tom went to' -n 0 --json");
        ASSERT_EQ(js.code, 0) << js.err;
        const auto j = nlohmann::json::parse(js.out);
        const int n_prompt = static_cast<int>(j["prompt_tokens"].size());  // BOS included
        const Result r = hearth("run -m " + stories_arg() + " -p 'Lily and Tom went to' -n " +
                                std::to_string(64 - (n_prompt - 1)) + " --temp 0");
        ASSERT_EQ(r.code, 0) << r.err;
        std::string got = r.out;
        got.pop_back();
        EXPECT_EQ(got, want);
    }
}

TEST(Cli, RunJsonAndSeededSamplingIsReproducible) {
    const std::string args = "run -m " + stories_arg() + " -p 'Once upon a time' -n 24 --temp 0.9 --top-p 0.9 --json";
    const Result a = hearth(args + " --seed 7"), b = hearth(args + " --seed 7"), c = hearth(args + " --seed 8");
    ASSERT_EQ(a.code, 0) << a.err;
    const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out), jc = nlohmann::json::parse(c.out);
    EXPECT_EQ(ja["tokens"], jb["tokens"]);
    EXPECT_EQ(ja["text"], jb["text"]);
    EXPECT_NE(ja["tokens"], jc["tokens"]);
    EXPECT_EQ(ja["tokens"].size(), 24u);
    EXPECT_EQ(ja["prompt_tokens"][0], 1);  // BOS
}

// `run --regex / --json-schema / --grammar` at temperature 1 (the tiny model's random choices explore the
// language): every output that finishes is in the language, checked by an independent oracle (std::regex,
// python3-jsonschema, a set of strings); a bad constraint is a one-line error before any generation.
TEST(Cli, RunConstrainedOutputIsInTheLanguage) {
    const std::string base = "run -m " + stories_arg() + " -p 'Once upon a time' --temp 1 --json";
    auto run_json = [&](const std::string& args) {
        const Result r = hearth(base + " " + args);
        EXPECT_EQ(r.code, 0) << r.err;
        return r.code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
    };
    // Regex: a product code.
    const std::regex code("[A-Z]{2}-[0-9]{3}(-[a-z]+)?");
    int regex_complete = 0;
    for (int seed = 1; seed <= 4; ++seed) {
        const auto j = run_json("-n 40 --seed " + std::to_string(seed) + " --regex '[A-Z]{2}-[0-9]{3}(-[a-z]+)?'");
        if (!j.value("grammar_complete", false)) continue;
        ++regex_complete;
        EXPECT_TRUE(std::regex_match(j["text"].get<std::string>(), code)) << j["text"];
    }
    EXPECT_GE(regex_complete, 1);

    // JSON Schema: every finished output validates under python3-jsonschema.
    const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(R"({"type":"object",
        "properties":{"name":{"type":"string","minLength":1,"maxLength":12},
                      "age":{"type":"integer","minimum":0,"maximum":120},
                      "tags":{"type":"array","items":{"enum":["red","green","blue"]},"maxItems":3}},
        "required":["name","age"],"additionalProperties":false})");
    const std::string schema_file = tmp_dir() + "/person.schema.json";
    std::ofstream(schema_file) << schema.dump();
    std::vector<std::string> texts;
    for (int seed = 1; seed <= 6; ++seed) {
        const auto j = run_json("-n 96 --seed " + std::to_string(seed) + " --json-schema " + q(schema_file));
        if (j.value("grammar_complete", false)) texts.push_back(j["text"].get<std::string>());
    }
    ASSERT_GE(texts.size(), 1u) << "no constrained run finished within 96 tokens";
    const auto verdicts = test::jsonschema_oracle({{schema, texts}});
    ASSERT_EQ(verdicts.results.size(), 1u);
    for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(verdicts.results[0][i], true) << texts[i];

    // GBNF: the output is one of the grammar's three sentences.
    const std::string gbnf_file = tmp_dir() + "/answer.gbnf";
    std::ofstream(gbnf_file) << "root ::= (\"yes\" | \"no\" | \"maybe\") \".\"\n";
    for (int seed = 1; seed <= 3; ++seed) {
        const auto j = run_json("-n 8 --seed " + std::to_string(seed) + " --grammar " + q(gbnf_file));
        EXPECT_TRUE(j.value("grammar_complete", false));
        const std::string t = j.value("text", "");
        EXPECT_TRUE(t == "yes." || t == "no." || t == "maybe.") << t;
    }

    // Bad constraints.
    const std::string not_schema = tmp_dir() + "/not.schema.json";
    std::ofstream(not_schema) << R"({"type":"object","properties":{"a":{"not":{"minLength":2}}}})";
    expect_one_line_error(hearth(base + " --json-schema " + q(not_schema)), "not");
    // Keywords JSON Schema leaves to annotation are ignored (the schema's own keywords still hold), and refused
    // with --strict-schema.
    const std::string annotated = tmp_dir() + "/annotated.schema.json";
    std::ofstream(annotated) << R"({"type":"string","enum":["yes","no"],"x-display":"radio","format":"x-answer"})";
    for (int seed = 1; seed <= 3; ++seed) {
        const auto j = run_json("-n 8 --seed " + std::to_string(seed) + " --json-schema " + q(annotated));
        EXPECT_TRUE(j.value("grammar_complete", false));
        const std::string t = j.value("text", "");  // whitespace around the value is JSON's
        const size_t b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
        const std::string v = b == std::string::npos ? "" : t.substr(b, e - b + 1);
        EXPECT_TRUE(v == "\"yes\"" || v == "\"no\"") << t;
    }
    expect_one_line_error(hearth(base + " --strict-schema --json-schema " + q(annotated)), "'x-display' at #/x-display");
    const std::string broken = tmp_dir() + "/broken.schema.json";
    std::ofstream(broken) << R"({"type": "object", )";
    expect_one_line_error(hearth(base + " --json-schema " + q(broken)), "broken.schema.json");
    expect_one_line_error(hearth(base + " --json-schema /nonexistent/s.json"), "/nonexistent/s.json");
    expect_one_line_error(hearth(base + " --regex '(ab'"), "regex");
    const std::string bad_gbnf = tmp_dir() + "/bad.gbnf";
    std::ofstream(bad_gbnf) << "root ::= missing-rule\n";
    expect_one_line_error(hearth(base + " --grammar " + q(bad_gbnf)), "missing-rule");
    const Result both = hearth(base + " --regex a --grammar " + q(gbnf_file));
    EXPECT_NE(both.code, 0);
    EXPECT_LT(both.code, 128);
}

// Speculative decoding by prompt lookup gives the same tokens as plain decoding, greedy, sampled (same seed) and
// under a grammar, while verifying several drafted tokens per forward pass.
TEST(Cli, RunLookupGivesTheSameTokens) {
    const std::string schema = tmp_dir() + "/lookup_schema.json";
    std::ofstream(schema) << R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                                 "required": ["name", "age"]})";
    for (const std::string& args :
         std::vector<std::string>{"-p 'Once upon a time, there was a little girl named Lily. She loved to play' -n 120 --temp 0",
                                  "-p 'Once upon a time' -n 150 --temp 0.8 --top-k 40 --seed 7",
                                  "-p 'Once upon a time' -n 60 --temp 0 --json-schema " + schema}) {
        const Result plain = hearth("run -m " + stories_arg() + " " + args + " --json");
        const Result spec = hearth("run -m " + stories_arg() + " " + args + " --json --lookup 8");
        ASSERT_EQ(plain.code, 0) << plain.err;
        ASSERT_EQ(spec.code, 0) << spec.err;
        const auto a = nlohmann::json::parse(plain.out), b = nlohmann::json::parse(spec.out);
        EXPECT_EQ(a["tokens"], b["tokens"]) << args;
        EXPECT_FALSE(a.contains("speculative"));
        const auto& st = b["speculative"];
        EXPECT_GT(st["drafted"].get<int>(), 0) << args;
        EXPECT_GT(st["accepted"].get<int>(), 0) << args;
        EXPECT_LE(st["accepted"].get<int>(), st["drafted"].get<int>());
        // Fewer forward passes than tokens: accepted drafts came in the same pass as the token before them.
        EXPECT_GT(st["tokens_per_step"].get<double>(), 1.0) << args;
        EXPECT_EQ(st["steps"].get<int>() + 1 + st["accepted"].get<int>(), static_cast<int>(b["tokens"].size()))
            << "each pass yields one sampled token plus the drafts it kept: " << args;
    }
    const Result bad = hearth("run -m " + stories_arg() + " -p hi --lookup 100");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("--lookup"), std::string::npos) << bad.err;
}

// A draft model of the same vocabulary: stories260K drafting for itself (every draft kept) and a random model
// with its vocabulary (few kept); the tokens are those of plain decoding either way.
TEST(Cli, RunDraftModelGivesTheSameTokens) {
    const std::string random_draft = tmp_dir() + "/draft_random.gguf";
    ASSERT_EQ(hearth("synth --shape embd=64,layers=1,heads=2,kv_heads=1,ff=128 --vocab " + stories_arg() + " -o " +
                     random_draft).code, 0);
    for (const std::string& args :
         std::vector<std::string>{"-p 'Once upon a time, there was a little girl named Lily. She loved to play' -n 120 --temp 0",
                                  "-p 'Once upon a time' -n 150 --temp 0.8 --top-k 40 --seed 7"}) {
        const Result plain = hearth("run -m " + stories_arg() + " " + args + " --json");
        ASSERT_EQ(plain.code, 0) << plain.err;
        const auto a = nlohmann::json::parse(plain.out);
        for (const std::string& draft : {stories_arg(), random_draft}) {
            const Result spec = hearth("run -m " + stories_arg() + " " + args + " --json --draft " + draft + " --draft-max 6");
            ASSERT_EQ(spec.code, 0) << spec.err;
            const auto b = nlohmann::json::parse(spec.out);
            const auto& st = b["speculative"];
            // Greedy: the same tokens. Sampling: drafts are sampled and verified by speculative sampling, whose
            // output has the target's distribution but not the same draws (Speculative.SampledDrafts* checks it).
            const bool greedy = args.find("--temp 0.8") == std::string::npos;
            if (greedy) {
                EXPECT_EQ(a["tokens"], b["tokens"]) << args << " draft " << draft;
            }
            EXPECT_EQ(st["verification"], greedy ? "match" : "rejection-sampling");
            EXPECT_LE(st["accepted"].get<int>(), st["drafted"].get<int>());
            EXPECT_EQ(st["mode"], "draft");
            EXPECT_EQ(st["steps"].get<int>() + 1 + st["accepted"].get<int>(), static_cast<int>(b["tokens"].size()));
            if (draft == stories_arg() && greedy) {
                EXPECT_EQ(st["accepted"], st["drafted"]);  // greedy drafts of the model itself are its own choices
                EXPECT_GT(st["tokens_per_step"].get<double>(), 5.0);
            }
        }
    }
    // Another vocabulary is refused, naming the difference; --draft and --lookup exclude each other.
    const std::string other = tmp_dir() + "/draft_other_vocab.gguf";
    ASSERT_EQ(hearth("synth --shape embd=64,layers=1,heads=2,kv_heads=1,ff=128 --vocab " +
                     q(test::shared("tokenizers/smollm2/tokenizer.json")) + " -o " + other).code, 0);
    const Result bad = hearth("run -m " + stories_arg() + " -p hi --draft " + other);
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("49152 tokens, the model's 512"), std::string::npos) << bad.err;
    EXPECT_NE(hearth("run -m " + stories_arg() + " -p hi --draft " + other + " --lookup 4").code, 0);
}

TEST(Cli, RunWithKvEvictionAndItsErrors) {
    // The prompt: the first 800 bytes of stories260K's own text (quotes and apostrophes included).
    const std::string file = tmp_dir() + "/evict_prompt.txt";
    {
        std::ofstream(file) << test::read_file(std::string(HEARTH_SOURCE_DIR) + "/tests/data/stories_haystack.txt").substr(0, 800);
    }
    const std::string prompt = "\"$(cat " + q(file) + ")\"";
    const Result r = hearth("run -m " + stories_arg() + " -p " + prompt + " -n 40 --temp 0 -c 512 --json --kv-evict snapkv:64");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto& ev = j["kv_evict"];
    EXPECT_EQ(ev["method"], "snapkv");
    EXPECT_EQ(ev["prompt_cells"], j["prompt_tokens"].size());
    EXPECT_GT(ev["prompt_cells"].get<int>(), 200);
    EXPECT_EQ(ev["kept_cells"], 64);
    EXPECT_EQ(j["tokens"].size(), 40u);
    const auto& tm = j["timings"];  // the prompt's pass and the decode loop, measured apart
    EXPECT_GT(tm["prompt_seconds"].get<double>(), 0.0);
    EXPECT_GT(tm["decode_seconds"].get<double>(), 0.0);
    EXPECT_NEAR(tm["decode_tokens_per_second"].get<double>(), 40 / tm["decode_seconds"].get<double>(), 1e-6 * 40 / tm["decode_seconds"].get<double>());
    // With prompt lookup as well (its rollbacks cut after the compacted prompt).
    const Result lk = hearth("run -m " + stories_arg() + " -p " + prompt + " -n 40 --temp 0 -c 512 --json --kv-evict recent:64 --lookup 4");
    ASSERT_EQ(lk.code, 0) << lk.err;
    EXPECT_EQ(nlohmann::json::parse(lk.out)["tokens"].size(), 40u);
    // A budget the context cannot exceed, and a malformed one, are refused naming the problem.
    const Result big = hearth("run -m " + stories_arg() + " -p hi -c 512 --kv-evict snapkv:600");
    EXPECT_NE(big.code, 0);
    EXPECT_NE(big.err.find("not below the context size 512"), std::string::npos) << big.err;
    const Result bad = hearth("run -m " + stories_arg() + " -p hi --kv-evict snapkv:lots");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("is not snapkv:BUDGET or recent:BUDGET"), std::string::npos) << bad.err;
}

TEST(Cli, NeedleReportsRetrievalWithAndWithoutEviction) {
    const std::string hay = q(std::string(HEARTH_SOURCE_DIR) + "/tests/data/stories_haystack.txt");
    const std::string args = "needle -m " + stories_arg() + " --haystack " + hay +
                             " --needle ' Tom had a pet frog named Pip.' --question ' Tom had a pet frog named' --answer ' Pip'"
                             " -c 512 --depths 0.84,0.88,0.92,0.96 --kv-evict snapkv:64";
    const Result r = hearth(args + " --haystack-tokens 440 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["haystack_tokens"], 440);
    ASSERT_EQ(j["depths"].size(), 4u);
    EXPECT_GT(j["gain_kept"].get<double>(), 0.7);
    for (const auto& d : j["depths"]) EXPECT_EQ(d["kept_cells"], 64);
    const Result table = hearth(args + " --haystack-tokens 440");
    ASSERT_EQ(table.code, 0) << table.err;
    EXPECT_NE(table.out.find("| depth | needle at |"), std::string::npos) << table.out;
    const Result big = hearth(args + " --haystack-tokens 600");
    EXPECT_NE(big.code, 0);
    EXPECT_NE(big.err.find("exceeds the context size 512"), std::string::npos) << big.err;
}

TEST(Cli, InfoReportsTheModel) {
    const Result r = hearth("info -m " + stories_arg() + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["architecture"], "llama");
    EXPECT_EQ(j["n_embd"], 64);
    EXPECT_EQ(j["n_layer"], 5);
    EXPECT_EQ(j["n_head"], 8);
    EXPECT_EQ(j["n_head_kv"], 4);
    EXPECT_EQ(j["n_vocab"], 512);
    EXPECT_EQ(j["tensor_types"]["F32"]["tensors"], 48);
    EXPECT_GT(j["n_params"].get<int64_t>(), 250000);
    const Result text = hearth("info -m " + stories_arg());
    EXPECT_NE(text.out.find("layers          5"), std::string::npos) << text.out;
}

TEST(Cli, InfoShowsQwen2Specifics) {
    const Result r = hearth("info --json -m " + q(test::shared("conformance/qwen2/qwen2.Q8_0.gguf")));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["architecture"], "qwen2");
    EXPECT_EQ(j["attention_bias"], true);
    const Result s = hearth("info --json -m " + stories_arg());
    EXPECT_EQ(nlohmann::json::parse(s.out)["attention_bias"], false);
}

// Each architecture's specifics, read from the conformance files' metadata.
TEST(Cli, InfoShowsEveryArchitecturesSpecifics) {
    auto info = [](const std::string& arch) {
        const Result r = hearth("info --json -m " + q(test::shared("conformance/" + arch + "/" + arch + ".F16.gguf")));
        EXPECT_EQ(r.code, 0) << r.err;
        return nlohmann::json::parse(r.out);
    };
    const auto qwen3 = info("qwen3");
    EXPECT_EQ(qwen3["rope_type"], "neox");
    EXPECT_TRUE(qwen3["specifics"].contains("qk-norm"));
    const auto moe = info("qwen3moe");
    EXPECT_EQ(moe["specifics"]["experts"], "2 used of 8, width 256, weights renormalised");
    const auto gemma = info("gemma3");
    EXPECT_EQ(gemma["ffn_activation"], "gelu-tanh");
    EXPECT_NEAR(gemma["specifics"]["embd-scale"].get<double>(), 16.0, 1e-6);
    EXPECT_EQ(gemma["specifics"]["sliding-window"],
              "32 tokens on 5 of 6 layers (local rope base 10000), the others global");
    EXPECT_NEAR(gemma["specifics"]["rope-scale"].get<double>(), 0.125, 1e-9);
    EXPECT_TRUE(gemma["specifics"].contains("post-norms"));
    const auto granite = info("granite");
    EXPECT_NEAR(granite["specifics"]["embd-scale"].get<double>(), 12.0, 1e-6);
    EXPECT_NEAR(granite["specifics"]["residual-scale"].get<double>(), 0.22, 1e-6);
    EXPECT_NEAR(granite["specifics"]["attn-scale"].get<double>(), 1.0 / 64, 1e-9);
    EXPECT_NEAR(granite["specifics"]["logit-scale"].get<double>(), 1.0 / 8, 1e-9);
    const auto phi3 = info("phi3");
    EXPECT_TRUE(phi3["specifics"].contains("fused"));
    EXPECT_EQ(phi3["specifics"]["longrope"], "short/long factors, original context 4096, attn factor 1.1902381");
    const Result text = hearth("info -m " + q(test::shared("conformance/gemma3/gemma3.F16.gguf")));
    EXPECT_NE(text.out.find("sliding-window"), std::string::npos) << text.out;
}

// A hyper-parameter hearth does not implement is refused with its name, not run half-right.
TEST(Cli, UnsupportedHyperParametersAreRefused) {
    gguf::File src = gguf::File::open(test::shared("conformance/gemma3/gemma3.F16.gguf"));
    for (const auto& [key, value, expect] :
         std::vector<std::tuple<std::string, gguf::Value, std::string>>{
             {"gemma3.attn_logit_softcapping", gguf::Value::f32(50.0f), "attn_logit_softcapping"},
             {"gemma3.rope.scaling.type", gguf::Value::str("yarn"), "yarn"},
             {"gemma3.attention.value_length", gguf::Value::u32(32), "value_length"}}) {
        gguf::Writer w;
        w.copy_metadata(src);
        for (const auto& t : src.tensors()) w.add_tensor(t);
        w.set(key, value);
        const std::string path = tmp_dir() + "/unsupported.gguf";
        w.write(path);
        expect_one_line_error(hearth("run -m " + path + " -p hi -n 1"), expect);
    }
}

TEST(Cli, PerplexityMatchesTheGolden) {
    const Result r = hearth("perplexity -m " + stories_arg() + " -f " + q(test::shared("conformance/texts/ppl-text.txt")) +
                            " -c 128 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tokens"], 986);
    EXPECT_EQ(j["chunks"], 7);
    EXPECT_EQ(j["scored_tokens"], 441);
    EXPECT_NEAR(j["ppl"].get<double>(), 11.984608, 11.984608 * 5e-3);
}

// Both KV cache types reach llama.cpp's perplexity (whose cache is f16 too); f16, the default, moves it a little.
TEST(Cli, PerplexityWithEachKvType) {
    double ppl[2];
    for (const int i : {0, 1}) {
        const std::string type = i == 0 ? "f16" : "f32";
        const Result r = hearth("perplexity -m " + stories_arg() + " -f " +
                                q(test::shared("conformance/texts/ppl-text.txt")) + " -c 128 --json --kv-type " + type);
        ASSERT_EQ(r.code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["kv_type"], type);
        ppl[i] = j["ppl"].get<double>();
        EXPECT_NEAR(ppl[i], 11.984608, 11.984608 * 5e-3) << type;
    }
    EXPECT_NE(ppl[0], ppl[1]);
    EXPECT_NEAR(ppl[0], ppl[1], ppl[1] * 1e-3);
}

// Each compressed KV type against f16 (the window fed 16 tokens per pass, so blocks age as in decoding): the
// perplexity change, the KL divergence, the bytes per token per layer with the scales.
TEST(Cli, PerplexityOfCompressedKvAgainstF16) {
    const std::pair<const char*, double> types[] = {{"q8", 70}, {"q4", 44}, {"rot4", 40}, {"rot3", 32}};
    for (const auto& [type, bytes] : types) {
        const Result r = hearth("perplexity -m " + stories_arg() + " -f " +
                                q(test::shared("conformance/texts/ppl-text.txt")) + " -c 256 --json --kl-base f16 --kv-type " + type);
        ASSERT_EQ(r.code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_EQ(j["step"], 16) << type;
        EXPECT_EQ(j["kv_bytes_per_token_per_layer"].get<double>(), bytes) << type;
        EXPECT_EQ(j["base"]["kv_bytes_per_token_per_layer"].get<double>(), 128) << type;
        EXPECT_EQ(j["kv_residual"], 32);
        const double kl = j["kl_mean"].get<double>(), dppl = j["delta_ppl_pct"].get<double>();
        EXPECT_GT(kl, 0) << type;
        if (std::string(type) == "q8") {
            EXPECT_LT(std::abs(dppl), 0.1) << type;  // the issue's goal for q8
            EXPECT_LT(kl, 1e-4) << type;
        }
        EXPECT_LT(std::abs(dppl), 1.0) << type;
        EXPECT_LT(kl, 0.1) << type;
        EXPECT_GT(j["top1_agree"].get<double>(), 0.8) << type;
    }
}

// A compressed type the model's head size cannot use is refused, naming both.
TEST(Cli, KvTypeTheHeadSizeCannotUse) {
    const std::string m = tmp_dir() + "/hd24.gguf";
    ASSERT_EQ(hearth("synth --shape embd=48,layers=1,heads=2,kv_heads=2,ff=64,head_dim=24 --vocab " + stories_arg() +
                     " -o " + m).code, 0);
    const Result r = hearth("run -m " + m + " -p hi -n 2 --kv-type rot3");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("rot3"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("head size is 24"), std::string::npos) << r.err;
    const Result q8 = hearth("run -m " + m + " -p hi -n 2 --kv-type q8");  // 48 channels, not a multiple of 32
    EXPECT_NE(q8.err.find("multiple of 32: this model's is 48"), std::string::npos) << q8.err;
    EXPECT_EQ(hearth("run -m " + m + " -p hi -n 2").code, 0);
}

TEST(Cli, BenchReportsSpeeds) {
    const Result r = hearth("bench -m " + stories_arg() + " -p 32 -n 8 -r 2 -t 2 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["pp"]["median"].get<double>(), 0);
    EXPECT_GT(j["tg"]["median"].get<double>(), 0);
    EXPECT_EQ(j["pp"]["runs"].size(), 2u);
    EXPECT_EQ(j["threads"], 2);
}

// The batched decode test (a server's continuous batch): B sequences with D cells of context each.
TEST(Cli, BenchBatchedDecode) {
    const Result r = hearth("bench -m " + stories_arg() + " -p 0 -n 8 -r 2 -t 2 -b 4 -d 40 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_FALSE(j.contains("pp"));
    EXPECT_EQ(j["tg"]["batch"], 4);
    EXPECT_EQ(j["tg"]["depth"], 40);
    EXPECT_GT(j["tg"]["median"].get<double>(), 0);
    EXPECT_EQ(j["tg"]["runs"].size(), 2u);
    const Result bad = hearth("bench -m " + stories_arg() + " -b 0");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("batch"), std::string::npos) << bad.err;
}

TEST(Cli, SynthQuantizeRun) {
    const std::string f16 = tmp_dir() + "/tiny.f16.gguf", q8 = tmp_dir() + "/tiny.q8_0.gguf",
                      q4k = tmp_dir() + "/tiny.q4km.gguf";
    Result r = hearth("synth --shape embd=256,layers=2,heads=4,kv_heads=2,ff=512 --vocab " + stories_arg() + " -o " + f16);
    ASSERT_EQ(r.code, 0) << r.err;
    r = hearth("quantize " + f16 + " " + q8 + " Q8_0 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_LT(j["bytes_out"].get<double>(), j["bytes_in"].get<double>() * 0.6);
    r = hearth("quantize " + f16 + " " + q4k + " Q4_K_M");
    ASSERT_EQ(r.code, 0) << r.err;
    r = hearth("info -m " + q4k + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(j["tensor_types"].contains("Q4_K"));
    EXPECT_TRUE(j["tensor_types"].contains("Q6_K"));
    EXPECT_EQ(j["n_vocab"], 512);
    for (const std::string& m : {f16, q8, q4k}) {
        r = hearth("run -m " + m + " -p 'Once upon a time' -n 8 --temp 0 --json");
        ASSERT_EQ(r.code, 0) << r.err;
        EXPECT_EQ(nlohmann::json::parse(r.out)["tokens"].size(), 8u);
    }
    // Quantizing an already quantized file is refused.
    r = hearth("quantize " + q8 + " " + tmp_dir() + "/x.gguf Q4_0");
    expect_one_line_error(r, "already");
}

TEST(Cli, BadInputGivesOneLineErrors) {
    expect_one_line_error(hearth("info -m /nonexistent/model.gguf"), "/nonexistent/model.gguf");
    // Truncated copy of a real model.
    const std::string data = test::read_file(test::shared("models/stories260K.gguf"));
    const std::string cut = tmp_dir() + "/truncated.gguf";
    std::ofstream(cut, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size() / 2));
    expect_one_line_error(hearth("run -m " + cut + " -p hi -n 1"), "truncated.gguf");
    // Not a GGUF at all.
    const std::string junk = tmp_dir() + "/junk.gguf";
    std::ofstream(junk) << "this is not a model file, just text\n";
    expect_one_line_error(hearth("info -m " + junk), "junk.gguf");
    // Unknown architecture, unsupported tensor type.
    {
        gguf::File f = gguf::File::open(test::shared("models/stories260K.gguf"));
        gguf::Writer w;
        w.copy_metadata(f);
        w.set("general.architecture", gguf::Value::str("mamba9"));
        for (const auto& t : f.tensors()) w.add_tensor(t.name, t.type, t.dims, t.data, t.nbytes);
        w.write(tmp_dir() + "/arch.gguf");
        expect_one_line_error(hearth("info -m " + tmp_dir() + "/arch.gguf"), "mamba9");
        gguf::Writer w2;
        w2.copy_metadata(f);
        std::vector<uint8_t> fake;
        for (const auto& t : f.tensors()) {
            if (t.name == "blk.0.attn_q.weight") {
                // A type hearth does not compute with (IQ2_XXS: 66-byte blocks of 256).
                fake.assign(66 * 64, 0);
                w2.add_tensor(t.name, DType(16), {256, 64}, fake.data(), fake.size());
            } else {
                w2.add_tensor(t.name, t.type, t.dims, t.data, t.nbytes);
            }
        }
        w2.write(tmp_dir() + "/type.gguf");
        const Result r = hearth("info -m " + tmp_dir() + "/type.gguf");
        expect_one_line_error(r, "blk.0.attn_q.weight");
        EXPECT_NE(r.err.find("IQ2_XXS"), std::string::npos) << r.err;
    }
    // Prompt longer than the context; zero threads; bad sampling values.
    expect_one_line_error(hearth("run -m " + stories_arg() + " -c 8 -p 'Once upon a time there was a little girl named Lily'"),
                          "context");
    expect_one_line_error(hearth("run -m " + stories_arg() + " -t 0 -p hi"), "threads");
    expect_one_line_error(hearth("bench -m " + stories_arg() + " -t 0"), "threads");
    expect_one_line_error(hearth("run -m " + stories_arg() + " -p hi --top-p 0"), "top_p");
    expect_one_line_error(hearth("quantize " + stories_arg() + " " + tmp_dir() + "/q.gguf Q9_9"), "Q9_9");
    expect_one_line_error(hearth("run -m " + stories_arg() + " -p hi --kv-type q9"), "q9");
    expect_one_line_error(hearth("run -m " + stories_arg() + " -p hi --kv-type q4 --kv-residual -1"), "--kv-residual");
    expect_one_line_error(hearth("perplexity -m " + stories_arg() + " -f " +
                                 q(test::shared("conformance/texts/ppl-text.txt")) + " --kl-base q7"),
                          "q7");
    expect_one_line_error(hearth("synth --shape nonsense -o " + tmp_dir() + "/s.gguf"), "nonsense");
}

TEST(Cli, HelpOnEverySubcommand) {
    for (const char* sub : {"info", "run", "bench", "perplexity", "quantize", "synth", "chat-template", "tokenize",
                            "detokenize"}) {
        const Result r = hearth(std::string(sub) + " --help");
        EXPECT_EQ(r.code, 0) << sub;
        EXPECT_NE(r.out.find("--"), std::string::npos) << sub;
    }
}

// chat-template: a template file, a model without a template (the documented ChatML default, announced on
// stderr), and bad input.
TEST(Cli, ChatTemplateRenders) {
    const std::string dir = tmp_dir();
    std::ofstream(dir + "/messages.json") << R"([{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "Hi \u00e9"}])";
    std::ofstream(dir + "/t.jinja") << "{{ bos_token }}{% for m in messages %}[{{ m.role|upper }}] {{ m.content }}\n"
                                       "{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}";
    Result r = hearth("chat-template --template " + dir + "/t.jinja --messages " + dir +
                      "/messages.json --bos '<s>' --add-generation-prompt");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "<s>[SYSTEM] Be brief.\n[USER] Hi \xC3\xA9\n[ASSISTANT]");
    // stories260K has no chat template: ChatML, with the model's own bos/eos available, and a note.
    r = hearth("chat-template -m " + stories_arg() + " --messages " + dir + "/messages.json");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi \xC3\xA9<|im_end|>\n");
    EXPECT_NE(r.err.find("default (ChatML)"), std::string::npos) << r.err;
    // Bad input: one-line errors naming the problem.
    std::ofstream(dir + "/bad.json") << "[{\"role\": ";
    expect_one_line_error(hearth("chat-template --template " + dir + "/t.jinja --messages " + dir + "/bad.json"),
                          "bad.json");
    std::ofstream(dir + "/syntax.jinja") << "line one\n{% for m in messages %}{{ m.content }\n";
    expect_one_line_error(
        hearth("chat-template --template " + dir + "/syntax.jinja --messages " + dir + "/messages.json"), "line 2");
    std::ofstream(dir + "/raise.jinja") << "{{ raise_exception('Conversation roles must alternate') }}";
    expect_one_line_error(
        hearth("chat-template --template " + dir + "/raise.jinja --messages " + dir + "/messages.json"),
        "Conversation roles must alternate");
    expect_one_line_error(hearth("chat-template -m " + stories_arg() + " --name tool_use --messages " + dir +
                                 "/messages.json"),
                          "tool_use");
}

// A model's own template (tokenizer.chat_template of the Phi-3 vocab GGUF) with the model's bos/eos tokens:
// the CLI prints what Debian's jinja2 renders for the same variables.
TEST(Cli, ChatTemplateFromModelMatchesJinja2) {
    const std::string dir = tmp_dir();
    const std::string model = test::shared("tokenizers/llama.cpp-vocab/ggml-vocab-phi-3.gguf");
    const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(
        R"([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}])");
    std::ofstream(dir + "/phi3.json") << messages.dump();
    const Result r = hearth("chat-template -m " + q(model) + " --messages " + dir + "/phi3.json --add-generation-prompt");
    ASSERT_EQ(r.code, 0) << r.err;

    const gguf::File f = gguf::File::open(model);
    const tok::Vocab v = tok::Vocab::from_gguf(f);
    ChatInputs in;
    in.messages = messages;
    in.add_generation_prompt = true;
    in.bos_token = v.text(v.bos());
    in.eos_token = v.text(v.eos());
    nlohmann::ordered_json req;
    req["templates"]["phi3"] = f.get_str("tokenizer.chat_template");
    req["cases"] = nlohmann::ordered_json::array({{{"template", "phi3"}, {"context", chat_context(in)}}});
    std::ofstream(dir + "/oracle_in.json") << req.dump();
    const std::string cmd = "/usr/bin/python3 " + q(std::string(HEARTH_SOURCE_DIR) + "/tests/oracle/render_template.py") +
                            " < " + dir + "/oracle_in.json > " + dir + "/oracle_out.json";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const auto out = nlohmann::json::parse(test::read_file(dir + "/oracle_out.json"));
    ASSERT_TRUE(out[0]["ok"].get<bool>()) << out.dump();
    EXPECT_EQ(r.out, out[0]["out"].get<std::string>());
    EXPECT_NE(r.out.find("And 3+3?"), std::string::npos);
}

// ---- tokenize / detokenize ---------------------------------------------------------------------------

const tok::Vocab& stories_vocab() {
    static const tok::Vocab v = [] {
        const gguf::File f = gguf::File::open(test::shared("models/stories260K.gguf"));
        return tok::Vocab::from_gguf(f);
    }();
    return v;
}

// The ids `tokenize ARGS --ids` prints ("[1, 2, 3]" is JSON).
std::vector<int32_t> tokenize_ids(const std::string& args) {
    const Result r = hearth("tokenize " + args + " --ids");
    EXPECT_EQ(r.code, 0) << r.err;
    if (r.code != 0) return {};
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    return nlohmann::json::parse(r.out).get<std::vector<int32_t>>();
}

std::string ids_args(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += " " + std::to_string(id);
    return s;
}

// A piece of the JSON output (a string, or the byte values of a piece that is not valid UTF-8) as bytes.
std::string piece_bytes(const nlohmann::json& p) {
    if (p.is_string()) return p.get<std::string>();
    std::string s;
    for (const auto& b : p) s += static_cast<char>(b.get<int>());
    return s;
}

// The texts of the round trips: ASCII, accented Latin, CJK (byte tokens in stories260K's 512-token vocabulary),
// and whitespace that the listing must escape.
const std::vector<std::string>& tokenize_texts() {
    static const std::vector<std::string> t = {"Hello world", "Once upon a time, there was a little girl named Lily.",
                                               "Gr\xC3\xBC\xC3\x9F" "e aus \xE6\x9D\xB1\xE4\xBA\xAC \xE2\x80\x94 caf\xC3\xA9",
                                               "line one\nline two\ttabbed  'quoted' \\ end"};
    return t;
}

// Every text: the ids equal the vocabulary's encode() with its BOS rule (stories260K adds BOS) and special
// tokens left as text; --no-bos drops BOS; detokenize gives the text back from separate ids and from the
// --ids list; the listing and the JSON show the same ids with their pieces.
TEST(Cli, TokenizeEqualsTheVocabularyAndDetokenizeInvertsIt) {
    const tok::Vocab& v = stories_vocab();
    ASSERT_TRUE(v.add_bos());
    ASSERT_GE(v.bos(), 0);
    const std::string dir = tmp_dir();
    for (size_t i = 0; i < tokenize_texts().size(); ++i) {
        const std::string& text = tokenize_texts()[i];
        const std::string file = dir + "/tok" + std::to_string(i) + ".txt";
        std::ofstream(file, std::ios::binary) << text;
        const std::vector<int32_t> ids = tokenize_ids("-m " + stories_arg() + " -f " + q(file));
        EXPECT_EQ(ids, v.encode(text, /*add_special=*/true, /*parse_special=*/false)) << text;
        ASSERT_FALSE(ids.empty());
        EXPECT_EQ(ids.front(), v.bos());
        const std::vector<int32_t> no_bos = tokenize_ids("-m " + stories_arg() + " -f " + q(file) + " --no-bos");
        EXPECT_EQ(no_bos, std::vector<int32_t>(ids.begin() + 1, ids.end())) << text;

        Result r = hearth("detokenize -m " + stories_arg() + ids_args(ids));
        EXPECT_EQ(r.code, 0) << r.err;
        EXPECT_EQ(r.out, text);
        r = hearth("detokenize -m " + stories_arg() + ids_args(no_bos));
        EXPECT_EQ(r.out, text);
        r = hearth("detokenize -m " + stories_arg() + " " + q(nlohmann::json(ids).dump()));  // "[1,2,3]" as one argument
        EXPECT_EQ(r.out, text);

        // JSON: the same ids; the pieces of the ids after BOS are the text with the SPM prefix space.
        r = hearth("tokenize -m " + stories_arg() + " -f " + q(file) + " --json");
        ASSERT_EQ(r.code, 0) << r.err;
        const auto j = nlohmann::json::parse(r.out);
        ASSERT_EQ(j["tokens"].size(), ids.size());
        EXPECT_EQ(j["count"], ids.size());
        std::string joined;
        for (size_t k = 0; k < ids.size(); ++k) {
            EXPECT_EQ(j["tokens"][k]["id"], ids[k]);
            if (k > 0) joined += piece_bytes(j["tokens"][k]["piece"]);
        }
        EXPECT_EQ(j["tokens"][0]["piece"], v.text(v.bos()));
        EXPECT_EQ(joined, (v.add_space_prefix() ? " " : "") + text);

        // The listing: one line per token, "ID -> 'piece'", the ids right-aligned in 6 columns.
        r = hearth("tokenize -m " + stories_arg() + " -f " + q(file));
        ASSERT_EQ(r.code, 0) << r.err;
        std::istringstream lines(r.out);
        std::string line;
        size_t n = 0;
        const std::regex shape(R"( *(\d+) -> '(.*)')");
        while (std::getline(lines, line)) {
            std::smatch m;
            ASSERT_TRUE(std::regex_match(line, m, shape)) << line;
            ASSERT_LT(n, ids.size());
            EXPECT_EQ(std::stoi(m[1]), ids[n]) << line;
            EXPECT_EQ(line.find(" -> "), 6u) << line;
            ++n;
        }
        EXPECT_EQ(n, ids.size()) << r.out;
    }
    // The CJK text needs byte tokens: their pieces are bytes of a character, given as arrays in JSON and as
    // \x escapes in the listing; the newline and tab are escaped too.
    std::ofstream(dir + "/cjk.txt", std::ios::binary) << tokenize_texts()[2];
    Result r = hearth("tokenize -m " + stories_arg() + " -f " + q(dir + "/cjk.txt") + " --json");
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_TRUE(std::any_of(j["tokens"].begin(), j["tokens"].end(), [](const auto& t) { return t["piece"].is_array(); }))
        << r.out;
    r = hearth("tokenize -m " + stories_arg() + " -f " + q(dir + "/cjk.txt"));
    EXPECT_NE(r.out.find("'\\xE6'"), std::string::npos) << r.out;
    r = hearth("tokenize -m " + stories_arg() + " -f " + q(dir + "/tok3.txt"));
    EXPECT_NE(r.out.find("'\\n'"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\\\\"), std::string::npos) << r.out;

    // -p gives the same as -f, and the example's exact listing.
    const std::vector<int32_t> hello = v.encode("Hello world", true, false);
    EXPECT_EQ(tokenize_ids("-m " + stories_arg() + " -p 'Hello world'"), hello);
    r = hearth("tokenize -m " + stories_arg() + " -p 'Hello world'");
    std::string want;
    for (int32_t id : hello) {
        const std::string sid = std::to_string(id);
        want += std::string(6 - sid.size(), ' ') + sid + " -> '" + v.token_to_piece(id, true) + "'\n";
    }
    EXPECT_EQ(r.out, want);
    EXPECT_EQ(r.out.rfind("     1 -> '<s>'\n", 0), 0u) << r.out;
}

// --special parses a special token's text into its id; without it the text is ordinary pieces. detokenize
// --special writes control tokens as their text and keeps BOS.
TEST(Cli, TokenizeSpecialTokens) {
    const tok::Vocab& v = stories_vocab();
    const std::string bos_text = v.text(v.bos());
    ASSERT_EQ(bos_text, "<s>");
    const std::vector<int32_t> parsed = tokenize_ids("-m " + stories_arg() + " -p '<s>Once upon' --special");
    EXPECT_EQ(parsed, v.encode("<s>Once upon", true, true));
    ASSERT_GE(parsed.size(), 3u);
    EXPECT_EQ(parsed[0], v.bos());
    EXPECT_EQ(parsed[1], v.bos());  // the text's "<s>"
    const std::vector<int32_t> plain = tokenize_ids("-m " + stories_arg() + " -p '<s>Once upon'");
    EXPECT_EQ(plain, v.encode("<s>Once upon", true, false));
    EXPECT_EQ(std::count(plain.begin(), plain.end(), v.bos()), 1);  // only the BOS tokenize adds
    EXPECT_GT(plain.size(), parsed.size());
    EXPECT_EQ(hearth("detokenize -m " + stories_arg() + ids_args(plain)).out, "<s>Once upon");
    // --no-bos --special: the text's own "<s>" is still parsed.
    const std::vector<int32_t> nb = tokenize_ids("-m " + stories_arg() + " -p '<s>Once upon' --special --no-bos");
    EXPECT_EQ(nb, std::vector<int32_t>(parsed.begin() + 1, parsed.end()));
    const Result r = hearth("detokenize --special -m " + stories_arg() + ids_args(parsed));
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("<s><s>", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("Once upon"), std::string::npos) << r.out;
}

// llama.cpp's test vectors through the CLI, on a vocab-only GGUF (tokenize reads no weights): the ids llama.cpp
// gives with add_special and parse_special off, and the text again from detokenize.
TEST(Cli, TokenizeMatchesLlamaCppVectors) {
    const std::string model = q(test::shared("tokenizers/llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
    const test::VocabVectors vec = test::read_vocab_vectors("ggml-vocab-llama-spm.gguf");
    ASSERT_EQ(vec.inputs.size(), vec.outputs.size());
    ASSERT_GE(vec.inputs.size(), 40u);
    const std::string dir = tmp_dir();
    // Every eighth vector: the vocabulary's encoder meets all of them in the tokenizer tests; here it is the
    // commands' reading and printing that is checked, two processes per vector.
    for (size_t i = 0; i < vec.inputs.size(); i += 8) {
        const std::string file = dir + "/vec" + std::to_string(i) + ".txt";
        std::ofstream(file, std::ios::binary) << vec.inputs[i];
        const std::vector<int32_t> ids = tokenize_ids("-m " + model + " -f " + q(file) + " --no-bos");
        EXPECT_EQ(ids, vec.outputs[i]) << "vector " << i << ": '" << vec.inputs[i] << "'";
        if (ids.empty()) continue;
        const Result r = hearth("detokenize -m " + model + ids_args(ids));
        EXPECT_EQ(r.out, vec.inputs[i]) << "vector " << i;
    }
}

TEST(Cli, TokenizeBadInput) {
    const tok::Vocab& v = stories_vocab();
    const std::string n = std::to_string(v.n_tokens());
    // An id outside the vocabulary names the id and the vocabulary's size.
    Result r = hearth("detokenize -m " + stories_arg() + " 1 " + n);
    expect_one_line_error(r, "token id " + n);
    EXPECT_NE(r.err.find(n + " tokens"), std::string::npos) << r.err;
    expect_one_line_error(hearth("detokenize -m " + stories_arg() + " '[5, 99999999999999999999]'"), "99999999999999999999");
    expect_one_line_error(hearth("detokenize -m " + stories_arg() + " '[5, -3]'"), "token id -3");
    expect_one_line_error(hearth("detokenize -m " + stories_arg() + " 5 abc"), "'abc' is not a token id");
    // A missing input file or model is named.
    expect_one_line_error(hearth("tokenize -m " + stories_arg() + " -f /nonexistent/text.txt"), "/nonexistent/text.txt");
    expect_one_line_error(hearth("tokenize -m /nonexistent/m.gguf -p hi"), "/nonexistent/m.gguf");
    // -p and -f together, neither, --ids with --json, and detokenize without ids are usage errors.
    for (const std::string& args : {"tokenize -m " + stories_arg() + " -p hi -f " + q(tmp_dir() + "/x.txt"),
                                    "tokenize -m " + stories_arg(), "tokenize -m " + stories_arg() + " -p hi --ids --json",
                                    "detokenize -m " + stories_arg()}) {
        r = hearth(args);
        EXPECT_NE(r.code, 0) << args;
        EXPECT_LT(r.code, 128) << args;
        EXPECT_TRUE(r.out.empty()) << args << ": " << r.out;
        EXPECT_FALSE(r.err.empty()) << args;
    }
}


// `hearth grammar check`: verdicts, the place of each rejection (bytes, or tokens with -m), and the exit status
// (0 all accepted, 1 some rejected, 2 a constraint or instance that cannot be used), against python3-jsonschema.
TEST(Cli, GrammarCheckSaysWhereAnInstanceIsRejected) {
    const std::string dir = tmp_dir() + "/grammar_check";
    std::filesystem::create_directories(dir);
    const auto write = [&](const std::string& name, const std::string& text) {
        std::ofstream(dir + "/" + name, std::ios::binary) << text;
        return q(dir + "/" + name);
    };
    const std::string schema_text = R"({"$schema":"http://json-schema.org/draft-07/schema#","type":"object",
        "properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0}},"required":["name"],
        "x-owner":"hr"})";
    const std::string schema = write("s.json", schema_text);
    const std::vector<std::string> texts = {"{\"name\": \"Ann\", \"age\": 3}\n", "{\"name\": \"Bob\",\n \"age\": -3}\n",
                                            "{\"age\": 3}"};
    std::vector<std::string> files;
    for (size_t i = 0; i < texts.size(); ++i) files.push_back(write("i" + std::to_string(i) + ".json", texts[i]));
    const auto py = test::jsonschema_oracle({{nlohmann::ordered_json::parse(schema_text), texts}});
    ASSERT_EQ(py.results.size(), 1u);
    EXPECT_EQ(py.results[0], (std::vector<nlohmann::ordered_json>{true, false, false}));

    for (const std::string& model : {std::string(), " -m " + stories_arg()}) {
        SCOPED_TRACE(model);
        const Result all = hearth("grammar check --json-schema " + schema + model + " --json " + files[0] + " " +
                                  files[1] + " " + files[2]);
        ASSERT_EQ(all.code, 1) << all.err;
        const auto j = nlohmann::json::parse(all.out);
        EXPECT_EQ(j["accepted"], 1);
        EXPECT_EQ(j["rejected"], 2);
        EXPECT_EQ(j["instances"][0]["accepted"], true);
        EXPECT_EQ(j["instances"][1]["accepted"], false);
        EXPECT_EQ(j["instances"][1]["byte"], texts[1].find('-'));  // the minus sign is where it goes wrong
        EXPECT_EQ(j["instances"][1]["line"], 2);
        EXPECT_EQ(j["instances"][1]["column"], 9);
        EXPECT_EQ(j["instances"][2]["byte"], 2);  // "age" where "name" must come first
        EXPECT_EQ(j["instances"][2].contains("token"), !model.empty());
        const Result one = hearth("grammar check --json-schema " + schema + model + " " + files[0]);
        EXPECT_EQ(one.code, 0) << one.err;
        EXPECT_NE(one.out.find("accepted"), std::string::npos) << one.out;
    }
    const Result text = hearth("grammar check --json-schema " + schema + " " + files[1]);
    EXPECT_EQ(text.code, 1);
    EXPECT_NE(text.out.find("rejected at byte 24 (line 2, column 9)"), std::string::npos) << text.out;
    // A regex over standard input, and a GBNF grammar.
    EXPECT_EQ(hearth("grammar check --regex '[a-z]+' - < " + write("w.txt", "hello")).code, 0);
    EXPECT_EQ(hearth("grammar check --regex '[a-z]+' - < " + write("w2.txt", "hello!")).code, 1);
    const std::string gbnf = write("g.gbnf", "root ::= \"yes\" | \"no\"\n");
    EXPECT_EQ(hearth("grammar check --grammar " + gbnf + " " + write("y.txt", "yes")).code, 0);
    EXPECT_EQ(hearth("grammar check --grammar " + gbnf + " " + write("m.txt", "maybe")).code, 1);
    // Compact rewriting in the schema's order: the instance as MaskBench writes it.
    const Result compact = hearth("grammar check --compact --json --json-schema " + schema + " " + files[1]);
    EXPECT_EQ(nlohmann::json::parse(compact.out)["instances"][0]["byte"], 20);
    const std::string reordered = write("r.json", "{\"age\": 3,\n\"name\": \"Ann\"}");
    EXPECT_EQ(hearth("grammar check --json-schema " + schema + " " + reordered).code, 1);
    EXPECT_EQ(hearth("grammar check --compact --json-schema " + schema + " " + reordered).code, 0);

    // Exit status 2, one line naming the problem: a refused schema (strict), a schema that is not JSON, a remote
    // $ref (nothing is fetched), an instance that is not JSON, a missing instance file.
    const auto refused = [&](const std::string& args, const std::string& needle) {
        const Result r = hearth("grammar check " + args);
        EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
        EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    };
    refused("--strict-schema --json-schema " + schema + " " + files[0], "'x-owner' at #/x-owner");
    refused("--json-schema " + write("broken.json", R"({"type": )") + " " + files[0], "broken.json");
    refused("--json-schema " + write("remote.json", R"({"$ref": "https://example.com/s.json"})") + " " + files[0],
            "https://example.com/s.json");
    refused("--json-schema " + write("bogus.json", R"({"properties": {"a": {"type": "bogus"}}})") + " " + files[0],
            "#/properties/a/type");
    refused("--json-schema " + schema + " " + write("notjson.json", "{name: 1}"), "notjson.json");
    refused("--json-schema " + schema + " " + q(dir + "/missing.json"), "missing.json");
    refused(files[0], "give the constraint");
    refused("--compact --regex a " + files[0], "--compact needs --json-schema");
}
}  // namespace
}  // namespace hearth
