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
        std::string arch, shape, vocab, out, type = "F16", pooling;
        uint64_t seed = 0;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    std::string shapes;
    for (const std::string& n : synth_shape_names()) shapes += n + " | ";
    cmd->add_option("--shape", o->shape,
                    shapes + "embd=E,layers=L,heads=H,kv_heads=K,ff=F[,arch=A][,vocab=V][,head_dim=D][,ctx=C]"
                             "[,experts=N,experts_used=K,ff_exp=F][,window=W][,token_types=T][,pooling=P]...")
        ->required();
    cmd->add_option("--arch", o->arch,
                    "Architecture (llama, qwen2, qwen3, qwen3moe, gemma3, granite, phi3, bert): the shape's own by "
                    "default; sets it for an explicit shape without arch=, and must match a named shape's");
    cmd->add_option("--vocab", o->vocab, "Tokenizer: vocab GGUF, tokenizer.json or encoder.json (+ vocab.bpe)");
    cmd->add_option("--type", o->type, "Weight type: F16 (default), BF16 or F32");
    cmd->add_option("--pooling", o->pooling, "bert shapes: pooling type written to the file (none, mean, cls, last)");
    cmd->add_option("--seed", o->seed, "Random seed");
    cmd->add_option("-o,--output", o->out, "Output GGUF")->required();
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o] {
        std::string spec = o->shape;
        // An explicit shape without arch= takes --arch; otherwise --arch only checks the shape's.
        const bool explicit_spec = spec.find('=') != std::string::npos;
        const bool has_arch = spec.rfind("arch=", 0) == 0 || spec.find(",arch=") != std::string::npos;
        if (!o->arch.empty() && explicit_spec && !has_arch) spec = "arch=" + o->arch + "," + spec;
        SynthOptions so;
        so.shape = synth_shape(spec);
        so.shape.name = o->shape;
        if (!o->arch.empty() && o->arch != so.shape.arch)
            fail("synth: --arch {} does not match shape '{}', which is {}", o->arch, o->shape, so.shape.arch);
        if (!o->pooling.empty()) {
            if (so.shape.arch != "bert") fail("synth: --pooling applies to bert shapes, not {}", so.shape.arch);
            so.shape.pooling = synth_pooling(o->pooling);
        }
        so.vocab_path = o->vocab;
        so.seed = o->seed;
        if (!dtype_from_name(o->type, so.type)) fail("unknown type '{}'", o->type);
        std::unique_ptr<Progress> bar;
        const SynthResult r = synth_model(so, o->out, [&](int done, int total) {
            if (!bar) bar = std::make_unique<Progress>("synth " + o->shape, total);
            bar->update(done);
        });
        if (bar) bar->finish();
        if (o->json) {
            fmt::print("{}\n", nlohmann::json{{"output", o->out},
                                              {"shape", o->shape},
                                              {"arch", so.shape.arch},
                                              {"type", o->type},
                                              {"n_params", r.n_params},
                                              {"n_vocab", r.n_vocab},
                                              {"bytes", r.bytes}}
                                   .dump(2));
            return;
        }
        fmt::print("wrote {} ({}, {}, {}, {:.1f}M params, {:.1f} MiB of weights)\n", o->out, o->shape,
                   so.shape.arch, o->type, r.n_params / 1e6, r.bytes / 1048576.0);
    });
}

}  // namespace hearth::cli
