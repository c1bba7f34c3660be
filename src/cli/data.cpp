#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "lab/data/man_pages.h"

namespace hearth::cli {

namespace {

void add_data_man(CLI::App& data) {
    auto* cmd =
        data.add_subcommand("man", "Plain-text corpus (train / val JSONL + manifest) from the installed man pages");
    struct Opts {
        std::string out, sections, tokenizer;
        std::vector<std::string> roots{"/usr/share/man"};
        double val_fraction = 0.05;
        int threads = 0;
        bool all_languages = false;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-o,--output", o->out, "Output directory (train.jsonl, val.jsonl, manifest.json)")->required();
    cmd->add_option("--root", o->roots, "Man directory holding man1, man2, ... (repeatable)")
        ->default_str("/usr/share/man");
    cmd->add_option("--sections", o->sections, "Only these sections, e.g. 1,2,7 (3 takes man3 whole, 3pm only 3pm)");
    cmd->add_flag("--all-languages", o->all_languages, "Also the translated pages in <lang>/manN");
    cmd->add_option("--val-fraction", o->val_fraction, "Share of page names held out for validation, in [0, 1)")
        ->default_str("0.05");
    cmd->add_option("--tokenizer", o->tokenizer, "GGUF whose tokenizer counts the tokens of each split");
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        lab::ManCorpusOptions mo;
        mo.search.roots = o->roots;
        if (cmd->count("--sections")) mo.search.sections = lab::parse_man_sections(o->sections);
        mo.search.all_languages = o->all_languages;
        mo.val_fraction = o->val_fraction;
        mo.tokenizer = o->tokenizer;
        mo.threads = o->threads;

        const auto start = std::chrono::steady_clock::now();
        std::unique_ptr<Progress> bar;
        std::string bar_stage;
        const lab::ManCorpusReport r =
            lab::build_man_corpus(mo, o->out, [&](const char* stage, size_t done, size_t total) {
                if (bar_stage != stage) {
                    if (bar) bar->finish();
                    bar_stage = stage;
                    bar = std::make_unique<Progress>(bar_stage == "render" ? "rendering man pages" : "counting tokens",
                                                     static_cast<int64_t>(total));
                }
                bar->update(static_cast<int64_t>(done), fmt::format("{}/{}", done, total));
            });
        if (bar) bar->finish();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

        if (o->json) {
            nlohmann::json j = lab::man_corpus_totals_json(r);
            j["output"] = o->out;
            nlohmann::json files = nlohmann::json::object();
            for (const lab::CorpusFile& f : r.files)
                files[f.split] = {
                    {"path", f.path}, {"sha256", f.sha256}, {"bytes", f.bytes}, {"documents", f.documents}};
            j["files"] = files;
            nlohmann::json failed = nlohmann::json::array();
            for (const lab::FailedPage& f : r.failures) failed.push_back({{"path", f.path}, {"reason", f.reason}});
            j["failed_pages"] = failed;
            j["seconds"] = seconds;
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("man pages: {} found, {} rendered, {} failed, {} exact duplicates dropped\n", r.pages_found,
                   r.rendered, r.failed, r.duplicates_dropped);
        for (const auto& [split, t] : {std::pair{"train", r.train}, {"val", r.val}}) {
            fmt::print("{:<5} {:>7} documents, {:>9.2f} MiB of text", split, t.documents, t.bytes / 1048576.0);
            if (r.counted_tokens) fmt::print(", {} tokens", t.tokens);
            fmt::print("\n");
        }
        // The whole list is in the manifest; a terminal gets the first few.
        constexpr size_t kShown = 10;
        for (size_t i = 0; i < r.failures.size() && i < kShown; ++i)
            fmt::print("failed: {}: {}\n", r.failures[i].path, r.failures[i].reason);
        if (r.failures.size() > kShown)
            fmt::print("failed: ... {} more in {}/manifest.json\n", r.failures.size() - kShown, o->out);
        fmt::print("wrote {}/train.jsonl, val.jsonl, manifest.json in {:.1f} s\n", o->out, seconds);
    });
}

}  // namespace

void add_data(CLI::App& app) {
    auto* data = app.add_subcommand("data", "Build training corpora for the lab");
    data->require_subcommand(1);
    add_data_man(*data);
}

}  // namespace hearth::cli
