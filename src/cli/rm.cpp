// `hearth rm NAME`: removes a model from the local store. Names resolve as for `-m`, so a unique short name
// works, but an ambiguous one is refused rather than guessed.
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "store/model_store.h"

namespace hearth::cli {

void add_rm(CLI::App& app) {
    auto* cmd = app.add_subcommand("rm", "Remove a model from the store");
    auto name = std::make_shared<std::string>();
    cmd->add_option("name", *name, "Store name (OWNER/REPO/FILE.gguf, or a unique end of it)")->required();
    cmd->callback([name] { fmt::print("removed {}\n", store::remove(*name)); });
}

}  // namespace hearth::cli
