// `hearth pull hf:OWNER/REPO/FILE.gguf`: fetches a GGUF from the Hugging Face hub into the local store, so that
// `-m NAME` finds it. The download logic lives in store/ (it is not CLI-specific); this file only reports.
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "store/model_store.h"

namespace hearth::cli {

void add_pull(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "pull", "Download hf:OWNER/REPO/FILE.gguf[@REVISION] from the Hugging Face hub into the model store "
                "(resumable, sha256-verified; HEARTH_HF_ENDPOINT overrides the hub, HF_TOKEN authenticates)");
    struct Opts {
        std::string spec, sha256;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("spec", o->spec, "hf:OWNER/REPO/FILE.gguf, optionally @REVISION (default main)")->required();
    cmd->add_option("--sha256", o->sha256, "Expected sha256 (overrides the one the hub sends)");
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o] {
        store::PullOptions po;
        po.sha256 = o->sha256;
        const store::PullResult r = store::pull(o->spec, po);
        const store::Entry& e = r.entry;
        if (!r.already_present && r.expected_from.empty())
            fmt::print(stderr,
                       "warning: {}: sha256 not verified (the server sent none and no --sha256 was given); "
                       "recorded {}\n",
                       e.name, e.sha256);
        if (o->json) {
            const nlohmann::json j = {{"name", e.name},
                                      {"path", e.path},
                                      {"url", e.url},
                                      {"revision", e.revision},
                                      {"size", e.size},
                                      {"sha256", e.sha256},
                                      {"verified", e.verified},
                                      {"sha256_source", r.expected_from},
                                      {"already_present", r.already_present},
                                      {"resumed_from", r.resumed_from}};
            fmt::print("{}\n", j.dump(2));
            return;
        }
        if (r.already_present) {
            fmt::print("{} is already in the store ({}); hearth rm it to pull again\n", e.name, e.path);
            return;
        }
        fmt::print("pulled {} ({:.1f} MiB{}) -> {}\n", e.name, static_cast<double>(e.size) / 1048576.0,
                   r.resumed_from > 0 ? fmt::format(", resumed at {:.1f} MiB", r.resumed_from / 1048576.0) : "",
                   e.path);
        if (!r.expected_from.empty()) fmt::print("sha256 {} verified ({})\n", e.sha256, r.expected_from);
    });
}

}  // namespace hearth::cli
