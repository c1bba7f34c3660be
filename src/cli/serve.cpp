#include <csignal>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "base/error.h"
#include "cli/commands.h"
#include "model/draft.h"
#include "model/model.h"
#include "serve/server.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {
namespace {

// SIGINT / SIGTERM: a thread waiting in sigwait() drains the server (no work in the async handler itself).
void block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace

void add_serve(CLI::App& app) {
    auto* cmd = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
    struct Opts {
        std::string model, host = "127.0.0.1", api_key, api_key_file, name;
        int port = 8080, ctx = 4096, parallel = 16, threads = 0, max_waiting = 64;
        double drain = 10.0;
        bool mmap = false, no_prefix_cache = false, strict_schema = false;
        KvOptions kv;
        std::string draft, speculative = "off";
        int draft_max = 8, speculative_max_tokens = 16;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "GGUF model file, or a store name (hearth list)")->required();
    cmd->add_option("--host", o->host, "Address to listen on (default 127.0.0.1)");
    cmd->add_option("--port", o->port, "Port (default 8080; 0: any free port, printed at start)");
    cmd->add_option("-c,--ctx", o->ctx, "KV cache cells shared by all requests (default 4096)");
    cmd->add_option("--parallel", o->parallel, "Requests decoding at once (default 16)");
    cmd->add_option("--max-waiting", o->max_waiting, "Queued requests beyond those; more get 429 (default 64)");
    cmd->add_option("-t,--threads", o->threads, "Forward-pass threads (default: all cores)");
    cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY'");
    cmd->add_option("--api-key-file", o->api_key_file, "Read the API key from a file (first line)");
    cmd->add_option("--alias", o->name, "Model id reported by /v1/models (default: the model's name)");
    cmd->add_option("--drain", o->drain, "Seconds in-flight requests may finish after SIGTERM (default 10)");
    cmd->add_flag("--mmap", o->mmap, "Map the model file instead of reading it");
    cmd->add_flag("--no-prefix-cache", o->no_prefix_cache,
                  "Do not reuse the KV of earlier requests' common leading tokens (system prompts, history)");
    cmd->add_flag("--strict-schema", o->strict_schema,
                  "Refuse JSON Schema keywords and formats that hearth does not enforce (400), instead of ignoring "
                  "them as validators do");
    add_kv_options(cmd, o->kv);
    cmd->add_option("--draft", o->draft,
                    "Draft model (GGUF file or store name, same vocabulary) for requests with \"speculative\": \"draft\"");
    cmd->add_option("--draft-max", o->draft_max, "Tokens per draft (default 8)")->check(CLI::Range(1, 64));
    cmd->add_option("--speculative", o->speculative,
                    "Speculative decoding for requests that do not choose: off (default), lookup or draft")
        ->check(CLI::IsMember({"off", "lookup", "draft"}));
    cmd->add_option("--speculative-max-tokens", o->speculative_max_tokens,
                    "Requests draft only while a step's decode tokens, drafts included, stay within this many "
                    "(a larger step is compute-bound, where drafts cost what they save; default 16)")
        ->check(CLI::Range(1, 4096));
    cmd->callback([o] {
        if (!o->api_key.empty() && !o->api_key_file.empty()) fail("give --api-key or --api-key-file, not both");
        if (!o->api_key_file.empty()) {
            std::ifstream f(o->api_key_file);
            if (!f) fail("cannot read the API key file {}", o->api_key_file);
            std::getline(f, o->api_key);
            while (!o->api_key.empty() && (o->api_key.back() == '\r' || o->api_key.back() == ' ')) o->api_key.pop_back();
            if (o->api_key.empty()) fail("the API key file {} is empty", o->api_key_file);
        }
        if (o->ctx <= 0) fail("--ctx must be positive (got {})", o->ctx);
        if (o->parallel <= 0) fail("--parallel must be positive (got {})", o->parallel);
        if (o->max_waiting <= 0) fail("--max-waiting must be positive (got {})", o->max_waiting);
        if (o->port < 0 || o->port > 65535) fail("--port must be 0..65535 (got {})", o->port);
        block_stop_signals();  // before any thread starts, so that all of them inherit the mask
        auto model = Model::load(store::resolve_model(o->model), o->mmap);
        const tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
        serve::ServerOptions so;
        so.host = o->host;
        so.port = o->port;
        so.n_ctx = o->ctx;
        {
            ContextParams cp;
            o->kv.apply(cp);
            so.kv_type = cp.kv_type;
            so.kv_residual = cp.kv_residual;
        }
        so.parallel = o->parallel;
        so.max_waiting = o->max_waiting;
        so.n_threads = o->threads;
        so.api_key = o->api_key;
        so.model_name = o->name;
        so.prefix_cache = !o->no_prefix_cache;
        so.strict_schema = o->strict_schema;
        std::unique_ptr<Model> draft_model;
        if (!o->draft.empty()) {
            draft_model = Model::load(store::resolve_model(o->draft), o->mmap);
            check_draft_vocab(vocab, tok::Vocab::from_gguf(draft_model->file));
            so.draft_model = draft_model.get();
        }
        if (o->speculative == "draft" && !draft_model) fail("--speculative draft needs a draft model (--draft MODEL)");
        so.draft_max = o->draft_max;
        so.speculative = o->speculative;
        so.speculative_max_tokens = o->speculative_max_tokens;
        serve::Server server(*model, vocab, so);
        server.start();
        fmt::print(stderr, "hearth serve: listening on http://{}:{} ({}){}\n", o->host, server.port(), o->model,
                   o->api_key.empty() ? "" : ", API key required");
        std::thread stopper([&] {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, SIGINT);
            sigaddset(&set, SIGTERM);
            int sig = 0;
            sigwait(&set, &sig);
            fmt::print(stderr, "hearth serve: {}: draining (up to {} s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", o->drain);
            server.stop(o->drain);
        });
        server.wait();
        stopper.join();
        fmt::print(stderr, "hearth serve: stopped\n");
    });
}

}  // namespace hearth::cli
