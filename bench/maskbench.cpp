// hearth_maskbench (bench/maskbench): MaskBench's method (JSONSchemaBench, Geng et al. 2025) on a directory of
// its files ({"schema", "tests": [{"data", "valid"}]}; by default ../shared/jsonschemabench), judged by
// grammar::run_schema_suite. Per category (the file name before "---") and in total:
//   coverage     schemas compiled (not refused);
//   passing      schemas compiled with every instance judged right;
//   validation   valid instances rejected (share of the valid instances of compiled schemas);
//   invalidation invalid instances accepted (MUST stay 0: the grammar let through what the schema forbids);
//   compile      schema to CompiledGrammar for the vocabulary (compile_json_schema + lowering), p50 / p99;
//   masks        time of every mask while the instances are teacher-forced token by token, p50 / p99 (token
//                caches built lazily, as a server's first request with a schema builds them; the caches of rules
//                earlier schemas had are found by later ones, as in a long-running server, unless --cold).
// Instances are written compactly in the schema's property order and tokenized with a real vocabulary (Qwen3's
// 151,643 tokens from ../shared/tokenizers by default). Not a Google Benchmark: the figures are distributions
// over a corpus.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/progress.h"
#include "gguf/gguf.h"
#include "grammar/check.h"
#include "grammar/matcher.h"
#include "tokenizer/import.h"
#include "tokenizer/vocab.h"

namespace {

using namespace hearth;
using ojson = nlohmann::ordered_json;

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct Tally {
    int schemas = 0, compiled = 0, passing = 0;
    int valid = 0, invalid = 0;  // instances of compiled schemas
    int valid_rejected = 0, invalid_accepted = 0;
    std::vector<double> compile_us, mask_us;

    void add(const grammar::SuiteResult& r, const ojson& file) {
        ++schemas;
        if (!r.compiled) return;
        ++compiled;
        passing += r.passing();
        for (const auto& t : file["tests"]) (t["valid"].get<bool>() ? valid : invalid) += 1;
        valid_rejected += r.valid_rejected;
        invalid_accepted += r.invalid_accepted;
        compile_us.push_back(r.compile_us);
        mask_us.insert(mask_us.end(), r.mask_us.begin(), r.mask_us.end());
    }
    nlohmann::json to_json() const {
        return {{"schemas", schemas},
                {"compiled", compiled},
                {"passing", passing},
                {"coverage_pct", schemas ? 100.0 * compiled / schemas : 0},
                {"passing_pct", schemas ? 100.0 * passing / schemas : 0},
                {"valid_instances", valid},
                {"invalid_instances", invalid},
                {"validation_errors", valid_rejected},
                {"invalidation_errors", invalid_accepted},
                {"compile_ms_p50", percentile(compile_us, 0.5) / 1000},
                {"compile_ms_p99", percentile(compile_us, 0.99) / 1000},
                {"masks", mask_us.size()},
                {"mask_us_p50", percentile(mask_us, 0.5)},
                {"mask_us_p99", percentile(mask_us, 0.99)}};
    }
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"MaskBench's method on JSONSchemaBench files: coverage, correctness, compile and mask times"};
    std::string dir = std::string(HEARTH_SOURCE_DIR) + "/../shared/jsonschemabench";
    std::string vocab_file = std::string(HEARTH_SOURCE_DIR) + "/../shared/tokenizers/qwen3-npm/tokenizer.json";
    std::string model;
    bool bytes = false, json = false, list_failures = false, cold = false;
    size_t max_files = 0;
    app.add_option("dir", dir, "Directory of JSONSchemaBench files (default: ../shared/jsonschemabench)");
    app.add_option("--vocab", vocab_file, "tokenizer.json whose vocabulary tokenizes the instances (default: Qwen3's)");
    app.add_option("-m,--model", model, "Take the vocabulary from this GGUF instead");
    app.add_flag("--bytes", bytes, "Walk instances byte by byte (no vocabulary, no mask timings)");
    app.add_option("--max-files", max_files, "Only the first N files (in name order)");
    app.add_flag("--cold", cold,
                 "Drop the token caches shared across grammars before each schema (each schema as the first one of a "
                 "fresh process; by default later schemas find the caches of rules earlier ones had)");
    app.add_flag("--failures", list_failures, "List every schema refused or judged wrongly, with the reason");
    app.add_flag("--json", json, "Print the figures as one JSON object");
    CLI11_PARSE(app, argc, argv);
    try {
        if (const char* shared = std::getenv("HEARTH_SHARED"); shared && !app.count("dir"))
            dir = std::string(shared) + "/jsonschemabench";
        if (const char* shared = std::getenv("HEARTH_SHARED"); shared && !app.count("--vocab"))
            vocab_file = std::string(shared) + "/tokenizers/qwen3-npm/tokenizer.json";
        std::vector<std::string> files;
        if (!std::filesystem::is_directory(dir)) throw Error("no such directory: " + dir);
        for (const auto& e : std::filesystem::directory_iterator(dir))
            if (e.path().extension() == ".json") files.push_back(e.path().string());
        std::sort(files.begin(), files.end());
        if (files.empty()) throw Error("no .json files in " + dir);
        if (max_files && files.size() > max_files) files.resize(max_files);

        std::optional<tok::Vocab> vocab;
        std::string vocab_name = "bytes";
        if (!bytes) {
            if (!model.empty()) {
                vocab.emplace(tok::Vocab::from_gguf(gguf::File::open(model)));
                vocab_name = model;
            } else {
                vocab.emplace(tok::import_vocab(vocab_file, "qwen2"));
                vocab_name = vocab_file;
            }
        }
        const auto table = std::make_shared<const grammar::TokenTable>(
            vocab ? grammar::TokenTable::from_vocab(*vocab) : grammar::TokenTable{});

        std::map<std::string, Tally> by_category;
        Tally total;
        nlohmann::json failures = nlohmann::json::array();
        Progress bar("maskbench", static_cast<int64_t>(files.size()));
        for (size_t i = 0; i < files.size(); ++i) {
            const std::string name = std::filesystem::path(files[i]).filename().string();
            bar.update(static_cast<int64_t>(i), name);
            std::ifstream in(files[i]);
            ojson file;
            try {
                file = ojson::parse(in);
            } catch (const nlohmann::json::parse_error& e) {
                throw Error(fmt::format("{}: not JSON ({})", files[i], e.what()));
            }
            grammar::SuiteResult r;
            if (cold) grammar::CompiledGrammar::drop_shared_caches();
            try {
                r = grammar::run_schema_suite(file, table, vocab ? &*vocab : nullptr);
            } catch (const Error& e) {
                throw Error(fmt::format("{}: {}", files[i], e.what()));
            }
            const size_t dash = name.find("---");
            by_category[dash == std::string::npos ? "other" : name.substr(0, dash)].add(r, file);
            total.add(r, file);
            if (!r.passing())
                failures.push_back({{"file", name},
                                    {"refused", r.error},
                                    {"validation_errors", r.valid_rejected},
                                    {"invalidation_errors", r.invalid_accepted}});
        }
        bar.finish();

        nlohmann::json report = {{"dir", dir}, {"vocab", vocab_name}, {"n_tokens", table->size()}, {"cold", cold}};
        for (const auto& [name, t] : by_category) report["categories"][name] = t.to_json();
        report["total"] = total.to_json();
        if (list_failures) report["failures"] = failures;
        if (json) {
            fmt::print("{}\n", report.dump());
            return 0;
        }
        fmt::print("vocabulary: {} ({} tokens); {} files in {}\n\n", vocab_name, table->size(), files.size(), dir);
        fmt::print("| category | schemas | coverage | passing | validation errors | invalidation errors | compile p50 / p99 "
                   "(ms) | mask p50 / p99 (µs) |\n|---|---|---|---|---|---|---|---|\n");
        const auto row = [&](const std::string& name, const Tally& t) {
            fmt::print("| {} | {} | {:.1f} % | {:.1f} % | {} of {} | {} of {} | {:.2f} / {:.1f} | {:.1f} / {:.0f} |\n", name,
                       t.schemas, t.schemas ? 100.0 * t.compiled / t.schemas : 0.0,
                       t.schemas ? 100.0 * t.passing / t.schemas : 0.0, t.valid_rejected, t.valid, t.invalid_accepted,
                       t.invalid, percentile(t.compile_us, 0.5) / 1000, percentile(t.compile_us, 0.99) / 1000,
                       percentile(t.mask_us, 0.5), percentile(t.mask_us, 0.99));
        };
        for (const auto& [name, t] : by_category) row(name, t);
        row("**total**", total);
        if (list_failures) {
            fmt::print("\n");
            for (const auto& f : failures)
                fmt::print("{}: {}\n", f["file"].get<std::string>(),
                           f["refused"].get<std::string>().empty()
                               ? fmt::format("{} validation, {} invalidation errors", f["validation_errors"].get<int>(),
                                             f["invalidation_errors"].get<int>())
                               : "refused: " + f["refused"].get<std::string>());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
