#include "lab/data/man_pages.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "base/error.h"
#include "gguf/gguf.h"
#include "tokenizer/vocab.h"

extern char** environ;

namespace hearth::lab {
namespace fs = std::filesystem;

namespace {

bool is_alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

constexpr std::string_view kOtherCompressions[] = {".bz2", ".xz", ".zst", ".lz", ".lzma", ".Z"};

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Runs fn(i) for i in [0, n) on `threads` threads, items handed out one at a time (pages differ in cost by
// orders of magnitude). The first exception is rethrown after every thread has stopped.
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& fn) {
    const size_t n_threads = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), std::max<size_t>(n, 1));
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&] {
        for (size_t i; !stop && (i = next++) < n;) {
            try {
                fn(i);
            } catch (...) {
                const std::lock_guard lock(error_mutex);
                if (!error) error = std::current_exception();
                stop = true;
            }
        }
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < n_threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

// The start of a page's source, decompressed when gzip (gzread passes other files through).
std::string read_source_head(const std::string& path, size_t limit, bool& whole) {
    whole = false;
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) return {};
    std::string out(limit + 1, '\0');
    const int n = gzread(f, out.data(), static_cast<unsigned>(out.size()));
    gzclose(f);
    if (n < 0) return {};
    out.resize(static_cast<size_t>(n));
    whole = out.size() <= limit;
    return out;
}

// The target of a link page: a source whose only line besides comments and blank lines is `.so TARGET`.
// Returns "" for any other page.
std::string link_target(const std::string& path) {
    // Link pages are one line; a page longer than this has content of its own.
    constexpr size_t kLimit = 4096;
    bool whole = false;
    const std::string src = read_source_head(path, kLimit, whole);
    if (!whole) return {};
    std::string target;
    size_t pos = 0;
    while (pos < src.size()) {
        size_t end = src.find('\n', pos);
        if (end == std::string::npos) end = src.size();
        std::string_view line(src.data() + pos, end - pos);
        pos = end + 1;
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
            line.remove_suffix(1);
        const bool comment = line.rfind(".\\\"", 0) == 0 || line.rfind("'\\\"", 0) == 0 || line == ".";
        if (line.empty() || comment) continue;
        if (!target.empty()) return {};
        if (line.size() < 5 || line.substr(0, 3) != ".so" || (line[3] != ' ' && line[3] != '\t')) return {};
        std::string_view t = line.substr(4);
        while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
        if (t.empty()) return {};
        target = t;
    }
    return target;
}

struct RenderJob {
    std::string source;  // the file mandoc reads
    std::string cwd;
    std::string failure;  // set when the page fails before mandoc (a link that does not resolve)
};

// Follows link pages from `page` to the file mandoc should render. Like mandoc, refuses absolute targets and
// targets that climb out of the man directory with "..".
RenderJob resolve_render_job(const ManPage& page) {
    RenderJob job{page.path, page.base_dir, ""};
    // Chains of links are followed a few steps; a cycle fails instead of looping.
    for (int depth = 0; depth < 8; ++depth) {
        const std::string target = link_target(job.source);
        if (target.empty()) return job;
        const fs::path t(target);
        bool climbs = t.is_absolute();
        for (const fs::path& part : t) climbs = climbs || part == "..";
        if (climbs) {
            job.failure = fmt::format("link page: .so {} leaves the man directory", target);
            return job;
        }
        const fs::path base(page.base_dir);
        std::error_code ec;
        if (fs::is_regular_file(base / t, ec)) {
            job.source = (base / t).string();
        } else if (fs::is_regular_file(base / (target + ".gz"), ec)) {
            job.source = (base / (target + ".gz")).string();
        } else {
            job.failure = fmt::format("link page: .so target {} not found", target);
            return job;
        }
    }
    job.failure = "link page: .so chain too long (a cycle?)";
    return job;
}

// Pops the last UTF-8 character of `out` (overstrike erases it), staying on the current line.
void erase_last_char(std::string& out) {
    if (out.empty() || out.back() == '\n') return;
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && out.back() != '\n') out.pop_back();
}

std::string strip_terminal_codes(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        const auto c = static_cast<unsigned char>(in[i]);
        if (c == '\b') {
            erase_last_char(out);
        } else if (c == 0x1B) {
            if (i + 1 < in.size() && in[i + 1] == '[') {  // CSI: parameters, then a final byte @..~
                i += 2;
                while (i < in.size() && !(in[i] >= 0x40 && in[i] <= 0x7E)) ++i;
            } else if (i + 1 < in.size() && in[i + 1] == ']') {  // OSC (hyperlinks): up to BEL or ESC '\'
                i += 2;
                while (i < in.size() && in[i] != '\a' && !(in[i] == 0x1B && i + 1 < in.size() && in[i + 1] == '\\'))
                    ++i;
                if (i < in.size() && in[i] == 0x1B) ++i;
            } else {
                ++i;  // a two-byte escape
            }
        } else if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7F)) {
            out += static_cast<char>(c);
        }
        // Other control characters (\r, form feeds) carry nothing in plain text.
    }
    return out;
}

}  // namespace

bool is_man_section(std::string_view s) {
    if (s.empty() || s.size() > 16) return false;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == 'n' || s[0] == 'l' || s[0] == 'o')) return false;
    return std::all_of(s.begin(), s.end(), is_alnum);
}

std::vector<std::string> parse_man_sections(const std::string& list) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (true) {
        size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        std::string item = list.substr(pos, end - pos);
        const auto first = item.find_first_not_of(' ');
        item = first == std::string::npos ? "" : item.substr(first, item.find_last_not_of(' ') - first + 1);
        if (!is_man_section(item))
            fail("--sections: '{}' is not a man section (expected a list such as 1,3pm,8)", item);
        if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
        if (end == list.size()) break;
        pos = end + 1;
    }
    return out;
}

bool parse_man_file_name(std::string_view file_name, std::string& name, std::string& section) {
    std::string_view stem = file_name;
    if (ends_with(stem, ".gz")) {
        stem.remove_suffix(3);
    } else {
        for (std::string_view ext : kOtherCompressions)
            if (ends_with(stem, ext)) {
                stem.remove_suffix(ext.size());
                break;
            }
    }
    const size_t dot = stem.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    const std::string_view sec = stem.substr(dot + 1);
    if (!is_man_section(sec)) return false;
    name = stem.substr(0, dot);
    section = sec;
    return true;
}

std::vector<ManPage> find_man_pages(const ManSearch& search) {
    std::vector<ManPage> pages;
    std::set<std::string> seen_roots;
    auto section_wanted = [&](const ManPage& p) {
        if (search.sections.empty()) return true;
        return std::any_of(search.sections.begin(), search.sections.end(),
                           [&](const std::string& s) { return s == p.section || s == p.section_dir; });
    };
    auto scan_base = [&](const fs::path& base) {
        std::vector<fs::path> section_dirs;
        std::error_code ec;
        for (const fs::directory_entry& e : fs::directory_iterator(base, ec)) {
            const std::string dir_name = e.path().filename().string();
            if (dir_name.size() > 3 && dir_name.rfind("man", 0) == 0 && is_man_section(dir_name.substr(3)) &&
                e.is_directory(ec))
                section_dirs.push_back(e.path());
        }
        for (const fs::path& dir : section_dirs) {
            for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
                ManPage p;
                if (!parse_man_file_name(e.path().filename().string(), p.name, p.section)) continue;
                // Regular files, links to them, and broken links (reported as failed, not silently skipped).
                if (!e.is_regular_file(ec) && !(e.is_symlink(ec) && !e.exists(ec))) continue;
                p.path = e.path().string();
                p.base_dir = base.string();
                p.section_dir = dir.filename().string().substr(3);
                if (section_wanted(p)) pages.push_back(std::move(p));
            }
        }
    };
    for (const std::string& root_arg : search.roots) {
        std::error_code ec;
        if (!fs::is_directory(root_arg, ec)) fail("{}: no such man directory", root_arg);
        const fs::path root = fs::absolute(root_arg).lexically_normal();
        // The same tree named twice (or through a link) is read once.
        if (!seen_roots.insert(fs::canonical(root, ec).string()).second) continue;
        scan_base(root);
        if (!search.all_languages) continue;
        for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
            const std::string dir_name = e.path().filename().string();
            // Locale directories (de, pt_BR, ja.UTF-8 ...): everything but section and preformatted dirs.
            if (dir_name.rfind("man", 0) == 0 || dir_name.rfind("cat", 0) == 0 || !e.is_directory(ec)) continue;
            scan_base(e.path());
        }
    }
    std::sort(pages.begin(), pages.end(), [](const ManPage& a, const ManPage& b) { return a.path < b.path; });
    return pages;
}

std::string clean_man_text(std::string_view rendered) {
    const std::string text = tok::sanitize_utf8(strip_terminal_codes(rendered));
    std::vector<std::string_view> lines;
    for (size_t pos = 0; pos <= text.size();) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string_view line(text.data() + pos, end - pos);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        lines.push_back(line);
        pos = end + 1;
    }
    // mandoc's first line is the header; its last non-blank line is the footer.
    size_t first = 0, last = lines.size();
    if (first < last && !lines[first].empty()) ++first;
    while (last > first && lines[last - 1].empty()) --last;
    if (last > first) --last;
    while (first < last && lines[first].empty()) ++first;
    while (last > first && lines[last - 1].empty()) --last;
    std::string out;
    int blank_run = 0;
    for (size_t i = first; i < last; ++i) {
        if (lines[i].empty()) {
            if (++blank_run > 2) continue;
        } else {
            blank_run = 0;
        }
        out += lines[i];
        out += '\n';
    }
    return out;
}

std::string find_mandoc() {
    const char* path_env = std::getenv("PATH");
    const std::string path = path_env ? path_env : "";
    size_t pos = 0;
    while (pos <= path.size()) {
        size_t end = path.find(':', pos);
        if (end == std::string::npos) end = path.size();
        const std::string dir = path.substr(pos, end - pos);
        pos = end + 1;
        if (dir.empty()) continue;
        const std::string candidate = dir + "/mandoc";
        if (::access(candidate.c_str(), X_OK) == 0 && fs::is_regular_file(candidate)) return candidate;
    }
    fail("mandoc not found on PATH: it renders the man pages (apt-get install mandoc)");
}

RenderedPage render_man_page(const std::string& mandoc, const std::string& path, const std::string& cwd) {
    RenderedPage r;
    int fds[2];
    // Close-on-exec: a pipe end inherited by another thread's mandoc would hold this pipe open past our
    // child's exit.
    if (::pipe2(fds, O_CLOEXEC) != 0) fail("cannot create a pipe for mandoc: {}", std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    // mandoc resolves `.so` relative to its working directory.
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    // The path is absolute, so it can never be read as an option.
    std::string arg0 = "mandoc", arg_c = "-c", arg_t = "-T", arg_utf8 = "utf8", arg_path = path;
    char* argv[] = {arg0.data(), arg_c.data(), arg_t.data(), arg_utf8.data(), arg_path.data(), nullptr};
    pid_t pid = 0;
    const int spawn_rc = posix_spawn(&pid, mandoc.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (spawn_rc != 0) {
        ::close(fds[0]);
        fail("cannot run {}: {}", mandoc, std::strerror(spawn_rc));
    }
    std::string raw;
    char buf[1 << 16];
    while (true) {
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) {
            raw.append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status)) {
        r.reason = fmt::format("mandoc killed by signal {}", WTERMSIG(status));
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        r.reason = fmt::format("mandoc exited with status {}", WEXITSTATUS(status));
    } else {
        r.text = clean_man_text(raw);
        if (r.text.empty()) r.reason = "rendered empty";
        r.ok = !r.text.empty();
    }
    return r;
}

bool is_validation_name(const std::string& name, double val_fraction) {
    const std::string digest = sha256_hex(name);
    const uint64_t h = std::stoull(digest.substr(0, 16), nullptr, 16);
    const auto threshold = static_cast<uint64_t>(std::llround(val_fraction * 10000.0));
    return h % 10000 < threshold;
}

nlohmann::json man_corpus_totals_json(const ManCorpusReport& r) {
    auto split = [&](const SplitTotals& s) {
        nlohmann::json j = {{"documents", s.documents}, {"bytes", s.bytes}};
        if (r.counted_tokens) j["tokens"] = s.tokens;
        return j;
    };
    return {{"pages_found", r.pages_found},
            {"rendered", r.rendered},
            {"failed", r.failed},
            {"duplicates_dropped", r.duplicates_dropped},
            {"documents", r.train.documents + r.val.documents},
            {"train", split(r.train)},
            {"val", split(r.val)}};
}

ManCorpusReport build_man_corpus(const ManCorpusOptions& o, const std::string& out_dir, const ManProgress& progress) {
    if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
        fail("--val-fraction must be in [0, 1) (got {})", o.val_fraction);
    const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const std::string mandoc = find_mandoc();

    // The tokenizer is loaded before the long work so that a bad file fails at once.
    std::unique_ptr<gguf::File> tok_file;
    std::unique_ptr<tok::Vocab> vocab;
    if (!o.tokenizer.empty()) {
        tok_file = std::make_unique<gguf::File>(gguf::File::open(o.tokenizer));
        vocab = std::make_unique<tok::Vocab>(tok::Vocab::from_gguf(*tok_file));
    }

    const std::vector<ManPage> pages = find_man_pages(o.search);
    if (pages.empty()) {
        std::string roots;
        for (const std::string& r : o.search.roots) roots += (roots.empty() ? "" : ", ") + r;
        std::string sections;
        for (const std::string& s : o.search.sections) sections += (sections.empty() ? "" : ",") + s;
        fail("no man pages found under {}{}", roots, sections.empty() ? "" : " in sections " + sections);
    }
    check_corpus_dir_writable(out_dir);

    // One render per distinct (source file, working directory): symbolic links and resolved link pages share
    // their target's.
    std::vector<RenderJob> jobs;
    std::vector<size_t> job_of(pages.size());
    std::vector<bool> is_alias(pages.size());
    std::map<std::pair<std::string, std::string>, size_t> job_index;
    for (size_t i = 0; i < pages.size(); ++i) {
        RenderJob job = resolve_render_job(pages[i]);
        std::error_code ec;
        is_alias[i] = job.source != pages[i].path || fs::is_symlink(pages[i].path, ec);
        const fs::path canon = fs::canonical(job.source, ec);
        const std::string key_path = ec ? job.source : canon.string();
        const auto key = std::make_pair(job.failure.empty() ? key_path : "\n" + pages[i].path, job.cwd);
        const auto [it, inserted] = job_index.emplace(key, jobs.size());
        if (inserted) jobs.push_back(std::move(job));
        job_of[i] = it->second;
    }
    std::vector<RenderedPage> rendered(jobs.size());
    std::mutex progress_mutex;
    std::atomic<size_t> done{0};
    if (progress) progress("render", 0, jobs.size());
    parallel_for(jobs.size(), threads, [&](size_t j) {
        if (!jobs[j].failure.empty()) {
            rendered[j].reason = jobs[j].failure;
        } else {
            rendered[j] = render_man_page(mandoc, jobs[j].source, jobs[j].cwd);
        }
        const size_t n = ++done;
        if (progress) {
            const std::lock_guard lock(progress_mutex);
            progress("render", n, jobs.size());
        }
    });

    ManCorpusReport report;
    report.output_dir = out_dir;
    report.pages_found = pages.size();
    // Which page keeps each distinct text: the first in path order, but an alias (a symbolic link or a link
    // page) never wins over a page with a source of its own, so `[` yields to test(1) and awk to gawk.
    std::vector<std::string> job_hash(jobs.size());
    std::unordered_map<std::string, size_t> keeper;  // text sha256 -> page index
    for (size_t i = 0; i < pages.size(); ++i) {
        const size_t j = job_of[i];
        if (!rendered[j].ok) continue;
        if (job_hash[j].empty()) job_hash[j] = sha256_hex(rendered[j].text);
        const auto [it, inserted] = keeper.emplace(job_hash[j], i);
        if (!inserted && is_alias[it->second] && !is_alias[i]) it->second = i;
    }
    std::vector<Document> train, val;
    for (size_t i = 0; i < pages.size(); ++i) {
        const size_t j = job_of[i];
        RenderedPage& r = rendered[j];
        if (!r.ok) {
            ++report.failed;
            report.failures.push_back({pages[i].path, r.reason});
            continue;
        }
        ++report.rendered;
        if (keeper.at(job_hash[j]) != i) {
            ++report.duplicates_dropped;
            continue;
        }
        const bool is_val = is_validation_name(pages[i].name, o.val_fraction);
        SplitTotals& t = is_val ? report.val : report.train;
        ++t.documents;
        t.bytes += r.text.size();
        // The one keeper of this text: no later page needs it.
        (is_val ? val : train).push_back({pages[i].name, pages[i].section, std::move(r.text)});
    }
    rendered.clear();
    if (report.rendered == 0)
        fail("none of the {} man pages rendered (first: {}: {})", pages.size(), report.failures.front().path,
             report.failures.front().reason);

    if (vocab) {
        report.counted_tokens = true;
        // One stage over both splits; each document is encoded as a model would see it (BOS included).
        const size_t n_docs = train.size() + val.size();
        auto doc_at = [&](size_t d) -> const Document& { return d < train.size() ? train[d] : val[d - train.size()]; };
        std::vector<uint64_t> counts(n_docs);
        std::atomic<size_t> n_done{0};
        if (progress) progress("tokens", 0, n_docs);
        parallel_for(n_docs, threads, [&](size_t d) {
            counts[d] = vocab->encode(doc_at(d).text, /*add_special=*/true, /*parse_special=*/false).size();
            const size_t n = ++n_done;
            if (progress) {
                const std::lock_guard lock(progress_mutex);
                progress("tokens", n, n_docs);
            }
        });
        for (size_t d = 0; d < n_docs; ++d) (d < train.size() ? report.train : report.val).tokens += counts[d];
    }

    remove_corpus_manifest(out_dir);
    report.files.push_back(write_corpus_split(out_dir, "train", train));
    report.files.push_back(write_corpus_split(out_dir, "val", val));

    nlohmann::json roots = nlohmann::json::array();
    for (const std::string& r : o.search.roots) roots.push_back(r);
    nlohmann::json failed = nlohmann::json::array();
    for (const FailedPage& f : report.failures) failed.push_back({{"path", f.path}, {"reason", f.reason}});
    nlohmann::json manifest = {
        {"source",
         {{"kind", "man pages"}, {"roots", roots}, {"renderer", "mandoc -c -T utf8"}, {"mandoc", mandoc}}},
        {"options",
         {{"sections", o.search.sections},
          {"all_languages", o.search.all_languages},
          {"val_fraction", o.val_fraction},
          {"split_rule", "sha256(name): first 8 bytes, big-endian, mod 10000 < val_fraction * 10000 -> val"},
          {"header_footer", "dropped"},
          {"tokenizer", o.tokenizer.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.tokenizer)}}},
        {"totals", man_corpus_totals_json(report)},
        {"failed", failed}};
    write_corpus_manifest(out_dir, manifest, report.files);
    return report;
}

}  // namespace hearth::lab
