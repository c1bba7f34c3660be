#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "model/quantize.h"
#include "store/model_store.h"

namespace hearth::cli {

void add_quantize(CLI::App& app) {
    auto* cmd = app.add_subcommand("quantize", "Convert an F32/F16/BF16 model into a quantized type");
    struct Opts {
        std::string in, out, type;
        int threads = 0;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("input", o->in, "Source GGUF (F32, F16 or BF16 weights)")->required();
    cmd->add_option("output", o->out, "Destination GGUF")->required();
    cmd->add_option("type", o->type, "Target: Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_M Q4_K Q4_K_M Q5_K Q5_K_M Q6_K IQ4_NL F16 BF16 F32")
        ->required();
    cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o, cmd] {
        if (cmd->count("--threads")) check_threads(o->threads);
        std::unique_ptr<Progress> p;
        const QuantizeReport r = quantize_model(store::resolve_model(o->in), o->out, o->type, o->threads,
                                                [&](int done, int total, const std::string& name) {
                                                    if (!p) p = std::make_unique<Progress>("quantize " + o->type, total);
                                                    p->update(done, name);
                                                });
        if (p) p->finish();
        if (o->json) {
            nlohmann::json j{{"input", o->in},           {"output", o->out},
                             {"type", o->type},          {"bytes_in", r.bytes_in},
                             {"bytes_out", r.bytes_out}, {"tensors_quantized", r.tensors_quantized},
                             {"tensors_copied", r.tensors_copied}, {"seconds", r.seconds}};
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("{} -> {} ({}): {:.1f} MiB -> {:.1f} MiB, {} tensors quantized, {} copied, {:.1f} s\n", o->in,
                   o->out, o->type, r.bytes_in / 1048576.0, r.bytes_out / 1048576.0, r.tensors_quantized,
                   r.tensors_copied, r.seconds);
    });
}

}  // namespace hearth::cli
