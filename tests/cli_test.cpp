// End-to-end tests of the `hearth` binary: real models from ../shared, every subcommand, and bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
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

std::string q(const std::string& s) { return "'" + s + "'"; }
std::string stories() { return q(test::shared("models/stories260K.gguf")); }

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

void expect_one_line_error(const Result& r, const std::string& needle) {
    EXPECT_NE(r.code, 0);
    EXPECT_LT(r.code, 128) << "crashed with signal " << r.code - 128;
    EXPECT_NE(r.err.find("error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(Cli, Stories260KGreedyMatchesLlama2cByteForByte) {
    const auto blocks = reference_blocks();
    ASSERT_EQ(blocks.size(), 3u);
    // Block 1: no prompt, 256 steps (run.c's -n counts positions: BOS + 255... each step emits one token).
    {
        const std::string want = blocks[0].second;
        const Result r = hearth("run -m " + stories() + " -p '' -n 256 --temp 0");
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
        const Result js = hearth("run -m " + stories() + " -p 'Lily and Tom went to' -n 0 --json");
        ASSERT_EQ(js.code, 0) << js.err;
        const auto j = nlohmann::json::parse(js.out);
        const int n_prompt = static_cast<int>(j["prompt_tokens"].size());  // BOS included
        const Result r = hearth("run -m " + stories() + " -p 'Lily and Tom went to' -n " +
                                std::to_string(64 - (n_prompt - 1)) + " --temp 0");
        ASSERT_EQ(r.code, 0) << r.err;
        std::string got = r.out;
        got.pop_back();
        EXPECT_EQ(got, want);
    }
}

TEST(Cli, RunJsonAndSeededSamplingIsReproducible) {
    const std::string args = "run -m " + stories() + " -p 'Once upon a time' -n 24 --temp 0.9 --top-p 0.9 --json";
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
    const std::string base = "run -m " + stories() + " -p 'Once upon a time' --temp 1 --json";
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
    std::ofstream(not_schema) << R"({"type":"object","properties":{"a":{"not":{"type":"string"}}}})";
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

TEST(Cli, InfoReportsTheModel) {
    const Result r = hearth("info -m " + stories() + " --json");
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
    const Result text = hearth("info -m " + stories());
    EXPECT_NE(text.out.find("layers          5"), std::string::npos) << text.out;
}

TEST(Cli, InfoShowsQwen2Specifics) {
    const Result r = hearth("info --json -m " + q(test::shared("conformance/qwen2/qwen2.Q8_0.gguf")));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["architecture"], "qwen2");
    EXPECT_EQ(j["attention_bias"], true);
    const Result s = hearth("info --json -m " + stories());
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
    const Result r = hearth("perplexity -m " + stories() + " -f " + q(test::shared("conformance/texts/ppl-text.txt")) +
                            " -c 128 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tokens"], 986);
    EXPECT_EQ(j["chunks"], 7);
    EXPECT_EQ(j["scored_tokens"], 441);
    EXPECT_NEAR(j["ppl"].get<double>(), 11.984608, 11.984608 * 5e-3);
}

TEST(Cli, BenchReportsSpeeds) {
    const Result r = hearth("bench -m " + stories() + " -p 32 -n 8 -r 2 -t 2 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_GT(j["pp"]["median"].get<double>(), 0);
    EXPECT_GT(j["tg"]["median"].get<double>(), 0);
    EXPECT_EQ(j["pp"]["runs"].size(), 2u);
    EXPECT_EQ(j["threads"], 2);
}

// The batched decode test (a server's continuous batch): B sequences with D cells of context each.
TEST(Cli, BenchBatchedDecode) {
    const Result r = hearth("bench -m " + stories() + " -p 0 -n 8 -r 2 -t 2 -b 4 -d 40 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_FALSE(j.contains("pp"));
    EXPECT_EQ(j["tg"]["batch"], 4);
    EXPECT_EQ(j["tg"]["depth"], 40);
    EXPECT_GT(j["tg"]["median"].get<double>(), 0);
    EXPECT_EQ(j["tg"]["runs"].size(), 2u);
    const Result bad = hearth("bench -m " + stories() + " -b 0");
    EXPECT_NE(bad.code, 0);
    EXPECT_NE(bad.err.find("batch"), std::string::npos) << bad.err;
}

TEST(Cli, SynthQuantizeRun) {
    const std::string f16 = tmp_dir() + "/tiny.f16.gguf", q8 = tmp_dir() + "/tiny.q8_0.gguf",
                      q4k = tmp_dir() + "/tiny.q4km.gguf";
    Result r = hearth("synth --shape embd=256,layers=2,heads=4,kv_heads=2,ff=512 --vocab " + stories() + " -o " + f16);
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
    expect_one_line_error(hearth("run -m " + stories() + " -c 8 -p 'Once upon a time there was a little girl named Lily'"),
                          "context");
    expect_one_line_error(hearth("run -m " + stories() + " -t 0 -p hi"), "threads");
    expect_one_line_error(hearth("bench -m " + stories() + " -t 0"), "threads");
    expect_one_line_error(hearth("run -m " + stories() + " -p hi --top-p 0"), "top_p");
    expect_one_line_error(hearth("quantize " + stories() + " " + tmp_dir() + "/q.gguf Q9_9"), "Q9_9");
    expect_one_line_error(hearth("synth --shape nonsense -o " + tmp_dir() + "/s.gguf"), "nonsense");
}

TEST(Cli, HelpOnEverySubcommand) {
    for (const char* sub : {"info", "run", "bench", "perplexity", "quantize", "synth", "chat-template"}) {
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
    r = hearth("chat-template -m " + stories() + " --messages " + dir + "/messages.json");
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
    expect_one_line_error(hearth("chat-template -m " + stories() + " --name tool_use --messages " + dir +
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

}  // namespace
}  // namespace hearth
