// Helpers shared by the tests: where ../shared is, reading small files.
#pragma once
#include <fcntl.h>
#include <sys/file.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace hearth::test {

// The shared assets folder: $HEARTH_SHARED, else ../shared beside the source tree.
inline std::string shared_dir() {
    if (const char* e = std::getenv("HEARTH_SHARED"); e && *e) return e;
    return HEARTH_SOURCE_DIR "/../shared";
}
inline std::string shared(const std::string& rel) { return shared_dir() + "/" + rel; }

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A scratch folder for this test process, removed when it exits.
inline std::string tmp_dir() {
    struct Dir {
        std::string path;
        Dir() {
            path = (std::filesystem::temp_directory_path() / ("hearth_test_" + std::to_string(getpid()))).string();
            std::filesystem::create_directories(path);
        }
        ~Dir() {
            std::error_code ec;
            std::filesystem::remove_all(path, ec);
        }
    };
    static const Dir dir;
    return dir.path;
}

struct RunResult {
    int code = -1;  // exit status, or 128 + signal
    std::string out, err;
};

// Runs a shell command, capturing its stdout and (through a file) its stderr.
inline RunResult run_command(const std::string& cmd) {
    static int serial = 0;
    const std::string err_path = tmp_dir() + "/stderr" + std::to_string(serial++) + ".txt";
    RunResult r;
    FILE* p = popen((cmd + " 2>" + err_path).c_str(), "r");
    if (!p) return r;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.err = read_file(err_path);
    std::remove(err_path.c_str());
    return r;
}

// Single-quoted for the shell, for the command lines tests build.
inline std::string q(const std::string& s) { return "'" + s + "'"; }

// Pearson's chi-square of observed counts (n draws) against expected probabilities, bins expecting fewer than 5
// merged into one (kept when it expects at least 5); *df: the degrees of freedom (bins - 1).
inline double chi_square(const std::vector<double>& expected_p, const std::vector<int64_t>& counts, int64_t n, int* df) {
    double stat = 0, rest_e = 0, rest_o = 0;
    int bins = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
        const double e = expected_p[i] * static_cast<double>(n);
        if (e < 5) {
            rest_e += e;
            rest_o += static_cast<double>(counts[i]);
            continue;
        }
        stat += (static_cast<double>(counts[i]) - e) * (static_cast<double>(counts[i]) - e) / e;
        ++bins;
    }
    if (rest_e >= 5) {
        stat += (rest_o - rest_e) * (rest_o - rest_e) / rest_e;
        ++bins;
    }
    *df = bins - 1;
    return stat;
}

// A command that failed as hearth fails on bad input: exit status `code` (not a signal), one line on stderr that
// starts with "error: " and names `needle`.
inline void expect_one_line_error(const RunResult& r, const std::string& needle, int code = 1) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

#ifdef HEARTH_BINARY
// Runs the hearth binary with `args` (a shell-quoted argument string).
inline RunResult run_hearth(const std::string& args) { return run_command(std::string(HEARTH_BINARY) + " " + args); }

// A folder that `make(dir)` fills once per build of the hearth binary and that every test process shares (under
// ctest each TEST is a process of its own, and a corpus or a tokenizer costs seconds to make): made under a
// temporary name under a lock and renamed into place, so processes running at once make it once and never see
// half of one. The name carries the binary's modification time, so a rebuilt hearth makes it again. make throws
// or returns normally.
inline std::string cached_dir(const std::string& name, const std::function<void(const std::string&)>& make) {
    namespace fs = std::filesystem;
    const fs::path binary(HEARTH_BINARY);
    const auto stamp = fs::last_write_time(binary).time_since_epoch().count();
    const fs::path dir = binary.parent_path() / "test_cache" / (name + "." + std::to_string(stamp));
    if (fs::exists(dir)) return dir.string();
    fs::create_directories(dir.parent_path());
    // One process makes it while the others wait for it (tests start at once under ctest -j).
    struct Lock {
        int fd;
        explicit Lock(const std::string& p) : fd(::open(p.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644)) {
            if (fd >= 0) ::flock(fd, LOCK_EX);
        }
        ~Lock() {
            if (fd >= 0) ::close(fd);
        }
    } lock(dir.string() + ".lock");
    if (fs::exists(dir)) return dir.string();
    const fs::path tmp = dir.string() + ".tmp";
    fs::remove_all(tmp);  // a make that failed or was killed before
    fs::create_directories(tmp);
    make(tmp.string());
    fs::rename(tmp, dir);
    return dir.string();
}
#endif

// A llama.cpp tokenizer test-vector pair in ../shared/tokenizers/llama.cpp-vocab: NAME.inp holds the inputs, each
// followed by "\n__ggml_vocab_test__\n"; NAME.out one line of space-separated ids per input.
struct VocabVectors {
    std::vector<std::string> inputs;
    std::vector<std::vector<int32_t>> outputs;
};
inline VocabVectors read_vocab_vectors(const std::string& name) {
    const std::string dir = shared("tokenizers/llama.cpp-vocab/");
    const std::string inp = read_file(dir + name + ".inp");
    const std::string out = read_file(dir + name + ".out");
    VocabVectors v;
    const std::string sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0; pos < inp.size();) {
        const size_t next = inp.find(sep, pos);
        if (next == std::string::npos) {
            v.inputs.push_back(inp.substr(pos));
            break;
        }
        v.inputs.push_back(inp.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::istringstream ls(out);
    std::string line;
    while (std::getline(ls, line)) {
        std::vector<int32_t> ids;
        std::istringstream ss(line);
        int64_t x;
        while (ss >> x) ids.push_back(static_cast<int32_t>(x));
        v.outputs.push_back(ids);
    }
    return v;
}

}  // namespace hearth::test
