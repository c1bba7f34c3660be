// hearth_grammar_bench: what structured output costs, on a real vocabulary (Qwen3's 151k tokens by default).
//
// 1. Compile: per schema of the corpus (tests/data/json_schemas), the time from the schema to a CompiledGrammar
//    (compile_json_schema + lowering + FOLLOW sets), and the same plus precompute_all() (every node's token
//    cache, what XGrammar does at compile time). Median and p99 over the schemas.
// 2. Masks: each valid instance of each schema, written compactly in the schema's property order and
//    tokenized with the vocabulary, is teacher-forced through a matcher; every step's fill_mask() is timed.
//    Three settings: "precomputed" (caches built at compile time), "lazy" (caches built on first use, so the
//    first instance of a schema pays for them: its steps carry the cache builds), and "fresh matcher" (a new
//    matcher per step, so no per-sequence memo of masks or walker states helps: the worst case a step can
//    see with built caches). Median and p99 over all steps of all instances.
// 3. End to end (-m MODEL): for a default schema and --e2e-schemas schemas of the corpus, decode N tokens from
//    a prompt at temperature 1 without and with the schema (alternating, R times each, same seeds): per-token
//    time of the decode loop (forward + mask + sampling); slowdown = ratio of the medians. "Cold": the grammar
//    compiled just before, its caches built as generation reaches them (a server's first request with that
//    schema); "warm": compiled with precompute_all (the steady state of a server's grammar cache).
//
// Not a Google Benchmark: the figures are distributions over a corpus (per-step medians and tails), not one
// timed loop.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/error.h"
#include "gguf/gguf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "model/forward.h"
#include "model/model.h"
#include "runtime/batch.h"
#include "runtime/sampler.h"
#include "tokenizer/import.h"
#include "tokenizer/vocab.h"

namespace {

using namespace hearth;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct Stats {
    size_t n = 0;
    double median = 0, p99 = 0, mean = 0, max = 0;
};

Stats stats(std::vector<double> v) {
    Stats s;
    s.n = v.size();
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
    s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    s.p99 = at(0.99);
    s.max = v.back();
    double sum = 0;
    for (double x : v) sum += x;
    s.mean = sum / static_cast<double>(v.size());
    return s;
}

nlohmann::json to_json(const Stats& s) {
    return {{"n", s.n}, {"median", s.median}, {"p99", s.p99}, {"mean", s.mean}, {"max", s.max}};
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(fmt::format("cannot open {}", path));
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct Schema {
    std::string name;
    ojson schema;
    std::vector<std::string> instances;  // compact JSON text
};

std::vector<Schema> load_corpus(const std::string& dir) {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".json") names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    std::vector<Schema> out;
    for (const std::string& name : names) {
        const ojson doc = ojson::parse(read_file(dir + "/" + name));
        Schema s;
        s.name = name;
        s.schema = doc.at("schema");
        for (const ojson& v : doc.at("valid")) s.instances.push_back(v.dump());
        out.push_back(std::move(s));
    }
    if (out.empty()) throw Error(fmt::format("no *.json schemas in {}", dir));
    return out;
}

// Progress on stderr: the mask pass over 151k tokens x 272 schemas takes minutes.
void progress(const char* what, size_t i, size_t n) {
    if (!isatty(fileno(stderr))) return;
    std::fprintf(stderr, "\r%s %zu/%zu", what, i, n);
    if (i == n) std::fputc('\n', stderr);
    std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Structured-output costs: grammar compile time, token-mask time per step, decode slowdown"};
    std::string corpus_dir = std::string(HEARTH_SOURCE_DIR) + "/tests/data/json_schemas";
    std::string vocab_file = std::string(HEARTH_SOURCE_DIR) + "/../shared/tokenizers/qwen3-npm/tokenizer.json";
    std::string model_file, e2e_schema_file;
    int n_predict = 128, repeats = 5, threads = 0;
    size_t max_schemas = 0, e2e_schemas = 8;
    bool json = false, skip_masks = false;
    double show_slow_us = 0;
    app.add_option("--corpus", corpus_dir, "Directory of corpus files ({schema, valid: [...]})");
    app.add_option("--vocab", vocab_file, "tokenizer.json (or vocab GGUF) for the compile and mask passes");
    app.add_option("--max-schemas", max_schemas, "Use only the first N schemas (0 = all)");
    app.add_flag("--skip-masks", skip_masks, "Skip the compile and mask passes (end to end only)");
    app.add_option("-m,--model", model_file, "Model GGUF for the end-to-end decode comparison (skipped without)");
    app.add_option("--schema", e2e_schema_file, "One schema (or corpus file) for the end-to-end run instead of the default set");
    app.add_option("--e2e-schemas", e2e_schemas, "Corpus schemas in the end-to-end comparison (without --schema)");
    app.add_option("-n", n_predict, "Tokens per end-to-end run");
    app.add_option("-r", repeats, "End-to-end runs per setting");
    app.add_option("-t,--threads", threads, "Threads for the end-to-end decode (0 = all cores)");
    app.add_option("--show-slow", show_slow_us, "Print the steps whose precomputed mask took longer than this (us)");
    app.add_flag("--json", json, "Print the figures as one JSON object");
    CLI11_PARSE(app, argc, argv);

    try {
        nlohmann::json report;
        if (!skip_masks) {
            // --- vocabulary -------------------------------------------------------------------------------
            auto t0 = Clock::now();
            if (vocab_file.size() > 5 && vocab_file.substr(vocab_file.size() - 5) == ".gguf") {
                throw Error("--vocab takes a tokenizer.json; for a GGUF's vocabulary use the end-to-end pass (-m)");
            }
            const tok::Vocab vocab = tok::import_vocab(vocab_file, "qwen2");
            const double vocab_load_ms = us_since(t0) / 1000.0;
            t0 = Clock::now();
            const auto table = std::make_shared<const grammar::TokenTable>(grammar::TokenTable::from_vocab(vocab));
            const double table_ms = us_since(t0) / 1000.0;
            report["vocab"] = {{"file", vocab_file}, {"n_tokens", table->size()}, {"load_ms", vocab_load_ms},
                               {"token_table_ms", table_ms}};

            std::vector<Schema> corpus = load_corpus(corpus_dir);
            if (max_schemas > 0 && corpus.size() > max_schemas) corpus.resize(max_schemas);

            // --- compile ------------------------------------------------------------------------------------
            std::vector<double> compile_us, precompute_us, nodes;
            std::vector<std::shared_ptr<grammar::CompiledGrammar>> precomputed;
            std::vector<grammar::Grammar> grammars;
            for (size_t i = 0; i < corpus.size(); ++i) {
                progress("compile", i, corpus.size());
                t0 = Clock::now();
                grammar::Grammar g = grammar::compile_json_schema(corpus[i].schema);
                auto cg = std::make_shared<grammar::CompiledGrammar>(g, table);
                compile_us.push_back(us_since(t0));
                t0 = Clock::now();
                cg->precompute_all();
                precompute_us.push_back(compile_us.back() + us_since(t0));
                nodes.push_back(cg->n_nodes());
                precomputed.push_back(std::move(cg));
                grammars.push_back(std::move(g));
            }
            progress("compile", corpus.size(), corpus.size());
            const Stats compile = stats(compile_us), with_pre = stats(precompute_us), node_stats = stats(nodes);
            report["compile_us"] = to_json(compile);
            report["compile_precompute_us"] = to_json(with_pre);
            report["nodes"] = to_json(node_stats);
            report["schemas"] = corpus.size();

            // --- masks ----------------------------------------------------------------------------------------
            std::vector<double> pre_us, lazy_us, fresh_us, apply_us;
            size_t n_instances = 0;
            std::vector<uint64_t> mask((static_cast<size_t>(table->size()) + 63) / 64);
            std::vector<float> logits(static_cast<size_t>(table->size()));
            const std::vector<int32_t> no_eog;
            for (size_t i = 0; i < corpus.size(); ++i) {
                progress("masks", i, corpus.size());
                auto lazy = std::make_shared<const grammar::CompiledGrammar>(grammars[i], table);
                for (const std::string& text : corpus[i].instances) {
                    ++n_instances;
                    const std::vector<int32_t> toks = vocab.encode(text, false, false);
                    grammar::GrammarMatcher mp(precomputed[i]), ml(lazy);
                    std::string prefix;
                    for (const int32_t tok : toks) {
                        t0 = Clock::now();
                        mp.fill_mask(mask.data());
                        pre_us.push_back(us_since(t0));
                        if (show_slow_us > 0 && pre_us.back() > show_slow_us)
                            fmt::print(stderr, "slow mask {:.0f} us: {} after {}\n", pre_us.back(), corpus[i].name,
                                       nlohmann::json(prefix).dump());
                        t0 = Clock::now();
                        ml.fill_mask(mask.data());
                        lazy_us.push_back(us_since(t0));
                        {
                            grammar::GrammarMatcher fresh(precomputed[i]);
                            if (!prefix.empty() && !fresh.accept_bytes(prefix)) throw Error("prefix rejected");
                            t0 = Clock::now();
                            fresh.fill_mask(mask.data());
                            fresh_us.push_back(us_since(t0));
                        }
                        std::fill(logits.begin(), logits.end(), 0.0f);
                        t0 = Clock::now();
                        mp.apply(logits.data(), table->size(), no_eog);
                        apply_us.push_back(us_since(t0));
                        if (!((mask[static_cast<size_t>(tok) >> 6] >> (tok & 63)) & 1))
                            throw Error(fmt::format("{}: the mask forbids token {} of a valid instance", corpus[i].name, tok));
                        if (!mp.accept_token(tok) || !ml.accept_token(tok))
                            throw Error(fmt::format("{}: token {} of a valid instance rejected", corpus[i].name, tok));
                        prefix += table->bytes[static_cast<size_t>(tok)];
                    }
                    if (!mp.can_end()) throw Error(fmt::format("{}: a valid instance does not complete", corpus[i].name));
                }
            }
            progress("masks", corpus.size(), corpus.size());
            report["instances"] = n_instances;
            report["mask_precomputed_us"] = to_json(stats(pre_us));
            report["mask_lazy_us"] = to_json(stats(lazy_us));
            report["mask_fresh_matcher_us"] = to_json(stats(fresh_us));
            report["apply_us"] = to_json(stats(apply_us));
        }

        // --- end to end -----------------------------------------------------------------------------------------
        if (!model_file.empty()) {
            auto model = Model::load(model_file);
            const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
            // The schemas: --schema, or a default (an object holding an array of strings: long output) and
            // e2e_schemas of the corpus, evenly spaced. Each is compiled when its turn comes, caches cold (as a
            // server's first request with that schema); later runs with it find the caches the first built.
            std::vector<std::pair<std::string, ojson>> schemas;
            if (!e2e_schema_file.empty()) {
                ojson schema = ojson::parse(read_file(e2e_schema_file));
                if (schema.is_object() && schema.contains("schema") && schema.contains("valid")) schema = ojson(schema["schema"]);
                schemas.emplace_back(e2e_schema_file, schema);
            } else {
                schemas.emplace_back("notes (array of strings)", ojson::parse(R"({"type":"object","properties":{"notes":
                    {"type":"array","items":{"type":"string"}}},"required":["notes"],"additionalProperties":false})"));
                const std::vector<Schema> corpus = load_corpus(corpus_dir);
                for (size_t k = 0; k < e2e_schemas && k < corpus.size(); ++k) {
                    const Schema& c = corpus[k * corpus.size() / e2e_schemas];
                    schemas.emplace_back(c.name, c.schema);
                }
            }
            auto table = std::make_shared<const grammar::TokenTable>(grammar::TokenTable::from_vocab(vocab));
            const std::vector<int32_t> prompt = vocab.encode("Write the answer as JSON:", true, true);
            const int32_t n_vocab = static_cast<int32_t>(model->hp.n_vocab);
            ContextParams cp;
            if (threads > 0) cp.n_threads = threads;
            cp.n_ctx = static_cast<int>(prompt.size()) + n_predict + 8;
            // One run: per-token time of the decode loop after the prompt (forward, mask, sampling), and the
            // number of tokens generated (a constrained run stops where its grammar must end).
            // One run: per-token time of the decode loop after the prompt (forward, mask, sampling), the
            // number of tokens generated (a constrained run stops where its grammar must end), and the share of
            // the loop's time spent in the grammar (masking the logits, advancing the matcher): the overhead
            // measured directly, free of the run-to-run noise of the whole step.
            struct RunTimes {
                double ms_per_token = 0;
                int tokens = 0;
                double grammar_pct = 0;
            };
            auto run = [&](const std::shared_ptr<const grammar::CompiledGrammar>& cg, uint64_t seed) {
                Context ctx(*model, cp);
                SamplerParams sp;
                sp.temperature = 1.0f;
                sp.top_k = 0;
                sp.top_p = 1.0f;
                sp.min_p = 0.0f;
                sp.seed = seed;
                Sampler sampler(sp);
                std::optional<grammar::GrammarMatcher> m;
                if (cg) m.emplace(cg);
                Batch batch;
                for (size_t i = 0; i < prompt.size(); ++i)
                    batch.add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
                const std::vector<float>* logits = &ctx.decode(batch);
                std::vector<float> masked;
                int32_t pos = static_cast<int32_t>(prompt.size());
                int generated = 0;
                double grammar_us = 0;
                const auto t0 = Clock::now();
                for (; generated < n_predict; ++generated) {
                    const float* lg = logits->data();
                    if (m) {
                        const auto tg = Clock::now();
                        if (m->must_end()) break;
                        masked.assign(logits->begin(), logits->begin() + n_vocab);
                        m->apply(masked.data(), n_vocab, vocab.eog_ids());
                        lg = masked.data();
                        grammar_us += us_since(tg);
                    }
                    const int32_t tok = sampler.sample(lg, n_vocab);
                    sampler.accept(tok);
                    if (m) {
                        const auto tg = Clock::now();
                        const bool ok = !vocab.is_eog(tok) && m->accept_token(tok);
                        grammar_us += us_since(tg);
                        if (!ok) break;
                    }
                    batch.clear();
                    batch.add(tok, pos++, 0, true);
                    logits = &ctx.decode(batch);
                }
                const double total_us = us_since(t0);
                return RunTimes{total_us / std::max(1, generated) / 1000.0, generated, 100.0 * grammar_us / total_us};
            };
            run(nullptr, 1);  // warm-up: page in the weights
            nlohmann::json rows = nlohmann::json::array();
            std::vector<double> slowdowns, warm_slowdowns, cold_shares, warm_shares, all_free, all_schema;
            for (size_t k = 0; k < schemas.size(); ++k) {
                progress("end to end", k, schemas.size());
                const auto cg = grammar::compile(grammar::compile_json_schema(schemas[k].second), table);
                std::vector<double> free_ms, schema_ms, cold_pct;
                std::vector<int> schema_tokens;
                for (int r = 0; r < repeats; ++r) {  // alternating, so that drift hits both alike
                    const uint64_t seed = 100 + static_cast<uint64_t>(r);
                    free_ms.push_back(run(nullptr, seed).ms_per_token);
                    const RunTimes t = run(cg, seed);
                    schema_ms.push_back(t.ms_per_token);
                    schema_tokens.push_back(t.tokens);
                    cold_pct.push_back(t.grammar_pct);
                }
                // Warm: the same schema with every cache built beforehand (precompute_all, or a server's
                // GrammarCache after earlier requests with it); the free runs above are the baseline.
                auto warm = std::make_shared<grammar::CompiledGrammar>(grammar::compile_json_schema(schemas[k].second), table);
                warm->precompute_all();
                std::vector<double> warm_ms, warm_pct;
                for (int r = 0; r < repeats; ++r) {
                    const RunTimes t = run(warm, 100 + static_cast<uint64_t>(r));
                    warm_ms.push_back(t.ms_per_token);
                    warm_pct.push_back(t.grammar_pct);
                }
                const Stats f = stats(free_ms), c = stats(schema_ms), cw = stats(warm_ms);
                slowdowns.push_back(100.0 * (c.median / f.median - 1.0));
                warm_slowdowns.push_back(100.0 * (cw.median / f.median - 1.0));
                cold_shares.push_back(stats(cold_pct).median);
                warm_shares.push_back(stats(warm_pct).median);
                all_free.insert(all_free.end(), free_ms.begin(), free_ms.end());
                all_schema.insert(all_schema.end(), schema_ms.begin(), schema_ms.end());
                rows.push_back({{"schema", schemas[k].first},
                                {"free_ms_per_token", f.median},
                                {"schema_ms_per_token", c.median},
                                {"schema_tokens", schema_tokens},
                                {"slowdown_pct", slowdowns.back()},
                                {"warm_schema_ms_per_token", cw.median},
                                {"warm_slowdown_pct", warm_slowdowns.back()},
                                {"cold_grammar_pct", cold_shares.back()},
                                {"warm_grammar_pct", warm_shares.back()}});
            }
            progress("end to end", schemas.size(), schemas.size());
            const Stats sd = stats(slowdowns), wsd = stats(warm_slowdowns);
            report["e2e"] = {{"model", model_file},
                             {"n_predict", n_predict},
                             {"repeats", repeats},
                             {"schemas", rows},
                             {"free_ms_per_token", stats(all_free).median},
                             {"schema_ms_per_token", stats(all_schema).median},
                             {"slowdown_pct_median", sd.median},
                             {"slowdown_pct_max", sd.max},
                             {"warm_slowdown_pct_median", wsd.median},
                             {"warm_slowdown_pct_max", wsd.max},
                             {"cold_grammar_pct_median", stats(cold_shares).median},
                             {"cold_grammar_pct_max", stats(cold_shares).max},
                             {"warm_grammar_pct_median", stats(warm_shares).median},
                             {"warm_grammar_pct_max", stats(warm_shares).max}};
        }

        if (json) {
            fmt::print("{}\n", report.dump(2));
            return 0;
        }
        if (report.contains("compile_us")) {
            const auto& v = report["vocab"];
            fmt::print("vocabulary: {} tokens ({}), import {:.0f} ms, token table + byte order {:.0f} ms\n",
                       v["n_tokens"].get<int>(), v["file"].get<std::string>(), v["load_ms"].get<double>(),
                       v["token_table_ms"].get<double>());
            fmt::print("{} schemas, {} instances; automaton nodes per grammar: median {:.0f}, max {:.0f}\n\n",
                       report["schemas"].get<size_t>(), report["instances"].get<size_t>(),
                       report["nodes"]["median"].get<double>(), report["nodes"]["max"].get<double>());
            fmt::print("{:<44} {:>7} {:>10} {:>10} {:>10} {:>10}\n", "figure", "n", "median", "p99", "mean", "max");
            auto row = [&](const char* name, const char* key, double scale, const char* unit) {
                const auto& s = report[key];
                fmt::print("{:<44} {:>7} {:>8.1f}{} {:>8.1f}{} {:>8.1f}{} {:>8.1f}{}\n", name, s["n"].get<size_t>(),
                           s["median"].get<double>() * scale, unit, s["p99"].get<double>() * scale, unit,
                           s["mean"].get<double>() * scale, unit, s["max"].get<double>() * scale, unit);
            };
            row("compile per schema (ms)", "compile_us", 1e-3, "ms");
            row("compile + precompute_all per schema (ms)", "compile_precompute_us", 1e-3, "ms");
            row("mask per token, precomputed (us)", "mask_precomputed_us", 1, "us");
            row("mask per token, lazy caches (us)", "mask_lazy_us", 1, "us");
            row("mask per token, fresh matcher (us)", "mask_fresh_matcher_us", 1, "us");
            row("apply to logits per token (us)", "apply_us", 1, "us");
        }
        if (report.contains("e2e")) {
            const auto& e = report["e2e"];
            fmt::print("\nend to end: {}, {} tokens at temperature 1, {} runs per setting, caches cold at each schema's first run\n",
                       e["model"].get<std::string>(), e["n_predict"].get<int>(), e["repeats"].get<int>());
            fmt::print("{:<40} {:>8} {:>8} {:>9} {:>8} {:>8} {:>9} {:>8}  {}\n", "schema", "free", "cold", "slowdown",
                       "grammar", "warm", "slowdown", "grammar", "tokens (cold runs)");
            for (const auto& r : e["schemas"])
                fmt::print("{:<40} {:>8.2f} {:>8.2f} {:>+8.2f}% {:>7.2f}% {:>8.2f} {:>+8.2f}% {:>7.2f}%  {}\n",
                           r["schema"].get<std::string>(), r["free_ms_per_token"].get<double>(),
                           r["schema_ms_per_token"].get<double>(), r["slowdown_pct"].get<double>(),
                           r["cold_grammar_pct"].get<double>(), r["warm_schema_ms_per_token"].get<double>(),
                           r["warm_slowdown_pct"].get<double>(), r["warm_grammar_pct"].get<double>(),
                           r["schema_tokens"].dump());
            fmt::print("ms per token; grammar = share of the decode loop spent masking and advancing the matcher\n");
            fmt::print("over the schemas: slowdown cold median {:+.2f} % (max {:+.2f} %), warm median {:+.2f} % (max {:+.2f} %); "
                       "grammar share cold median {:.2f} % (max {:.2f} %), warm median {:.2f} % (max {:.2f} %)\n",
                       e["slowdown_pct_median"].get<double>(), e["slowdown_pct_max"].get<double>(),
                       e["warm_slowdown_pct_median"].get<double>(), e["warm_slowdown_pct_max"].get<double>(),
                       e["cold_grammar_pct_median"].get<double>(), e["cold_grammar_pct_max"].get<double>(),
                       e["warm_grammar_pct_median"].get<double>(), e["warm_grammar_pct_max"].get<double>());
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
