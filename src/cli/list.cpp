// `hearth list`: the models in the local store. Architecture and file type come from each GGUF's own metadata,
// not the sidecar, so the table is right even for files copied into the store by hand.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "store/model_store.h"

namespace hearth::cli {
namespace {

// llama.cpp's llama_ftype numbering, which general.file_type records.
const char* ftype_name(uint32_t t) {
    static const std::map<uint32_t, const char*> names = {
        {0, "F32"},      {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},     {8, "Q5_0"},
        {9, "Q5_1"},     {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"},  {14, "Q4_K_S"},
        {15, "Q4_K_M"},  {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {19, "IQ2_XXS"}, {20, "IQ2_XS"},
        {21, "Q2_K_S"},  {22, "IQ3_XS"}, {23, "IQ3_XXS"}, {24, "IQ1_S"}, {25, "IQ4_NL"},  {26, "IQ3_S"},
        {27, "IQ3_M"},   {28, "IQ2_S"},  {29, "IQ2_M"},  {30, "IQ4_XS"}, {31, "IQ1_M"},   {32, "BF16"},
        {36, "TQ1_0"},   {37, "TQ2_0"},  {38, "MXFP4_MOE"},
    };
    const auto it = names.find(t);
    return it == names.end() ? nullptr : it->second;
}

struct Info {
    std::string arch = "?", type = "?";
};

// A file that no longer parses still lists (with "?"), so that `hearth rm` can be found for it.
Info read_info(const std::string& path) {
    Info info;
    try {
        const gguf::File f = gguf::File::open(path);
        info.arch = f.get_str_or("general.architecture", "?");
        const gguf::Value* ft = f.find("general.file_type");
        const char* name = ft ? ftype_name(static_cast<uint32_t>(ft->u)) : nullptr;
        if (name) {
            info.type = name;
        } else {  // no (known) file type: name the tensor type holding the most bytes
            std::map<std::string, size_t> bytes;
            for (const auto& t : f.tensors()) bytes[dtype_name(t.type)] += t.nbytes;
            size_t best = 0;
            for (const auto& [n, b] : bytes)
                if (b > best) best = b, info.type = n;
        }
    } catch (const Error&) {
    }
    return info;
}

std::string human_size(int64_t bytes) {
    const double b = static_cast<double>(bytes);
    if (b >= 1024.0 * 1048576.0) return fmt::format("{:.1f} GiB", b / (1024.0 * 1048576.0));
    return fmt::format("{:.1f} MiB", b / 1048576.0);
}

}  // namespace

void add_list(CLI::App& app) {
    auto* cmd = app.add_subcommand("list", "List the models in the store ($HEARTH_HOME/models or ~/.local/share/hearth/models)");
    auto json = std::make_shared<bool>(false);
    cmd->add_flag("--json", *json, "Print JSON");
    cmd->callback([json] {
        const std::vector<store::Entry> entries = store::list();
        if (*json) {
            nlohmann::json j = {{"root", store::root()}, {"models", nlohmann::json::array()}};
            for (const auto& e : entries) {
                const Info info = read_info(e.path);
                j["models"].push_back({{"name", e.name},
                                       {"path", e.path},
                                       {"size", e.size},
                                       {"architecture", info.arch},
                                       {"file_type", info.type},
                                       {"url", e.url},
                                       {"revision", e.revision},
                                       {"sha256", e.sha256},
                                       {"verified", e.verified},
                                       {"pulled_at", e.pulled_at}});
            }
            fmt::print("{}\n", j.dump(2));
            return;
        }
        if (entries.empty()) {
            fmt::print("no models in {} (hearth pull hf:OWNER/REPO/FILE.gguf adds one)\n", store::root());
            return;
        }
        size_t w = 4;
        for (const auto& e : entries) w = std::max(w, e.name.size());
        fmt::print("{:<{}}  {:>10}  {:<12}  {:<9}  {}\n", "NAME", w, "SIZE", "ARCH", "TYPE", "PULLED");
        for (const auto& e : entries) {
            const Info info = read_info(e.path);
            fmt::print("{:<{}}  {:>10}  {:<12}  {:<9}  {}\n", e.name, w, human_size(e.size), info.arch, info.type,
                       e.pulled_at.empty() ? "-" : e.pulled_at.substr(0, 10));
        }
    });
}

}  // namespace hearth::cli
