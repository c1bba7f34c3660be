#include <unistd.h>

#include <cmath>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/progress.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "lab/train/distributed.h"
#include "lab/train/trainer.h"

namespace hearth::cli {
namespace {

std::string clock_text(double secs) {
    if (!std::isfinite(secs) || secs < 0) return "?";
    const long s = static_cast<long>(secs + 0.5);
    return s >= 3600 ? fmt::format("{}:{:02d}:{:02d}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02d}", s / 60, s % 60);
}

}  // namespace

void add_train(CLI::App& app) {
    auto* cmd = app.add_subcommand("train", "Train a llama model from scratch on a corpus (or continue one)");
    struct Opts {
        lab::TrainOptions t;
        std::string type = "F32";
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    lab::TrainOptions& t = o->t;
    cmd->add_option("-m,--model", t.model,
                    "Shape (a synth shape name, or embd=E,layers=L,heads=H[,kv_heads=K],ff=F[,head_dim=D]"
                    "[,rope_base=B][,tied=0]), or a llama GGUF whose weights to continue training");
    cmd->add_option("--tokenizer", t.tokenizer, "Vocabulary GGUF (hearth tokenizer train)");
    cmd->add_option("--data", t.data, "Corpus folder (hearth data man): trains on its train split, validates on val")
        ->required();
    cmd->add_option("-o,--output", t.output, "The trained model (GGUF); beside it NAME.train.jsonl (the log), "
                                             "NAME.loss.svg (the loss curves) and NAME.ckpt/ (checkpoints)")
        ->required();
    cmd->add_option("--tokens", t.tokens, "Train on about this many tokens");
    cmd->add_option("--minutes", t.minutes, "Or train for about this long (the step count is fixed after a timed step)");
    cmd->add_option("--batch", t.batch, "Sequences per micro-batch (default 16); with MPI, shared between the ranks");
    cmd->add_option("--seq", t.seq, "Tokens per sequence (default 256)");
    cmd->add_option("--accum", t.accum, "Micro-batches accumulated per optimiser step (default 1)");
    cmd->add_option("--lr", t.lr, "Peak learning rate (default 1e-3)");
    cmd->add_option("--min-lr-ratio", t.min_lr_ratio, "The cosine ends at lr times this (default 0.1)");
    cmd->add_option("--warmup", t.warmup, "Warm-up steps (default 5 % of the run)");
    cmd->add_option("--wd", t.weight_decay, "AdamW weight decay on matrices and embeddings (default 0.1)");
    cmd->add_option("--clip", t.clip, "Clip gradients to this global norm (default 1; 0: off)");
    cmd->add_option("--beta1", t.beta1, "AdamW beta1 (default 0.9)");
    cmd->add_option("--beta2", t.beta2, "AdamW beta2 (default 0.95)");
    cmd->add_option("--seed", t.seed, "Seed of the initial weights and the batches (default 0)");
    cmd->add_option("-t,--threads", t.threads, "Threads per process (default: all cores)");
    cmd->add_flag("--recompute", t.recompute, "Keep only each layer's input and recompute the rest in the backward "
                                              "pass (less memory, about a third more compute)");
    cmd->add_flag("--bf16", t.bf16, "Matrix products in bfloat16 (needs AVX512-BF16); weights, gradients and the "
                                    "optimiser stay float");
    cmd->add_option("--eval-every", t.eval_every, "Steps between validations (default: 20 per run)");
    cmd->add_option("--eval-windows", t.eval_windows, "Validation windows each time (default 32; the final "
                                                      "validation takes the whole split)");
    cmd->add_option("--final-eval-windows", t.final_eval_windows,
                    "Windows of the validation after the last step (default: the whole split)");
    cmd->add_option("--checkpoint-every", t.checkpoint_every, "Steps between checkpoints (default: each validation)");
    cmd->add_option("--checkpoint-dir", t.checkpoint_dir, "Checkpoint folder (default NAME.ckpt)");
    cmd->add_option("--resume", t.resume, "Continue from a checkpoint (a step-*.gguf, or a folder: its newest); the "
                                          "run's settings come from it");
    cmd->add_option("--type", o->type, "Weight type of the output: F32 (default), F16 or BF16");
    cmd->add_option("--stop-after", t.stop_after, "Stop after this many steps, with a checkpoint, as Ctrl-C does")
        ->group("");  // for tests
    cmd->add_flag("--json", o->json, "Print the report as JSON");
    cmd->callback([o, cmd] {
        lab::TrainOptions& t = o->t;
        if (cmd->count("--threads")) check_threads(t.threads);
        if (!dtype_from_name(o->type, t.out_type)) fail("unknown type '{}'", o->type);
        lab::Distributed& dist = lab::Distributed::get();
        lab::TrainReport r;
        try {
            std::unique_ptr<Progress> bar;
            r = lab::train(t, [&](const lab::StepInfo& s) {
                if (!bar) bar = std::make_unique<Progress>("train", s.total);
                bar->update(s.step, fmt::format("step {}/{} loss {:.4f}{} {:.0f} tok/s ETA {}", s.step, s.total, s.loss,
                                                s.has_val ? fmt::format(" val {:.4f}", s.val_loss) : "",
                                                s.tokens_per_s, clock_text(s.eta_s)));
                // Without a terminal (logs, CI), a line per validation.
                if (s.has_val && !isatty(2))
                    fmt::print(stderr, "step {}/{} loss {:.4f} val {:.4f} lr {:.3g} {:.0f} tok/s elapsed {} ETA {}\n",
                               s.step, s.total, s.loss, s.val_loss, s.lr, s.tokens_per_s, clock_text(s.elapsed_s),
                               clock_text(s.eta_s));
            });
            if (bar) bar->finish();
        } catch (const Error& e) {
            if (!dist.active() || dist.size() == 1) throw;
            fmt::print(stderr, "error (rank {}): {}\n", dist.rank(), e.what());
            dist.abort(1);
        }
        if (!dist.is_root()) return;
        if (o->json) {
            nlohmann::json j;
            j["output"] = r.interrupted ? "" : r.output;
            j["interrupted"] = r.interrupted;
            j["checkpoint"] = r.checkpoint;
            j["log"] = r.log;
            j["chart"] = r.chart;
            j["steps"] = r.steps;
            j["total_steps"] = r.total_steps;
            j["tokens"] = r.tokens;
            j["n_params"] = r.n_params;
            j["seconds"] = r.seconds;
            j["tokens_per_s"] = r.tokens_per_s;
            j["flops_per_token"] = r.flops_per_token;
            j["gflops_per_s"] = r.gflops_per_s;
            j["train_loss"] = r.train_loss;
            j["ranks"] = r.ranks;
            j["threads"] = r.threads;
            j["bf16"] = r.bf16;
            j["train_tokens_available"] = r.train_tokens_available;
            j["val_tokens_available"] = r.val_tokens_available;
            if (!r.interrupted) {
                j["val_loss"] = r.val_loss;
                j["val_ppl"] = r.val_ppl;
                j["val_windows"] = r.val_windows;
            }
            j["losses"] = r.losses;
            nlohmann::json val = nlohmann::json::array();
            for (const auto& [s, l] : r.val) val.push_back({{"step", s}, {"val_loss", l}});
            j["val"] = val;
            fmt::print("{}\n", j.dump());
        } else if (r.interrupted) {
            fmt::print("stopped at step {}/{}: checkpoint {}\nresume with: hearth train --data {} -o {} --resume {}\n",
                       r.steps, r.total_steps, r.checkpoint, t.data, t.output, r.checkpoint);
        } else {
            fmt::print("trained {:.1f}M parameters for {} steps ({} tokens) in {}: {:.0f} tok/s, {:.1f} GFLOP/s\n",
                       r.n_params / 1e6, r.steps, r.tokens, clock_text(r.seconds), r.tokens_per_s, r.gflops_per_s);
            fmt::print("train loss {:.4f}, validation loss {:.4f} (perplexity {:.2f}) over {} windows\n", r.train_loss,
                       r.val_loss, r.val_ppl, r.val_windows);
            fmt::print("wrote {} ; log {} ; chart {}\n", r.output, r.log, r.chart);
        }
        if (r.interrupted) std::exit(130);
    });
}

}  // namespace hearth::cli
