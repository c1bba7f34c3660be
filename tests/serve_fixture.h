// A hearth server on stories260K or another model (2 threads, 1024 KV cells unless the options say otherwise) on a free port of
// loopback, for the tests that talk to it over HTTP (serve_test, js_test, serve_bench_test).
#pragma once
#include <httplib.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "serve/server.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {

struct ServerFixture {
    std::unique_ptr<Model> model;
    tok::Vocab vocab;
    std::unique_ptr<Server> server;
    explicit ServerFixture(ServerOptions o = {}, const std::string& model_path = test::shared("models/stories260K.gguf"))
        : model(Model::load(model_path)), vocab(tok::Vocab::from_gguf(model->file)) {
        o.port = 0;
        o.n_threads = 2;
        if (o.n_ctx == ServerOptions{}.n_ctx) o.n_ctx = 1024;
        server = std::make_unique<Server>(*model, vocab, o);
        server->start();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(server->port()); }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", server->port());
        c.set_read_timeout(60, 0);
        return c;
    }
};

// Parses an SSE body into its JSON events (stopping at [DONE]).
inline std::vector<nlohmann::json> sse_events(const std::string& body) {
    std::vector<nlohmann::json> out;
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
        const size_t end = body.find("\n\n", pos);
        const std::string data = body.substr(pos + 6, end - pos - 6);
        pos = end;
        if (data == "[DONE]") break;
        out.push_back(nlohmann::json::parse(data));
    }
    return out;
}

}  // namespace hearth::serve
