// `hearth serve` end to end over HTTP (cpp-httplib's client against an in-process Server on a free port), with
// the trained stories260K model: answers equal plain greedy decoding, streaming equals non-streaming, concurrent
// requests do not disturb each other, errors are OpenAI-shaped with the right status, a disconnected client's
// request is cancelled and its KV blocks freed.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/forward.h"
#include "serve/openai.h"
#include "serve/server.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {
namespace {

using nlohmann::json;

struct Fixture {
    std::unique_ptr<Model> model = Model::load(test::shared("models/stories260K.gguf"));
    tok::Vocab vocab = tok::Vocab::from_gguf(model->file);
    std::unique_ptr<Server> server;
    explicit Fixture(ServerOptions o = {}) {
        o.port = 0;
        o.n_threads = 2;
        if (o.n_ctx == 4096) o.n_ctx = 1024;
        server = std::make_unique<Server>(*model, vocab, o);
        server->start();
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", server->port());
        c.set_read_timeout(60, 0);
        return c;
    }
};

// Greedy continuation by a plain decode loop (the reference for the server's answers).
std::string greedy(const Fixture& f, const std::string& prompt, int n) {
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = 2;
    Context ctx(*f.model, cp);
    std::vector<int32_t> toks = f.vocab.encode(prompt, true, true);
    Batch b;
    for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], static_cast<int32_t>(i), 0, i + 1 == toks.size());
    std::vector<int32_t> out;
    int32_t pos = static_cast<int32_t>(toks.size());
    for (int i = 0; i < n; ++i) {
        const std::vector<float>& l = ctx.decode(b);
        const int32_t t = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
        if (f.vocab.is_eog(t)) break;
        out.push_back(t);
        b.clear();
        b.add(t, pos++, 0, true);
    }
    tok::StreamDecoder dec(f.vocab);
    std::string s;
    for (int32_t t : out) s += dec.push(t);
    return s + dec.flush();
}

json post(httplib::Client& c, const std::string& path, const json& body, int want_status = 200) {
    auto r = c.Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return {};
    EXPECT_EQ(r->status, want_status) << path << " " << r->body;
    return json::parse(r->body);
}

TEST(Serve, CompletionEqualsGreedyDecoding) {
    Fixture f;
    auto c = f.client();
    const json r = post(c, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 0}});
    EXPECT_EQ(r["choices"][0]["text"], greedy(f, "Once upon a time", 24));
    EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(r["usage"]["completion_tokens"], 24);
    EXPECT_EQ(r["object"], "text_completion");
    // Stop strings cut the text and end the request.
    const json s = post(c, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 0},
                                               {"stop", " girl"}});
    const std::string full = greedy(f, "Once upon a time", 24);
    EXPECT_EQ(s["choices"][0]["text"], full.substr(0, full.find(" girl")));
    EXPECT_EQ(s["choices"][0]["finish_reason"], "stop");
}

TEST(Serve, ChatStreamingEqualsNonStreaming) {
    Fixture f;
    auto c = f.client();
    const json req = {{"messages", {{{"role", "system"}, {"content", "Tell a story."}}, {{"role", "user"}, {"content", "Lily"}}}},
                      {"max_tokens", 20}, {"temperature", 0.9}, {"seed", 42}};
    const json whole = post(c, "/v1/chat/completions", req);
    EXPECT_EQ(whole["object"], "chat.completion");
    EXPECT_EQ(whole["choices"][0]["message"]["role"], "assistant");
    json sreq = req;
    sreq["stream"] = true;
    sreq["stream_options"] = {{"include_usage", true}};
    std::string body;
    auto r = c.Post("/v1/chat/completions", httplib::Headers{}, sreq.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    std::string text, finish;
    json usage;
    bool done = false;
    size_t pos = 0;
    while ((pos = r->body.find("data: ", pos)) != std::string::npos) {
        const size_t end = r->body.find("\n\n", pos);
        const std::string data = r->body.substr(pos + 6, end - pos - 6);
        pos = end;
        if (data == "[DONE]") {
            done = true;
            continue;
        }
        const json chunk = json::parse(data);
        EXPECT_EQ(chunk["object"], "chat.completion.chunk");
        if (chunk.contains("usage")) usage = chunk["usage"];
        if (chunk["choices"].empty()) continue;
        const json& ch = chunk["choices"][0];
        if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
        if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
    }
    EXPECT_TRUE(done);
    EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);  // same seed: same tokens
    EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
    EXPECT_EQ(usage, whole["usage"]);
}

TEST(Serve, ConcurrentRequestsEqualEachAlone) {
    ServerOptions o;
    o.parallel = 8;
    Fixture f(o);
    const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Tom and Sue went", "One day",
                                              "The sun was",     "Lily had a", "A big dog",     "They played"};
    std::vector<std::string> got(prompts.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i)
        threads.emplace_back([&, i] {
            auto c = f.client();
            auto r = c.Post("/v1/completions",
                            json{{"prompt", prompts[i]}, {"max_tokens", 16 + 2 * static_cast<int>(i)}, {"temperature", 0}}.dump(),
                            "application/json");
            if (r && r->status == 200) got[i] = json::parse(r->body)["choices"][0]["text"];
        });
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < prompts.size(); ++i)
        EXPECT_EQ(got[i], greedy(f, prompts[i], 16 + 2 * static_cast<int>(i))) << prompts[i];
}

TEST(Serve, ErrorsAreOpenAiShaped) {
    ServerOptions o;
    o.api_key = "sekret";
    o.max_body_bytes = 4096;
    o.n_ctx = 256;
    Fixture f(o);
    auto c = f.client();
    auto expect = [&](httplib::Result r, int status, const std::string& param) {
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, status) << r->body;
        const json j = json::parse(r->body);
        ASSERT_TRUE(j.contains("error")) << r->body;
        EXPECT_TRUE(j["error"].contains("message") && j["error"].contains("type") && j["error"].contains("code"));
        if (!param.empty()) {
            EXPECT_EQ(j["error"]["param"], param) << r->body;
        }
    };
    const std::string ok = json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}}.dump();
    expect(c.Post("/v1/chat/completions", ok, "application/json"), 401, "");
    httplib::Headers wrong = {{"Authorization", "Bearer sekreT"}};
    expect(c.Post("/v1/chat/completions", wrong, ok, "application/json"), 401, "");
    c.set_bearer_token_auth("sekret");
    auto good = c.Post("/v1/chat/completions", ok, "application/json");
    ASSERT_TRUE(good);
    EXPECT_EQ(good->status, 200) << good->body;
    expect(c.Post("/v1/chat/completions", "{\"messages\": [", "application/json"), 400, "");
    expect(c.Post("/v1/chat/completions", json{{"messages", json::array()}}.dump(), "application/json"), 400, "messages");
    expect(c.Post("/v1/chat/completions",
                  json{{"model", "gpt-9"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump(), "application/json"),
           404, "model");
    expect(c.Post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 1000}}.dump(), "application/json"), 400,
           "max_tokens");
    expect(c.Post("/v1/completions", json{{"prompt", std::string(3000, 'a') + " b"}}.dump(), "application/json"), 400, "");
    expect(c.Post("/v1/completions", json{{"prompt", std::string(5000, 'a')}}.dump(), "application/json"), 413, "");
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"response_format", {{"type", "json_object"}}}}.dump(),
                  "application/json"),
           400, "response_format");
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"logprobs", true}}.dump(), "application/json"),
           400, "logprobs");
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                       {"tools", {{{"type", "function"}, {"function", {{"name", "f"}}}}}}}.dump(),
                  "application/json"),
           400, "tools");
    expect(c.Get("/v1/nothing"), 404, "");
}

// One request decoding (parallel 1) and room for one waiting: of five more sent together, one waits and
// succeeds, the others get 429 with Retry-After.
TEST(Serve, QueueFullIs429WithRetryAfter) {
    ServerOptions o;
    o.parallel = 1;
    o.max_waiting = 1;
    Fixture f(o);
    std::atomic<int> n429{0}, n200{0};
    auto send = [&] {
        auto c = f.client();
        auto r = c.Post("/v1/completions", json{{"prompt", "Once"}, {"max_tokens", 600}, {"temperature", 0}}.dump(),
                        "application/json");
        if (!r) return;
        if (r->status == 429) {
            ++n429;
            EXPECT_EQ(r->get_header_value("Retry-After"), "1");
            EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
        } else if (r->status == 200) {
            ++n200;
        }
    };
    std::thread first(send);
    {
        auto c = f.client();
        for (int i = 0; i < 500; ++i) {  // until the first request is running
            if (c.Get("/metrics")->body.find("hearth_requests_running 1\n") != std::string::npos) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
    std::vector<std::thread> more;
    for (int i = 0; i < 5; ++i) more.emplace_back(send);
    for (auto& t : more) t.join();
    first.join();
    EXPECT_GE(n200.load(), 2);  // the running one and the queued one
    EXPECT_GE(n429.load(), 1);
    EXPECT_EQ(n200 + n429, 6);
}

TEST(Serve, DisconnectCancelsAndFreesBlocks) {
    Fixture f;
    {
        // A raw connection: send a streaming request, read the first chunks, hang up.
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        ASSERT_GE(fd, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<uint16_t>(f.server->port()));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        const std::string body = json{{"prompt", "Once upon a time"}, {"max_tokens", 800}, {"stream", true}}.dump();
        const std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        ASSERT_EQ(send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
        std::string got;
        char buf[4096];
        while (got.find("data: ", got.find("data: ") + 1) == std::string::npos) {  // two chunks
            const ssize_t n = recv(fd, buf, sizeof buf, 0);
            ASSERT_GT(n, 0);
            got.append(buf, static_cast<size_t>(n));
        }
        close(fd);
    }
    auto c = f.client();
    std::string m;
    for (int i = 0; i < 200; ++i) {
        m = c.Get("/metrics")->body;
        if (m.find("hearth_requests_running 0\n") != std::string::npos &&
            m.find("hearth_kv_blocks_used 0\n") != std::string::npos)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_NE(m.find("hearth_requests_running 0\n"), std::string::npos) << m;
    EXPECT_NE(m.find("hearth_kv_blocks_used 0\n"), std::string::npos) << m;
    EXPECT_NE(m.find("hearth_time_to_first_token_seconds_bucket"), std::string::npos);
    EXPECT_NE(m.find("hearth_inter_token_latency_seconds_count"), std::string::npos);
}

TEST(Serve, ModelsHealthAndEmbeddings) {
    Fixture f;
    auto c = f.client();
    EXPECT_EQ(json::parse(c.Get("/health")->body)["status"], "ok");
    const json models = json::parse(c.Get("/v1/models")->body);
    ASSERT_EQ(models["data"].size(), 1u);
    const std::string id = models["data"][0]["id"];
    const json e = post(c, "/v1/embeddings", {{"model", id}, {"input", {"Once upon a time", "The cat"}}});
    ASSERT_EQ(e["data"].size(), 2u);
    const std::vector<float> v = e["data"][1]["embedding"].get<std::vector<float>>();
    EXPECT_EQ(static_cast<int64_t>(v.size()), f.model->hp.n_embd);
    double norm = 0;
    for (float x : v) norm += static_cast<double>(x) * x;
    EXPECT_NEAR(norm, 1.0, 1e-5);
    // base64: the same floats, little-endian.
    const json b = post(c, "/v1/embeddings", {{"input", "The cat"}, {"encoding_format", "base64"}});
    std::vector<float> one = {v.begin(), v.end()};
    EXPECT_EQ(b["data"][0]["embedding"], base64_encode(one.data(), one.size() * sizeof(float)));
}

TEST(Serve, ConstantTimeEqual) {
    EXPECT_TRUE(constant_time_equal("abc", "abc"));
    EXPECT_FALSE(constant_time_equal("abc", "abd"));
    EXPECT_FALSE(constant_time_equal("abc", "ab"));
    EXPECT_FALSE(constant_time_equal("", "a"));
    EXPECT_TRUE(constant_time_equal("", ""));
}

}  // namespace
}  // namespace hearth::serve
