// `hearth serve` end to end over HTTP (cpp-httplib's client against an in-process Server on a free port), with
// the trained stories260K model: answers equal plain greedy decoding, streaming equals non-streaming, concurrent
// requests do not disturb each other, errors are OpenAI-shaped with the right status, a disconnected client's
// request is cancelled and its KV blocks freed.
#include <gtest/gtest.h>

#include <map>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <cmath>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/forward.h"
#include "serve/openai.h"
#include "serve/server.h"
#include "serve_fixture.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {
namespace {

using nlohmann::json;

using Fixture = ServerFixture;

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

// logprobs: the reported logprob of each token is log-softmax of the model's logits (checked against a
// plain decode), top alternatives are sorted and hold the greedy choice first, token bytes spell the text,
// streaming reports the same entries, and the completions API's arrays line up with text offsets.
TEST(Serve, LogprobsMatchTheModel) {
    Fixture f;
    auto c = f.client();
    const std::string prompt = "Once upon a time";
    const json r = post(c, "/v1/completions", {{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0}, {"logprobs", 3}});
    const json& lp = r["choices"][0]["logprobs"];
    ASSERT_TRUE(lp.is_object()) << r.dump();
    const std::string text = r["choices"][0]["text"];
    ASSERT_EQ(lp["tokens"].size(), 12u);
    ASSERT_EQ(lp["token_logprobs"].size(), 12u);
    ASSERT_EQ(lp["top_logprobs"].size(), 12u);
    ASSERT_EQ(lp["text_offset"].size(), 12u);
    std::string spelled;
    for (size_t i = 0; i < 12; ++i) {
        const double l = lp["token_logprobs"][i];
        EXPECT_LE(l, 0.0);
        const json& top = lp["top_logprobs"][i];
        ASSERT_EQ(top.size(), 3u) << top.dump();
        double best = -1e9;
        for (const auto& [tok, v] : top.items()) best = std::max(best, v.get<double>());
        EXPECT_NEAR(l, best, 1e-6) << "greedy picks the most likely token";
        EXPECT_EQ(lp["text_offset"][i].get<int64_t>(), static_cast<int64_t>(prompt.size() + spelled.size()));
        spelled += lp["tokens"][i].get<std::string>();
    }
    EXPECT_EQ(spelled, text);

    // The first token's logprob against log-softmax of a plain decode's logits.
    {
        ContextParams cp;
        cp.n_ctx = 256;
        cp.n_threads = 2;
        Context ctx(*f.model, cp);
        const std::vector<int32_t> toks = f.vocab.encode(prompt, true, true);
        Batch b;
        for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], static_cast<int32_t>(i), 0, i + 1 == toks.size());
        const std::vector<float>& l = ctx.decode(b);
        const float mx = *std::max_element(l.begin(), l.end());
        double z = 0;
        for (float v : l) z += std::exp(static_cast<double>(v - mx));
        EXPECT_NEAR(lp["token_logprobs"][0].get<double>(), -std::log(z), 1e-4);  // the argmax: logit - max = 0
    }

    // Chat: non-streamed and streamed entries agree; bytes spell the content; top_logprobs 0 gives none.
    const json req = {{"messages", {{{"role", "user"}, {"content", "Lily"}}}}, {"max_tokens", 10}, {"temperature", 0.8},
                      {"seed", 7}, {"logprobs", true}, {"top_logprobs", 2}};
    const json whole = post(c, "/v1/chat/completions", req);
    const json& content = whole["choices"][0]["logprobs"]["content"];
    ASSERT_EQ(content.size(), whole["usage"]["completion_tokens"].get<size_t>() -
                                  (whole["choices"][0]["finish_reason"] == "stop" ? 1 : 0));
    std::string bytes;
    for (const json& e : content) {
        for (int b : e["bytes"]) bytes.push_back(static_cast<char>(b));
        ASSERT_EQ(e["top_logprobs"].size(), 2u);
        EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(), e["top_logprobs"][1]["logprob"].get<double>());
        EXPECT_GE(e["top_logprobs"][0]["logprob"].get<double>(), e["logprob"].get<double>());
    }
    EXPECT_EQ(bytes, whole["choices"][0]["message"]["content"]);
    json sreq = req;
    sreq["stream"] = true;
    auto sr = c.Post("/v1/chat/completions", sreq.dump(), "application/json");
    ASSERT_TRUE(sr);
    json streamed = json::array();
    for (const json& ev : sse_events(sr->body))
        if (!ev["choices"].empty() && ev["choices"][0]["logprobs"].is_object())
            for (const json& e : ev["choices"][0]["logprobs"]["content"]) streamed.push_back(e);
    EXPECT_EQ(streamed, content);
    json none = req;
    none["top_logprobs"] = 0;
    const json n = post(c, "/v1/chat/completions", none);
    for (const json& e : n["choices"][0]["logprobs"]["content"]) EXPECT_TRUE(e["top_logprobs"].empty());
    json off = req;
    off.erase("logprobs");
    off.erase("top_logprobs");
    EXPECT_TRUE(post(c, "/v1/chat/completions", off)["choices"][0]["logprobs"].is_null());
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
    // Structured output that cannot be enforced is refused, never generated unconstrained.
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                       {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", {{"not", json::object()}}}}}}}}
                      .dump(),
                  "application/json"),
           400, "response_format.json_schema.schema");
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"top_logprobs", 3}}.dump(), "application/json"),
           400, "top_logprobs");
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"logprobs", true}, {"top_logprobs", 21}}.dump(),
                  "application/json"),
           400, "top_logprobs");
    expect(c.Post("/v1/chat/completions",
                  json{{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                       {"tools", {{{"type", "function"},
                                   {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"unevaluatedProperties", false}}}}}}}}}
                      .dump(),
                  "application/json"),
           400, "tools[0].function.parameters");
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
    auto one_model = c.Get("/v1/models/" + id);
    ASSERT_TRUE(one_model);
    EXPECT_EQ(one_model->status, 200);
    EXPECT_EQ(json::parse(one_model->body), models["data"][0]);
    auto other = c.Get("/v1/models/gpt-9");
    ASSERT_TRUE(other);
    EXPECT_EQ(other->status, 404);
    EXPECT_EQ(json::parse(other->body)["error"]["code"], "model_not_found");
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

// A piece of /tokenize's with_pieces (a string, or the byte values of a piece that is not valid UTF-8) as bytes.
std::string piece_bytes(const json& p) {
    if (p.is_string()) return p.get<std::string>();
    EXPECT_TRUE(p.is_array()) << p;
    std::string s;
    for (const json& b : p) {
        EXPECT_TRUE(b.is_number_integer() && b.get<int>() >= 0 && b.get<int>() < 256) << p;
        s += static_cast<char>(b.get<int>());
    }
    EXPECT_FALSE(tok::is_valid_utf8(s)) << "a valid piece must be a string: " << p;
    return s;
}

// llama-server's /tokenize and /detokenize: the ids equal the vocabulary's encode() under llama-server's defaults
// (add_special false, parse_special true), the pieces concatenate to the text (after the SPM prefix space), and
// /detokenize gives the text back, for ASCII, accented and CJK text (byte tokens in stories260K).
TEST(Serve, TokenizeAndDetokenize) {
    Fixture f;
    auto c = f.client();
    const tok::Vocab& v = f.vocab;
    const std::string prefix = v.add_space_prefix() ? " " : "";
    bool saw_bytes = false;
    for (const std::string text : {"Once upon a time", "Gr\xC3\xBC\xC3\x9F" "e aus \xE6\x9D\xB1\xE4\xBA\xAC, caf\xC3\xA9",
                                   "two\nlines and  spaces"}) {
        const json t = post(c, "/tokenize", {{"content", text}});
        const std::vector<int32_t> ids = t["tokens"].get<std::vector<int32_t>>();
        EXPECT_EQ(ids, v.encode(text, /*add_special=*/false, /*parse_special=*/true)) << text;
        ASSERT_FALSE(ids.empty());
        EXPECT_NE(ids.front(), v.bos());
        EXPECT_EQ(post(c, "/detokenize", {{"tokens", ids}})["content"], text);

        const json b = post(c, "/tokenize", {{"content", text}, {"add_special", true}});
        std::vector<int32_t> with_bos = {v.bos()};
        with_bos.insert(with_bos.end(), ids.begin(), ids.end());
        EXPECT_EQ(b["tokens"].get<std::vector<int32_t>>(), with_bos);

        const json p = post(c, "/tokenize", {{"content", text}, {"with_pieces", true}});
        ASSERT_EQ(p["tokens"].size(), ids.size());
        std::string joined;
        for (size_t i = 0; i < ids.size(); ++i) {
            EXPECT_EQ(p["tokens"][i]["id"], ids[i]);
            saw_bytes |= p["tokens"][i]["piece"].is_array();
            joined += piece_bytes(p["tokens"][i]["piece"]);
        }
        EXPECT_EQ(joined, prefix + text);
    }
    EXPECT_TRUE(saw_bytes) << "the CJK text should need byte tokens";

    // parse_special (default true): "<s>" in the text is the BOS id; false: ordinary pieces.
    const std::string special = v.text(v.bos()) + "Once";
    const json parsed = post(c, "/tokenize", {{"content", special}});
    EXPECT_EQ(parsed["tokens"][0], v.bos());
    EXPECT_EQ(parsed["tokens"].get<std::vector<int32_t>>(), v.encode(special, false, true));
    const json plain = post(c, "/tokenize", {{"content", special}, {"parse_special", false}});
    const std::vector<int32_t> plain_ids = plain["tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(plain_ids, v.encode(special, false, false));
    EXPECT_EQ(std::count(plain_ids.begin(), plain_ids.end(), v.bos()), 0);
    EXPECT_EQ(post(c, "/detokenize", {{"tokens", plain_ids}})["content"], special);
    // Control tokens are written as their text; ids that end inside a character end in U+FFFD.
    const std::string bos_text = v.text(v.bos());
    const std::string bos_first = post(c, "/detokenize", {{"tokens", {v.bos(), parsed["tokens"][1]}}})["content"];
    EXPECT_EQ(bos_first.rfind(bos_text, 0), 0u) << bos_first;
    std::vector<int32_t> cut = v.encode("\xE6\x9D\xB1", false, false);
    ASSERT_GE(cut.size(), 2u);
    cut.pop_back();
    EXPECT_EQ(post(c, "/detokenize", {{"tokens", cut}})["content"], "\xEF\xBF\xBD");
    EXPECT_EQ(post(c, "/detokenize", {{"tokens", json::array()}})["content"], "");
    EXPECT_EQ(post(c, "/tokenize", {{"content", ""}})["tokens"], json::array());
}

TEST(Serve, TokenizeErrorsAreOpenAiShaped) {
    ServerOptions o;
    o.api_key = "sekret";
    Fixture f(o);
    auto c = f.client();
    const std::string n = std::to_string(f.vocab.n_tokens());
    auto expect = [&](const std::string& path, const std::string& body, int status, const std::string& param,
                      const std::string& needle = "") {
        auto r = c.Post(path, body, "application/json");
        ASSERT_TRUE(r) << path;
        EXPECT_EQ(r->status, status) << path << " " << body << " -> " << r->body;
        const json j = json::parse(r->body);
        ASSERT_TRUE(j.contains("error")) << r->body;
        EXPECT_EQ(j["error"]["type"], "invalid_request_error") << r->body;
        if (!param.empty()) {
            EXPECT_EQ(j["error"]["param"], param) << r->body;
        }
        if (!needle.empty()) {
            EXPECT_NE(j["error"]["message"].get<std::string>().find(needle), std::string::npos) << r->body;
        }
    };
    const std::string ok = json{{"content", "hi"}}.dump();
    expect("/tokenize", ok, 401, "");
    expect("/detokenize", json{{"tokens", json::array({1})}}.dump(), 401, "");
    c.set_bearer_token_auth("sekret");
    auto good = c.Post("/tokenize", ok, "application/json");
    ASSERT_TRUE(good);
    EXPECT_EQ(good->status, 200) << good->body;

    expect("/tokenize", "{\"content\": ", 400, "");
    expect("/tokenize", "[\"hi\"]", 400, "");
    expect("/tokenize", "{}", 400, "content");
    expect("/tokenize", json{{"content", 5}}.dump(), 400, "content");
    expect("/tokenize", json{{"content", {"a", "b"}}}.dump(), 400, "content");
    expect("/tokenize", json{{"content", "hi"}, {"add_special", "yes"}}.dump(), 400, "add_special");
    expect("/tokenize", json{{"content", "hi"}, {"with_pieces", 1}}.dump(), 400, "with_pieces");
    expect("/tokenize", json{{"content", "hi"}, {"parse_special", "no"}}.dump(), 400, "parse_special");

    expect("/detokenize", "not json", 400, "");
    expect("/detokenize", "{}", 400, "tokens");
    expect("/detokenize", json{{"tokens", "1 2 3"}}.dump(), 400, "tokens");
    expect("/detokenize", json{{"tokens", {1, "x"}}}.dump(), 400, "tokens", "tokens[1]");
    expect("/detokenize", json{{"tokens", {1, 2.5}}}.dump(), 400, "tokens", "tokens[1]");
    expect("/detokenize", json{{"tokens", {1, f.vocab.n_tokens()}}}.dump(), 400, "tokens", "token id " + n);
    expect("/detokenize", json{{"tokens", {1, f.vocab.n_tokens()}}}.dump(), 400, "tokens", n + " tokens");
    expect("/detokenize", json{{"tokens", json::array({-1})}}.dump(), 400, "tokens", "token id -1");
    expect("/detokenize", "{\"tokens\": [18446744073709551615]}", 400, "tokens", "18446744073709551615");
}

TEST(Serve, ConstantTimeEqual) {
    EXPECT_TRUE(constant_time_equal("abc", "abc"));
    EXPECT_FALSE(constant_time_equal("abc", "abd"));
    EXPECT_FALSE(constant_time_equal("abc", "ab"));
    EXPECT_FALSE(constant_time_equal("", "a"));
    EXPECT_TRUE(constant_time_equal("", ""));
}

// POST whose response body is handed to on_data as it arrives (this cpp-httplib has no such Post overload).
httplib::Result post_streaming(httplib::Client& c, const std::string& path, const std::string& body,
                               std::function<bool(const char*, size_t)> on_data) {
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body;
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [on_data](const char* d, size_t n, uint64_t, uint64_t) { return on_data(d, n); };
    return c.send(req);
}

// Prometheus value of a metric line "name value".
double metric(const std::string& text, const std::string& name) {
    const size_t p = text.find("\n" + name + " ");
    return p == std::string::npos ? -1.0 : std::stod(text.substr(p + name.size() + 2));
}

// Requests sharing a long system prompt: the later ones attach its cached KV blocks (the hit counter grows by
// whole blocks), answer exactly as a plain decode, and the cached blocks are not counted as used.
TEST(Serve, PrefixCacheServesASharedSystemPrompt) {
    Fixture f;
    auto c = f.client();
    std::string system = "You are a storyteller.";
    for (int i = 0; i < 6; ++i) system += " Once upon a time there was a little girl named Lily who loved to play.";
    auto ask = [&](const std::string& q) {
        return post(c, "/v1/completions", {{"prompt", system + " " + q}, {"max_tokens", 8}, {"temperature", 0}});
    };
    const json a = ask("Tom");
    EXPECT_EQ(a["choices"][0]["text"], greedy(f, system + " Tom", 8));
    const std::string m1 = c.Get("/metrics")->body;
    EXPECT_EQ(metric(m1, "hearth_prefix_cache_hit_tokens_total"), 0.0) << m1;
    EXPECT_GT(metric(m1, "hearth_kv_blocks_cached"), 0.0) << m1;
    EXPECT_EQ(metric(m1, "hearth_kv_blocks_used"), 0.0) << m1;
    const json b = ask("Sue");
    EXPECT_EQ(b["choices"][0]["text"], greedy(f, system + " Sue", 8));
    const std::string m2 = c.Get("/metrics")->body;
    const double hit = metric(m2, "hearth_prefix_cache_hit_tokens_total");
    const int64_t prompt_tokens = b["usage"]["prompt_tokens"];
    EXPECT_GE(hit, static_cast<double>(prompt_tokens - 32)) << m2;  // all but the last (partial) blocks
    EXPECT_EQ(static_cast<int64_t>(hit) % 16, 0);
    EXPECT_GT(metric(m2, "hearth_prefix_cache_hit_rate"), 0.3) << m2;
}

// Speculation per request: "lookup" and "draft" (stories260K drafting for itself) give the text of plain greedy
// decoding; /metrics counts the verification steps and the kept drafts; "draft" without a draft model and an
// unknown mode are 400s naming the field.
TEST(Serve, SpeculativeRequestsGiveTheSameTextAndAreCounted) {
    const std::unique_ptr<Model> draft = Model::load(test::shared("models/stories260K.gguf"));
    ServerOptions o;
    o.draft_model = draft.get();
    o.draft_max = 6;
    Fixture f(o);
    auto c = f.client();
    const std::string prompt = "Once upon a time, there was a little girl named Lily. She loved to play";
    const std::string want = greedy(f, prompt, 60);
    std::map<std::string, std::pair<double, double>> counted;  // per mode: (steps, kept drafts) it added
    for (const char* mode : {"off", "lookup", "draft"}) {
        const std::string before = c.Get("/metrics")->body;
        const json r = post(c, "/v1/completions", {{"prompt", prompt}, {"max_tokens", 60}, {"temperature", 0},
                                                   {"speculative", mode}});
        EXPECT_EQ(r["choices"][0]["text"], want) << mode;
        const std::string after = c.Get("/metrics")->body;
        counted[mode] = {metric(after, "hearth_speculative_steps_total") - metric(before, "hearth_speculative_steps_total"),
                         metric(after, "hearth_speculative_accepted_tokens_total") -
                             metric(before, "hearth_speculative_accepted_tokens_total")};
    }
    EXPECT_EQ(counted["off"].first, 0.0);
    EXPECT_GT(counted["lookup"].first, 0.0);
    EXPECT_GT(counted["draft"].first, 0.0);
    EXPECT_LT(counted["draft"].first, 20.0);  // 60 tokens in under 20 verification steps: the self-drafts stand
    EXPECT_GT(counted["draft"].second, 40.0);
    const std::string m = c.Get("/metrics")->body;
    EXPECT_GT(metric(m, "hearth_speculative_tokens_per_step"), 2.0) << m;
    EXPECT_GT(metric(m, "hearth_speculative_acceptance_rate"), 0.0) << m;
    const json bad = post(c, "/v1/completions", {{"prompt", "hi"}, {"speculative", "maybe"}}, 400);
    EXPECT_EQ(bad["error"]["param"], "speculative");

    Fixture plain;
    auto pc = plain.client();
    const json no_draft = post(pc, "/v1/completions", {{"prompt", "hi"}, {"speculative", "draft"}}, 400);
    EXPECT_NE(no_draft["error"]["message"].get<std::string>().find("needs a draft model"), std::string::npos) << no_draft;
}

// SIGTERM on the real binary: an in-flight stream finishes, a new request gets 503 meanwhile, and the process
// exits 0 once drained.
TEST(Serve, SigtermDrainsTheRealServer) {
    const int probe = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    getsockname(probe, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin_port);
    close(probe);
    const std::string log = test::tmp_dir() + "/sigterm.log";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string model = test::shared("models/stories260K.gguf"), p = std::to_string(port);
        freopen(log.c_str(), "w", stderr);
        execl(HEARTH_BINARY, HEARTH_BINARY, "serve", "-m", model.c_str(), "--port", p.c_str(), "-t", "2", "--ctx",
              "2048", "--drain", "60", static_cast<char*>(nullptr));
        _exit(127);
    }
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    bool up = false;
    for (int i = 0; i < 500 && !up; ++i) {
        auto h = c.Get("/health");
        up = h && h->status == 200;
        if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(up) << test::read_file(log);

    // A long stream; SIGTERM once its first tokens have arrived.
    std::string body;
    std::atomic<bool> streaming{false};
    int status = 0;
    std::thread client([&] {
        httplib::Client sc("127.0.0.1", port);
        sc.set_read_timeout(60, 0);
        const std::string req = json{{"prompt", "Once upon a time"}, {"max_tokens", 1500}, {"stream", true},
                                     {"temperature", 0}}.dump();
        auto r = post_streaming(sc, "/v1/completions", req, [&](const char* d, size_t n) {
                             body.append(d, n);
                             streaming = true;
                             return true;
                         });
        status = r ? r->status : -1;
    });
    while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    // New work is refused while the stream drains (the listener stays up until then).
    int refused = 0;
    for (int i = 0; i < 200 && refused != 503; ++i) {
        auto r = c.Post("/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 2}}.dump(), "application/json");
        refused = r ? r->status : -1;
        if (refused == 200) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // SIGTERM not seen yet
    }
    client.join();
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    const std::string err = test::read_file(log);
    EXPECT_EQ(refused, 503) << err;
    EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << err;
    EXPECT_EQ(status, 200);
    const std::vector<json> events = sse_events(body);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length") << "the in-flight stream ran to its end";
    EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
    EXPECT_NE(err.find("SIGTERM: draining"), std::string::npos) << err;
    EXPECT_NE(err.find("stopped"), std::string::npos) << err;
}

// A drain deadline shorter than the work: the in-flight streams are cancelled at the deadline and stop()
// returns soon after.
TEST(Serve, DrainDeadlineCancelsWhatIsLeft) {
    ServerOptions o;
    o.n_ctx = 8192;
    Fixture f(o);
    std::vector<std::thread> clients;
    std::atomic<int> started{0};
    std::vector<std::string> bodies(4);
    for (int i = 0; i < 4; ++i)
        clients.emplace_back([&, i] {
            auto c = f.client();
            const std::string req = json{{"prompt", "Once upon a time"}, {"max_tokens", 1800}, {"stream", true}}.dump();
            bool counted = false;
            post_streaming(c, "/v1/completions", req, [&](const char* d, size_t n) {
                       bodies[static_cast<size_t>(i)].append(d, n);
                       if (!counted) counted = true, ++started;
                       return true;
                   });
        });
    while (started < 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto t0 = std::chrono::steady_clock::now();
    f.server->stop(0.2);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (auto& t : clients) t.join();
    EXPECT_LT(took, 5.0);
    for (const std::string& b : bodies) {
        EXPECT_EQ(b.find("data: [DONE]"), std::string::npos) << "a 1800-token stream cannot finish in 0.2 s";
        EXPECT_LT(sse_events(b).size(), 1800u);
    }
}

}  // namespace
}  // namespace hearth::serve
