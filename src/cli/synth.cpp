#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/progress.h"
#include "cli/commands.h"
#include "model/synth.h"

namespace hearth::cli {

void add_synth(CLI::App& app) {
    auto* cmd = app.add_subcommand("synth", "Write a random-weight model of a realistic shape");
    struct Opts {
        std::string arch = "llama", shape, vocab, out, type = "F16";
        uint64_t seed = 0;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--arch", o->arch, "Architecture (llama)");
    cmd->add_option("--shape", o->shape,
                    "smollm2-135m | smollm2-360m | llama3.2-1b | tiny | embd=E,layers=L,heads=H,kv_heads=K,ff=F[,vocab=V]")
        ->required();
    cmd->add_option("--vocab", o->vocab, "Tokenizer: vocab GGUF, tokenizer.json or encoder.json (+ vocab.bpe)");
    cmd->add_option("--type", o->type, "Weight type: F16 (default), BF16 or F32");
    cmd->add_option("--seed", o->seed, "Random seed");
    cmd->add_option("-o,--output", o->out, "Output GGUF")->required();
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o] {
        if (o->arch != "llama") fail("synth: architecture '{}' is not supported yet (llama)", o->arch);
        SynthOptions so;
        so.shape = synth_shape(o->shape);
        so.vocab_path = o->vocab;
        so.seed = o->seed;
        if (!dtype_from_name(o->type, so.type)) fail("unknown type '{}'", o->type);
        std::unique_ptr<Progress> bar;
        const size_t bytes = synth_model(so, o->out, [&](int done, int total) {
            if (!bar) bar = std::make_unique<Progress>("synth " + o->shape, total);
            bar->update(done);
        });
        if (bar) bar->finish();
        if (o->json) {
            fmt::print("{}\n", nlohmann::json{{"output", o->out}, {"shape", o->shape}, {"type", o->type}, {"bytes", bytes}}.dump(2));
            return;
        }
        fmt::print("wrote {} ({}, {}, {:.1f} MiB of weights)\n", o->out, o->shape, o->type, bytes / 1048576.0);
    });
}

}  // namespace hearth::cli
