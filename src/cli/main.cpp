#include <cstdio>
#include <exception>

#include "base/error.h"
#include "cli/commands.h"
#include "cli/common.h"

int main(int argc, char** argv) {
    CLI::App app{"hearth: a local-first LLM engine"};
    app.require_subcommand(1);
    hearth::cli::add_info(app);
    hearth::cli::add_run(app);
    hearth::cli::add_bench(app);
    hearth::cli::add_perplexity(app);
    hearth::cli::add_quantize(app);
    hearth::cli::add_synth(app);
    hearth::cli::add_chat_template(app);
    hearth::cli::add_embed(app);
    hearth::cli::add_serve(app);
    hearth::cli::add_pull(app);
    hearth::cli::add_list(app);
    hearth::cli::add_rm(app);
    hearth::cli::add_data(app);
    hearth::cli::add_tokenizer(app);
    hearth::cli::add_tokenize(app);
    hearth::cli::add_train(app);
    hearth::cli::add_grammar(app);
    hearth::cli::add_needle(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const hearth::cli::ExitStatus& s) {  // the command has said what it had to
        std::fflush(stdout);
        return s.code;
    } catch (const hearth::Error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "error: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
