// The model store end to end: the real `hearth` binary pulls from an in-process cpp-httplib server that lays
// files out as the Hugging Face hub does (/OWNER/REPO/resolve/REVISION/FILE, the sha256 in X-Linked-Etag,
// Range requests, a redirect to a "CDN" path), since these machines have no internet. Covers pull / list / info
// -m NAME / rm, resuming after a dropped connection, hash and format rejection, HTTP errors and bad specs.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "store/model_store.h"
#include "test_util.h"

namespace hearth::store {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// sha256 by an independent implementation (coreutils), so the test does not check hearth against itself.
std::string sha256sum(const std::string& path) {
    const test::RunResult r = test::run_command("sha256sum '" + path + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out.substr(0, 64);
}

// A fresh store folder per test.
std::string new_home() {
    static int n = 0;
    const std::string h = test::tmp_dir() + "/store_home" + std::to_string(n++);
    fs::create_directories(h);
    return h;
}

struct Hub {
    httplib::Server svr;
    std::thread thread;
    int port = 0;
    const std::string model_path = test::shared("models/stories260K.gguf");
    const std::string model = test::read_file(model_path);
    const std::string model_sha = sha256sum(model_path);
    std::mutex mu;
    std::vector<std::string> ranges;  // the Range header of every request to a file ("" when absent)
    std::atomic<int> drops{0};        // requests the /test/flaky file cut short

    void record(const httplib::Request& req) {
        std::lock_guard<std::mutex> lock(mu);
        ranges.push_back(req.get_header_value("Range"));
    }
    // The whole file; cpp-httplib answers a Range request itself (206 + Content-Range) from the body.
    void serve_model(const httplib::Request& req, httplib::Response& res, const std::string& etag) {
        record(req);
        if (!etag.empty()) res.set_header("X-Linked-Etag", "\"" + etag + "\"");
        res.set_content(model, "application/octet-stream");
    }

    Hub() {
        svr.Get("/test/stories/resolve/main/stories260K.gguf",
                [this](const httplib::Request& req, httplib::Response& res) { serve_model(req, res, model_sha); });
        svr.Get("/test/stories/resolve/v2/stories260K.gguf",
                [this](const httplib::Request& req, httplib::Response& res) { serve_model(req, res, model_sha); });
        svr.Get("/test/noetag/resolve/main/stories260K.gguf",
                [this](const httplib::Request& req, httplib::Response& res) { serve_model(req, res, ""); });
        svr.Get("/test/badhash/resolve/main/stories260K.gguf", [this](const httplib::Request& req, httplib::Response& res) {
            serve_model(req, res, std::string(64, '0'));
        });
        // The hub's habit for LFS files: a 302 carrying the sha256, to a CDN whose own ETag is something else.
        svr.Get("/test/redir/resolve/main/stories260K.gguf", [this](const httplib::Request&, httplib::Response& res) {
            res.status = 302;
            res.set_header("Location", "/cdn/blob/stories260K");
            res.set_header("X-Linked-Etag", "\"" + model_sha + "\"");
        });
        svr.Get("/cdn/blob/stories260K", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            res.set_header("ETag", "\"d41d8cd98f00b204e9800998ecf8427e\"");
            res.set_content(model, "application/octet-stream");
        });
        // First request: Content-Length promises the whole file, half is sent, then the connection drops.
        // Later requests are served normally (with Range).
        svr.Get("/test/flaky/resolve/main/stories260K.gguf", [this](const httplib::Request& req, httplib::Response& res) {
            if (drops.load() > 0) return serve_model(req, res, model_sha);
            record(req);
            drops++;
            res.set_header("X-Linked-Etag", "\"" + model_sha + "\"");
            const size_t half = model.size() / 2;
            res.set_content_provider(model.size(), "application/octet-stream",
                                     [this, half](size_t offset, size_t length, httplib::DataSink& sink) {
                                         if (offset >= half) return false;  // drop the connection
                                         sink.write(model.data() + offset, std::min(length, half - offset));
                                         return true;
                                     });
        });
        // A server without Range support: 200 and the whole file whatever was asked. cpp-httplib always honours
        // ranges, so the handler forgets the parsed one (the Request is only const by signature).
        svr.Get("/test/norange/resolve/main/stories260K.gguf", [this](const httplib::Request& req, httplib::Response& res) {
            const_cast<httplib::Request&>(req).ranges.clear();
            serve_model(req, res, model_sha);
        });
        svr.Get("/test/text/resolve/main/notes.gguf", [this](const httplib::Request& req, httplib::Response& res) {
            record(req);
            res.set_header("X-Linked-Etag", "\"" + text_sha + "\"");
            res.set_content(text, "text/plain");
        });
        port = svr.bind_to_any_port("127.0.0.1");
        thread = std::thread([this] { svr.listen_after_bind(); });
        while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~Hub() {
        svr.stop();
        thread.join();
    }

    // Not a GGUF, with an honest hash.
    const std::string text = std::string(4096, 'x') + "\nnot a model\n";
    const std::string text_sha = [this] {
        const std::string p = test::tmp_dir() + "/notes.txt";
        std::ofstream(p, std::ios::binary) << text;
        return sha256sum(p);
    }();

    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port); }
    std::vector<std::string> seen() {
        std::lock_guard<std::mutex> lock(mu);
        return ranges;
    }
};

test::RunResult hearth(const std::string& home, const std::string& endpoint, const std::string& args) {
    return test::run_command("HEARTH_HOME='" + home + "' HEARTH_HF_ENDPOINT='" + endpoint + "' " +
                             std::string(HEARTH_BINARY) + " " + args);
}

// Every file and folder under the store root, relative, sorted.
std::vector<std::string> store_files(const std::string& home) {
    std::vector<std::string> out;
    const fs::path root = fs::path(home) / "models";
    if (!fs::exists(root)) return out;
    for (const auto& e : fs::recursive_directory_iterator(root)) out.push_back(e.path().lexically_relative(root).string());
    std::sort(out.begin(), out.end());
    return out;
}

TEST(StoreSpec, ParsesHubSpecs) {
    Spec s = parse_spec("hf:Owner-1/repo.name_x/model-Q4_K_M.gguf");
    EXPECT_EQ(s.owner, "Owner-1");
    EXPECT_EQ(s.repo, "repo.name_x");
    EXPECT_EQ(s.file, "model-Q4_K_M.gguf");
    EXPECT_EQ(s.revision, "main");
    EXPECT_EQ(s.name(), "Owner-1/repo.name_x/model-Q4_K_M.gguf");
    s = parse_spec("hf:o/r/sub/dir/m.gguf@v1.0");
    EXPECT_EQ(s.file, "sub/dir/m.gguf");
    EXPECT_EQ(s.revision, "v1.0");
    setenv("HEARTH_HF_ENDPOINT", "http://example.test:8/", 1);
    EXPECT_EQ(hub_url(s), "http://example.test:8/o/r/resolve/v1.0/sub/dir/m.gguf");
    unsetenv("HEARTH_HF_ENDPOINT");
    EXPECT_EQ(hub_url(parse_spec("hf:a/b/c.gguf")), "https://huggingface.co/a/b/resolve/main/c.gguf");

    const std::vector<std::pair<std::string, std::string>> bad = {
        {"a/b/c.gguf", "expected hf:"},       {"hf:a/b", "expected hf:OWNER/REPO/FILE.gguf"},
        {"hf:../x/y.gguf", "'..' is not allowed"}, {"hf:a/../y.gguf", "'..' is not allowed"},
        {"hf:a//c.gguf", "empty repository"},  {"hf:a/b/c.bin", "must be a .gguf"},
        {"hf:a/b/.gguf", "must be a .gguf"},   {"hf:a/b/c.gguf@", "empty revision"},
        {"hf:a/b/c d.gguf", "has a character"}, {"hf:a/b/x/../c.gguf", "'..' is not allowed"},
    };
    for (const auto& [spec, want] : bad) {
        try {
            parse_spec(spec);
            ADD_FAILURE() << spec << " was accepted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << spec << ": " << e.what();
        }
    }
}

TEST(StoreCli, PullListInfoRm) {
    Hub hub;
    const std::string home = new_home();
    test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const json j = json::parse(r.out);
    const std::string stored = home + "/models/test/stories/stories260K.gguf";
    EXPECT_EQ(j["name"], "test/stories/stories260K.gguf");
    EXPECT_EQ(j["path"], stored);
    EXPECT_EQ(j["sha256"], hub.model_sha);
    EXPECT_EQ(j["verified"], true);
    EXPECT_EQ(j["sha256_source"], "X-Linked-Etag");
    EXPECT_EQ(j["size"], static_cast<int64_t>(hub.model.size()));
    EXPECT_EQ(test::read_file(stored), hub.model);
    EXPECT_FALSE(fs::exists(stored + ".part"));
    const json side = json::parse(test::read_file(stored + ".json"));
    EXPECT_EQ(side["url"], hub.endpoint() + "/test/stories/resolve/main/stories260K.gguf");
    EXPECT_EQ(side["sha256"], hub.model_sha);
    EXPECT_EQ(side["revision"], "main");
    EXPECT_EQ(side["size"], static_cast<int64_t>(hub.model.size()));
    EXPECT_EQ(side["pulled_at"].get<std::string>().size(), 20u);  // 2026-01-02T03:04:05Z
    EXPECT_EQ(hub.seen(), std::vector<std::string>{""});  // a fresh download asks for no range

    // A second pull downloads nothing.
    r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("already in the store"), std::string::npos) << r.out;
    EXPECT_EQ(hub.seen().size(), 1u);

    r = hearth(home, hub.endpoint(), "list");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("test/stories/stories260K.gguf"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("llama"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(side["pulled_at"].get<std::string>().substr(0, 10)), std::string::npos) << r.out;

    r = hearth(home, hub.endpoint(), "list --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const json l = json::parse(r.out);
    ASSERT_EQ(l["models"].size(), 1u) << r.out;
    EXPECT_EQ(l["models"][0]["name"], "test/stories/stories260K.gguf");
    EXPECT_EQ(l["models"][0]["architecture"], "llama");
    EXPECT_EQ(l["models"][0]["size"], static_cast<int64_t>(hub.model.size()));
    EXPECT_EQ(l["models"][0]["sha256"], hub.model_sha);
    EXPECT_FALSE(l["models"][0]["file_type"].get<std::string>().empty());
    EXPECT_NE(l["models"][0]["file_type"], "?");

    // -m takes the full name, hf: form, or a unique end of it.
    for (const std::string name : {"test/stories/stories260K.gguf", "hf:test/stories/stories260K.gguf@main",
                                   "stories260K.gguf", "stories260K", "stories/stories260K"}) {
        r = hearth(home, hub.endpoint(), "info --json -m " + name);
        ASSERT_EQ(r.code, 0) << name << ": " << r.err;
        EXPECT_EQ(json::parse(r.out)["architecture"], "llama") << name;
    }
    // A path still works, and a name that is neither is a clear error.
    r = hearth(home, hub.endpoint(), "info -m " + hub.model_path);
    EXPECT_EQ(r.code, 0) << r.err;
    r = hearth(home, hub.endpoint(), "info -m stories26");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("no such file or stored model: stories26 (hearth list shows the store)"), std::string::npos)
        << r.err;
    r = hearth(home, hub.endpoint(), "run -m stories260K -p 'Once upon a time' -n 4 --temp 0");
    EXPECT_EQ(r.code, 0) << r.err;

    r = hearth(home, hub.endpoint(), "rm stories260K");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("removed test/stories/stories260K.gguf"), std::string::npos) << r.out;
    EXPECT_EQ(store_files(home), std::vector<std::string>{});  // empty owner/repo folders go too
    EXPECT_TRUE(fs::exists(home + "/models"));
    r = hearth(home, hub.endpoint(), "rm stories260K");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("no stored model named stories260K"), std::string::npos) << r.err;
    r = hearth(home, hub.endpoint(), "list --json");
    EXPECT_EQ(json::parse(r.out)["models"].size(), 0u);
}

TEST(StoreCli, ResumesAfterADroppedConnection) {
    Hub hub;
    const std::string home = new_home();
    const std::string stored = home + "/models/test/flaky/stories260K.gguf";
    test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/flaky/stories260K.gguf");
    ASSERT_NE(r.code, 0);
    EXPECT_NE(r.err.find(hub.endpoint() + "/test/flaky/resolve/main/stories260K.gguf: download interrupted"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("run the same pull again to resume"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(stored));
    ASSERT_TRUE(fs::exists(stored + ".part"));
    const size_t kept = fs::file_size(stored + ".part");
    EXPECT_EQ(kept, hub.model.size() / 2);
    EXPECT_EQ(test::read_file(stored + ".part"), hub.model.substr(0, kept));
    // Only complete models are listed.
    r = hearth(home, hub.endpoint(), "list --json");
    EXPECT_EQ(json::parse(r.out)["models"].size(), 0u) << r.out;

    r = hearth(home, hub.endpoint(), "pull hf:test/flaky/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["resumed_from"], static_cast<int64_t>(kept));
    EXPECT_EQ(j["sha256"], hub.model_sha);
    EXPECT_EQ(j["verified"], true);
    EXPECT_EQ(hub.seen(), (std::vector<std::string>{"", "bytes=" + std::to_string(kept) + "-"}));
    EXPECT_EQ(test::read_file(stored), hub.model);
    EXPECT_FALSE(fs::exists(stored + ".part"));
}

TEST(StoreCli, ACompletePartIsVerifiedNotRefetched) {
    // A pull killed between the last byte and the rename leaves a complete .part: the server answers the
    // Range request with 416, and the hash decides.
    Hub hub;
    const std::string home = new_home();
    const std::string stored = home + "/models/test/stories/stories260K.gguf";
    fs::create_directories(fs::path(stored).parent_path());
    std::ofstream(stored + ".part", std::ios::binary) << hub.model;
    const test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["verified"], true);
    EXPECT_EQ(j["resumed_from"], static_cast<int64_t>(hub.model.size()));  // nothing was downloaded again
    EXPECT_EQ(hub.seen(), std::vector<std::string>{"bytes=" + std::to_string(hub.model.size()) + "-"});
    EXPECT_EQ(test::read_file(stored), hub.model);
}

TEST(StoreCli, AStalePartLongerThanTheFileStartsOver) {
    Hub hub;
    const std::string home = new_home();
    const std::string stored = home + "/models/test/stories/stories260K.gguf";
    fs::create_directories(fs::path(stored).parent_path());
    std::ofstream(stored + ".part", std::ios::binary) << hub.model << "trailing junk";
    const test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["resumed_from"], 0);
    EXPECT_EQ(hub.seen().size(), 2u);
    EXPECT_EQ(hub.seen().back(), "");
    EXPECT_EQ(test::read_file(stored), hub.model);
}

TEST(StoreCli, AServerThatIgnoresRangeRestartsTheDownload) {
    Hub hub;
    const std::string home = new_home();
    const std::string stored = home + "/models/test/norange/stories260K.gguf";
    fs::create_directories(fs::path(stored).parent_path());
    std::ofstream(stored + ".part", std::ios::binary) << std::string(1000, 'z');  // must not survive
    const test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/norange/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("the server does not resume downloads; starting over"), std::string::npos) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["resumed_from"], 0);
    EXPECT_EQ(j["sha256"], hub.model_sha);
    EXPECT_EQ(hub.seen(), std::vector<std::string>{"bytes=1000-"});
    EXPECT_EQ(test::read_file(stored), hub.model);
}

TEST(StoreCli, WrongHashIsRejectedAndNothingStored) {
    Hub hub;
    const std::string home = new_home();
    test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/badhash/stories260K.gguf");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("sha256 mismatch: expected " + std::string(64, '0') + " (X-Linked-Etag), got " + hub.model_sha),
              std::string::npos)
        << r.err;
    EXPECT_EQ(store_files(home), std::vector<std::string>{});

    // --sha256 overrides a correct server hash.
    const std::string wrong(64, 'a');
    r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf --sha256 " + wrong);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("expected " + wrong + " (--sha256), got " + hub.model_sha), std::string::npos) << r.err;
    EXPECT_EQ(store_files(home), std::vector<std::string>{});
    r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf --sha256 xyz");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("--sha256 must be 64 hex digits"), std::string::npos) << r.err;

    // ... and verifies a server that sends none (in upper case, as users paste it).
    std::string upper = hub.model_sha;
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    r = hearth(home, hub.endpoint(), "pull hf:test/noetag/stories260K.gguf --json --sha256 " + upper);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["sha256_source"], "--sha256");
}

TEST(StoreCli, UnverifiedDownloadSaysSo) {
    Hub hub;
    const std::string home = new_home();
    const test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/noetag/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("sha256 not verified"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(hub.model_sha), std::string::npos) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["verified"], false);
    EXPECT_EQ(j["sha256"], hub.model_sha);
}

TEST(StoreCli, HttpErrorsNameTheUrl) {
    Hub hub;
    const std::string home = new_home();
    test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/missing/model.gguf");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find(hub.endpoint() + "/test/missing/resolve/main/model.gguf: HTTP 404"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(store_files(home), std::vector<std::string>{});  // no empty .part or folders left behind
    r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf@nope");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("/test/stories/resolve/nope/stories260K.gguf: HTTP 404"), std::string::npos) << r.err;

    // Nothing listens on a port the kernel just handed out and took back.
    int free_port = 0;
    {
        const int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
        ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
        free_port = ntohs(addr.sin_port);
        close(fd);
    }
    const std::string dead = "http://127.0.0.1:" + std::to_string(free_port);
    r = hearth(home, dead, "pull hf:test/stories/stories260K.gguf");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find(dead + "/test/stories/resolve/main/stories260K.gguf: "), std::string::npos) << r.err;
    EXPECT_EQ(store_files(home), std::vector<std::string>{});
}

TEST(StoreCli, NonGgufDownloadIsRejected) {
    Hub hub;
    const std::string home = new_home();
    const test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/text/notes.gguf");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("/test/text/resolve/main/notes.gguf: the download is not a valid GGUF file"), std::string::npos)
        << r.err;
    EXPECT_EQ(store_files(home), std::vector<std::string>{});
}

TEST(StoreCli, BadSpecsAreRefused) {
    const std::string home = new_home();
    for (const std::string spec : {"hf:a/b", "hf:../x/y.gguf", "a/b/c.gguf", "hf:a/b/c.bin"}) {
        const test::RunResult r = hearth(home, "http://127.0.0.1:9", "pull " + spec);
        EXPECT_NE(r.code, 0) << spec;
        EXPECT_NE(r.err.find("error: bad model spec '" + spec + "'"), std::string::npos) << r.err;
    }
    EXPECT_EQ(store_files(home), std::vector<std::string>{});
}

TEST(StoreCli, FollowsRedirectsAndRefusesAmbiguousNames) {
    Hub hub;
    const std::string home = new_home();
    test::RunResult r = hearth(home, hub.endpoint(), "pull hf:test/redir/stories260K.gguf --json");
    ASSERT_EQ(r.code, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["verified"], true);
    EXPECT_EQ(j["sha256_source"], "X-Linked-Etag");  // from the 302, not the CDN's ETag
    EXPECT_EQ(test::read_file(home + "/models/test/redir/stories260K.gguf"), hub.model);

    r = hearth(home, hub.endpoint(), "pull hf:test/stories/stories260K.gguf@v2 --json");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["revision"], "v2");
    r = hearth(home, hub.endpoint(), "info -m stories260K.gguf");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("matches several stored models: test/redir/stories260K.gguf, test/stories/stories260K.gguf"),
              std::string::npos)
        << r.err;
    r = hearth(home, hub.endpoint(), "rm stories260K");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.err.find("matches several stored models"), std::string::npos) << r.err;
    r = hearth(home, hub.endpoint(), "info --json -m redir/stories260K");
    EXPECT_EQ(r.code, 0) << r.err;
    r = hearth(home, hub.endpoint(), "rm test/redir/stories260K.gguf");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(store_files(home), (std::vector<std::string>{"test", "test/stories", "test/stories/stories260K.gguf",
                                                           "test/stories/stories260K.gguf.json"}))
        << "only the removed model's folder goes";
}

}  // namespace
}  // namespace hearth::store
