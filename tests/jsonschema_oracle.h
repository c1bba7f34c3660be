// Debian's python3-jsonschema as a test oracle (tests/oracle/jsonschema_check.py: the draft $schema names, else
// 2020-12, format checking on), called once for a whole table of (schema, candidate texts).
#pragma once
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace hearth::test {

struct JsonSchemaVerdicts {
    std::set<std::string> checked_formats;   // formats the installed jsonschema really checks
    std::set<std::string> fallback_formats;  // formats the script checks itself (see the script)
    // Per case, per candidate: true / false (valid / invalid), or null when the text is not JSON.
    std::vector<std::vector<nlohmann::ordered_json>> results;
};

// Runs the oracle; on failure records a test failure and returns no results.
inline JsonSchemaVerdicts jsonschema_oracle(
    const std::vector<std::pair<nlohmann::ordered_json, std::vector<std::string>>>& cases) {
    using ojson = nlohmann::ordered_json;
    ojson request = {{"cases", ojson::array()}};
    for (const auto& [schema, texts] : cases) {
        ojson cands = ojson::array();
        for (const std::string& t : texts) cands.push_back(t);
        request["cases"].push_back({{"schema", schema}, {"candidates", cands}});
    }
    static int serial = 0;
    const std::string in = tmp_dir() + "/jsonschema_oracle_in" + std::to_string(serial++) + ".json";
    // replace: a text that is not UTF-8 still reaches the oracle (which then calls it not JSON).
    std::ofstream(in, std::ios::binary) << request.dump(-1, ' ', false, ojson::error_handler_t::replace);
    const std::string cmd =
        "/usr/bin/python3 " + std::string(HEARTH_SOURCE_DIR) + "/tests/oracle/jsonschema_check.py '" + in + "'";
    const RunResult r = run_command(cmd);
    JsonSchemaVerdicts out;
    EXPECT_EQ(r.code, 0) << cmd << "\n"
                         << r.err << "\n(python3-jsonschema is a Debian package: apt-get install python3-jsonschema)";
    if (r.code != 0) return out;
    const ojson j = ojson::parse(r.out);
    for (const auto& f : j["checked_formats"]) out.checked_formats.insert(f.get<std::string>());
    if (j.contains("fallback_formats"))
        for (const auto& f : j["fallback_formats"]) out.fallback_formats.insert(f.get<std::string>());
    for (const auto& row : j["results"]) out.results.emplace_back(row.begin(), row.end());
    return out;
}

}  // namespace hearth::test
