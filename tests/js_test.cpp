// The JavaScript tests of `hearth serve` (tests/js), each run by node against an in-process Server with the
// stories260K model: WebUi drives the embedded chat page in headless Chromium (tests/js/webui.mjs), OpenAiClient
// runs the official `openai` npm client (tests/js/openai_compat.mjs). Their npm dependencies come from
// scripts/setup; a checkout without them fails here rather than skipping, so a missing setup step is never
// mistaken for a passing suite.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "serve/server.h"
#include "serve_fixture.h"
#include "test_util.h"
#include "tokenizer/vocab.h"

namespace hearth::serve {
namespace {

const std::string kJsDir = std::string(HEARTH_SOURCE_DIR) + "/tests/js";

using Fixture = ServerFixture;

// Empty when node and the npm packages are there, else what to do about it.
std::string missing_js_setup() {
    if (test::run_command("node --version").code != 0) return "node is not installed: run scripts/setup";
    for (const char* pkg : {"playwright-core", "openai"})
        if (!std::filesystem::exists(kJsDir + "/node_modules/" + pkg + "/package.json"))
            return std::string("tests/js/node_modules/") + pkg + " is missing: run scripts/setup (npm ci --prefix tests/js)";
    return {};
}

test::RunResult run_script(const std::string& script, const std::string& args) {
    return test::run_command("node " + kJsDir + "/" + script + " " + args);
}

TEST(WebUi, ChatPageStreamsStopsAndKeepsConversations) {
    const std::string missing = missing_js_setup();
    ASSERT_TRUE(missing.empty()) << missing;
    ASSERT_TRUE(std::filesystem::exists("/usr/bin/chromium")) << "/usr/bin/chromium is missing: run scripts/setup";
    Fixture f;
    const test::RunResult r = run_script("webui.mjs", f.url());
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    for (const char* line : {"ok   page loads", "ok   streaming", "ok   error display and delete", "ok   stop",
                             "ok   reload keeps conversations and parameters", "ok   markdown renders",
                             "ok   no page errors, no external requests", "webui: 7 checks passed"})
        EXPECT_NE(r.out.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << r.out << r.err;
    std::printf("%s", r.out.c_str());
}

TEST(OpenAiClient, OfficialClientAgainstServer) {
    const std::string missing = missing_js_setup();
    ASSERT_TRUE(missing.empty()) << missing;
    ServerOptions o;
    o.api_key = "hearth-test-key";
    Fixture f(o);
    const test::RunResult r = run_script("openai_compat.mjs", f.url() + " " + o.api_key);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    for (const char* line : {"ok   models.list", "ok   chat.completions.create (", "ok   chat.completions.create stream",
                             "ok   chat.completions.stream helper", "ok   completions.create (",
                             "ok   completions.create stream", "ok   embeddings.create", "ok   errors",
                             "openai_compat: 8 checks passed"})
        EXPECT_NE(r.out.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << r.out << r.err;
    std::printf("%s", r.out.c_str());
}

}  // namespace
}  // namespace hearth::serve
