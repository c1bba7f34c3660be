// The JSONSchemaBench sample in ../shared/jsonschemabench judged as MaskBench judges an engine (grammar/check.h:
// run_schema_suite), byte by byte: whatever compiles must never accept an instance its schema forbids (the
// benchmark's authors checked every verdict with Python and Rust validators), nor reject a valid one.
// bench/maskbench gives the figures with a real vocabulary and its mask timings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/check.h"
#include "test_util.h"

namespace hearth::grammar {
namespace {

TEST(MaskBench, SampleHasNoInvalidationErrors) {
    const std::string dir = test::shared("jsonschemabench");
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.path().extension() == ".json") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    ASSERT_GE(files.size(), 1000u) << dir;
#if defined(__SANITIZE_ADDRESS__)
    // Under the sanitizers (20 times slower here) every fourth file: they look for memory errors, which any
    // quarter of these schemas exercises; the Release run judges the whole sample.
    std::vector<std::string> quarter;
    for (size_t i = 0; i < files.size(); i += 4) quarter.push_back(files[i]);
    files = std::move(quarter);
#endif
    struct Tally {
        int schemas = 0, compiled = 0, passing = 0, valid_rejected = 0, invalid_accepted = 0, instances = 0;
    };
    std::map<std::string, Tally> by_category;
    Tally total;
    for (const std::string& f : files) {
        std::ifstream in(f);
        const auto file = nlohmann::ordered_json::parse(in);
        const SuiteResult r = run_schema_suite(file, nullptr, nullptr);
        const std::string name = std::filesystem::path(f).filename().string();
        EXPECT_EQ(r.invalid_accepted, 0) << name << ": the grammar accepts an instance the schema forbids";
        for (Tally* t : {&by_category[name.substr(0, name.find("---"))], &total}) {
            ++t->schemas;
            t->compiled += r.compiled;
            t->passing += r.passing();
            t->valid_rejected += r.valid_rejected;
            t->invalid_accepted += r.invalid_accepted;
            t->instances += r.instances;
        }
    }
    for (const auto& [name, t] : by_category)
        std::printf("  %-16s %3d schemas: compiled %3d, passing %3d, valid rejected %d, invalid accepted %d\n",
                    name.c_str(), t.schemas, t.compiled, t.passing, t.valid_rejected, t.invalid_accepted);
    std::printf("  total: %d schemas, compiled %d, passing %d; %d instances, valid rejected %d, invalid accepted %d\n",
                total.schemas, total.compiled, total.passing, total.instances, total.valid_rejected,
                total.invalid_accepted);
    EXPECT_EQ(total.invalid_accepted, 0);
    // And none of the sample's valid instances is rejected any more (written in the schema's order, as
    // in_schema_order puts them), nor does coverage fall below what the sample reached (88.7 %, 1,063 of 1,199).
    EXPECT_EQ(total.valid_rejected, 0);
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_GE(total.compiled * 1000, total.schemas * 880) << total.compiled << " of " << total.schemas << " compiled";
#endif
}

}  // namespace
}  // namespace hearth::grammar
