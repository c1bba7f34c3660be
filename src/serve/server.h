// `hearth serve`: the OpenAI-compatible HTTP server (cpp-httplib) in front of the continuous-batching
// Scheduler. HTTP handler threads parse and validate requests (serve/openai.h), hand them to one engine thread
// that owns the Scheduler and the Context, and receive each request's tokens back through its own channel;
// the engine runs a forward step whenever anything is running or waiting, so requests join and leave between
// steps.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"
#include "runtime/kv_cache.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;               // 0: any free port (see Server::port())
    int n_ctx = 4096;              // KV cells shared by all requests
    KvType kv_type = KvType::F16;  // how they store K and V
    int kv_residual = 32;          // compressed types: recent positions kept in f16
    int parallel = 16;             // requests decoding at once
    int max_waiting = 64;          // queued requests beyond the running ones; more get 429
    int n_threads = 0;             // forward-pass threads (0: every core)
    // Connections served at once. 0: parallel + max_waiting + 8, so that every admitted or queued request has
    // its handler (a streaming handler holds its thread to the end) and there is room left to answer 429s,
    // health checks and metrics while the queue is full.
    int http_threads = 0;
    std::string api_key;           // empty: no authentication
    std::string model_name;        // the id /v1/models reports and requests may name
    size_t max_body_bytes = 8 << 20;  // larger request bodies get 413
    int default_max_tokens = 512;  // when a request sets none (capped by the context)
    bool prefix_cache = true;      // reuse the KV of earlier requests' common leading tokens
    // Structured output: refuse JSON Schema keywords and formats hearth does not enforce (a 400) instead of
    // ignoring them as validators do.
    bool strict_schema = false;
    // Speculative decoding: a draft model of the same vocabulary (not owned; null: "draft" requests are
    // refused), tokens per draft, the step size up to which requests draft (SchedulerParams), and the mode of
    // requests that do not name one ("off", "lookup" or "draft").
    const Model* draft_model = nullptr;
    int draft_max = 8;
    int speculative_max_tokens = 16;
    std::string speculative = "off";
};

class Server {
public:
    // The model and vocab must outlive the server.
    Server(const Model& model, const tok::Vocab& vocab, const ServerOptions& opt);
    ~Server();

    // Binds and starts serving in background threads; throws hearth::Error when the address cannot be bound.
    void start();
    int port() const;
    // Stops accepting requests, lets in-flight ones finish for up to `drain_seconds` (then cancels them), and
    // joins the threads.
    void stop(double drain_seconds = 10.0);
    // Blocks until stop() has been called (from a signal handler thread, say).
    void wait();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// Equal-time comparison of secrets (the API key): the time does not depend on where the strings differ.
bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace hearth::serve
