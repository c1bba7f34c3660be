// Helpers shared by the tests: where ../shared is, reading small files.
#pragma once
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace hearth::test {

// The shared assets folder: $HEARTH_SHARED, else ../shared beside the source tree.
inline std::string shared_dir() {
    if (const char* e = std::getenv("HEARTH_SHARED"); e && *e) return e;
    return std::string(HEARTH_SOURCE_DIR) + "/../shared";
}
inline std::string shared(const std::string& rel) { return shared_dir() + "/" + rel; }

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace hearth::test
