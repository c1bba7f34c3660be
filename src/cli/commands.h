// Subcommands of the single `hearth` binary: each file registers one with CLI11.
#pragma once
#include <CLI/CLI.hpp>

namespace hearth::cli {

void add_info(CLI::App& app);
void add_run(CLI::App& app);
void add_bench(CLI::App& app);
void add_perplexity(CLI::App& app);
void add_quantize(CLI::App& app);
void add_synth(CLI::App& app);
void add_chat_template(CLI::App& app);
void add_serve(CLI::App& app);
void add_embed(CLI::App& app);
void add_pull(CLI::App& app);
void add_list(CLI::App& app);
void add_rm(CLI::App& app);
void add_data(CLI::App& app);
void add_tokenizer(CLI::App& app);
void add_tokenize(CLI::App& app);  // tokenize and detokenize
void add_train(CLI::App& app);
void add_grammar(CLI::App& app);  // grammar check
void add_needle(CLI::App& app);

}  // namespace hearth::cli
