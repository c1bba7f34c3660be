// The model store (see model_store.h for why it is shaped so). Downloads use libcurl because the hub needs
// redirects (LFS files live on a CDN), TLS and Range requests, all of which it does well; hashing uses
// OpenSSL's EVP because the hash must run incrementally over a file that may be resumed.
#include "store/model_store.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/progress.h"
#include "gguf/gguf.h"

namespace fs = std::filesystem;

namespace hearth::store {
namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Characters the hub allows in owner, repository and file names; anything else (spaces, `%`, `\`) is far more
// likely a typo or an attempt to escape the store than a real file, and would need URL escaping.
bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-' || c == '+';
}

void check_part(const std::string& spec, const std::string& part, const char* what) {
    if (part.empty()) fail("bad model spec '{}': empty {}", spec, what);
    if (part == "." || part == "..") fail("bad model spec '{}': '{}' is not allowed as a {}", spec, part, what);
    for (char c : part)
        if (!name_char(c))
            fail("bad model spec '{}': the {} '{}' has a character other than letters, digits, '.', '_', '-', '+'",
                 spec, what, part);
}

bool is_hex64(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// An ETag value as a sha256, or "" when it is not one: strips W/ and the quotes.
std::string etag_sha256(std::string v) {
    if (v.rfind("W/", 0) == 0) v.erase(0, 2);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return is_hex64(v) ? lower(v) : std::string();
}

std::string iso_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string mib(int64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / 1048576.0); }

class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) {
        if (!ctx_) throw std::bad_alloc();
        reset();
    }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void reset() {
        if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) fail("sha256: OpenSSL could not initialise");
    }
    void update(const void* p, size_t n) {
        if (EVP_DigestUpdate(ctx_, p, n) != 1) fail("sha256: OpenSSL update failed");
    }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_DigestFinal_ex(ctx_, md, &n) != 1) fail("sha256: OpenSSL final failed");
        std::string s;
        for (unsigned int i = 0; i < n; ++i) s += fmt::format("{:02x}", md[i]);
        return s;
    }

private:
    EVP_MD_CTX* ctx_;
};

// One HTTP GET into the .part file, appending from `offset`. Per-response state is reset at each status line
// because libcurl hands us the headers of every response in a redirect chain.
struct Transfer {
    std::string url, label;
    int fd = -1;
    Sha256* hash = nullptr;
    int64_t offset = 0;   // bytes in the .part that this request continues
    int64_t written = 0;  // bytes written by this request
    int64_t total = -1;   // size of the whole file, when the server says
    bool progress = true;
    bool body_started = false;
    bool restarted = false;  // the server ignored the Range request
    long status = 0;
    std::string linked_etag, etag;  // sha256 values seen anywhere in the chain
    std::string content_range;      // of the last response
    int64_t content_length = -1;    // of the last response
    std::string error;              // set by a callback that aborts the transfer
    CURL* curl = nullptr;
    std::unique_ptr<Progress> bar;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

    // Called once the final response's status is known, before any of its body is kept.
    bool begin_body() {
        body_started = true;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 206) {
            const std::string want = fmt::format("bytes {}-", offset);
            if (content_range.rfind(want, 0) != 0) {
                error = fmt::format("{}: asked for bytes from {}, the server sent '{}'", url, offset,
                                    content_range.empty() ? "no Content-Range" : content_range);
                return false;
            }
            const size_t slash = content_range.find('/');
            if (slash != std::string::npos && content_range.compare(slash + 1, std::string::npos, "*") != 0)
                total = std::strtoll(content_range.c_str() + slash + 1, nullptr, 10);
        } else if (status == 200) {
            if (offset > 0) {  // the server ignored the Range: the body is the whole file
                if (ftruncate(fd, 0) != 0) {
                    error = fmt::format("cannot truncate the partial download: {}", std::strerror(errno));
                    return false;
                }
                hash->reset();
                offset = 0;
                restarted = true;
                if (progress) fmt::print(stderr, "{}: the server does not resume downloads; starting over\n", label);
            }
            total = content_length;
        } else {
            return true;  // an error page or a 416: its body is not the file and is dropped
        }
        if (progress && total > 0) bar = std::make_unique<Progress>("pull " + label, total);
        return true;
    }

    static size_t on_header(char* p, size_t size, size_t n, void* self_) {
        auto* self = static_cast<Transfer*>(self_);
        std::string line(p, size * n);
        while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
        if (line.rfind("HTTP/", 0) == 0) {
            self->content_range.clear();
            self->content_length = -1;
            return size * n;
        }
        const size_t colon = line.find(':');
        if (colon == std::string::npos) return size * n;
        const std::string key = lower(line.substr(0, colon));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        const std::string value = line.substr(v);
        if (key == "x-linked-etag") {
            if (std::string s = etag_sha256(value); !s.empty()) self->linked_etag = s;
        } else if (key == "etag") {
            if (std::string s = etag_sha256(value); !s.empty() && self->etag.empty()) self->etag = s;
        } else if (key == "content-range") {
            self->content_range = value;
        } else if (key == "content-length") {
            self->content_length = std::strtoll(value.c_str(), nullptr, 10);
        }
        return size * n;
    }

    static size_t on_body(char* p, size_t size, size_t n, void* self_) {
        auto* self = static_cast<Transfer*>(self_);
        const size_t bytes = size * n;
        if (!self->body_started && !self->begin_body()) return 0;
        if (self->status != 200 && self->status != 206) return bytes;
        for (size_t done = 0; done < bytes;) {
            const ssize_t w = ::write(self->fd, p + done, bytes - done);
            if (w < 0) {
                if (errno == EINTR) continue;
                self->error = fmt::format("cannot write the download: {}", std::strerror(errno));
                return 0;
            }
            done += static_cast<size_t>(w);
        }
        self->hash->update(p, bytes);
        self->written += static_cast<int64_t>(bytes);
        if (self->bar) {
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - self->start).count();
            const int64_t have = self->offset + self->written;
            self->bar->update(have, fmt::format("{} / {}  {:.1f} MiB/s", mib(have), mib(self->total),
                                                secs > 0 ? static_cast<double>(self->written) / 1048576.0 / secs : 0.0));
        }
        return bytes;
    }
};

void curl_init_once() {
    static const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!ok) fail("libcurl could not initialise");
}

// What a status means for someone pulling from the hub.
std::string status_hint(long status) {
    switch (status) {
        case 401:
        case 403: return " (gated or private repository: set HF_TOKEN to a token that has access)";
        case 404: return " (no such repository, revision or file)";
        case 429: return " (rate limited: try again later)";
        default: return "";
    }
}

enum class Outcome { Complete, Restart };

// Runs one request. Complete: the .part holds the whole file and `hash` covers it. Restart: the .part was stale
// (the server says it is longer than the file) and has been emptied.
Outcome fetch(Transfer& t) {
    curl_init_once();
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) fail("libcurl could not start a transfer");
    t.curl = curl.get();
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers_guard(nullptr, curl_slist_free_all);
    // libcurl drops a custom Authorization header when a redirect leaves the host, so the token never reaches
    // the CDN.
    if (const std::string token = env("HF_TOKEN"); !token.empty()) {
        headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
        headers_guard.reset(headers);
    }
    const std::string range = fmt::format("{}-", t.offset);
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, t.url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    // A multi-GB download has no sensible total timeout; a stalled one is what to give up on.
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (t.offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

    const CURLcode rc = curl_easy_perform(c);
    if (t.bar) t.bar->finish();
    if (!t.error.empty()) fail("{}", t.error);
    const int64_t have = t.offset + t.written;
    if (rc != CURLE_OK) {
        const std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        if (t.body_started && (t.status == 200 || t.status == 206))
            fail("{}: download interrupted after {} of {} ({}); run the same pull again to resume", t.url, mib(have),
                 t.total > 0 ? mib(t.total) : "?", why);
        fail("{}: {}", t.url, why);
    }
    if (!t.body_started) t.begin_body();  // an empty body never reached on_body
    if (!t.error.empty()) fail("{}", t.error);
    if (t.status == 416) {
        // The .part is at least as long as the file. Equal: it is complete (killed before the rename); the
        // hash below decides whether to keep it. Longer, or the size unknown: it belongs to another version.
        const size_t slash = t.content_range.find('/');
        const int64_t size = slash == std::string::npos ? -1 : std::strtoll(t.content_range.c_str() + slash + 1, nullptr, 10);
        if (t.offset > 0 && size == t.offset) return Outcome::Complete;
        return Outcome::Restart;
    }
    if (t.status != 200 && t.status != 206) fail("{}: HTTP {}{}", t.url, t.status, status_hint(t.status));
    if (t.total >= 0 && have != t.total)
        fail("{}: download ended after {} of {}; run the same pull again to resume", t.url, mib(have), mib(t.total));
    return Outcome::Complete;
}

// The lock keeps two pulls of one model from appending to the same .part.
struct PartFile {
    int fd = -1;
    explicit PartFile(const std::string& path) {
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) fail("cannot open {}: {}", path, std::strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd);
            fail("another pull is writing {}", path);
        }
    }
    ~PartFile() {
        if (fd >= 0) ::close(fd);
    }
    void close_checked(const std::string& path) {
        const int f = fd;
        fd = -1;
        if (fsync(f) != 0 || ::close(f) != 0) fail("cannot finish writing {}: {}", path, std::strerror(errno));
    }
};

// Re-hashes the kept prefix of a resumed download (the hash state cannot be saved across processes).
int64_t hash_file(const std::string& path, Sha256& hash) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot read {}", path);
    std::vector<char> buf(1 << 20);
    int64_t n = 0;
    while (f) {
        f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const std::streamsize got = f.gcount();
        if (got <= 0) break;
        hash.update(buf.data(), static_cast<size_t>(got));
        n += got;
    }
    if (f.bad()) fail("cannot read {}", path);
    return n;
}

Entry read_entry(const fs::path& root, const fs::path& file) {
    Entry e;
    e.name = file.lexically_relative(root).generic_string();
    e.path = file.string();
    std::error_code ec;
    e.size = static_cast<int64_t>(fs::file_size(file, ec));
    std::ifstream f(e.path + ".json");
    if (!f) return e;
    // A damaged sidecar only loses the provenance; the model itself stays usable and listed.
    const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) return e;
    try {
        e.url = j.value("url", "");
        e.revision = j.value("revision", "");
        e.sha256 = j.value("sha256", "");
        e.pulled_at = j.value("pulled_at", "");
        e.verified = j.value("verified", false);
    } catch (const nlohmann::json::exception&) {
    }
    return e;
}

void write_sidecar(const Entry& e, const std::string& expected_from) {
    const nlohmann::json j = {{"name", e.name},          {"url", e.url},           {"revision", e.revision},
                              {"sha256", e.sha256},      {"verified", e.verified}, {"sha256_source", expected_from},
                              {"size", e.size},          {"pulled_at", e.pulled_at}};
    const std::string path = e.path + ".json", tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << j.dump(2) << "\n";
        if (!f.flush()) fail("cannot write {}", tmp);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) fail("cannot write {}: {}", path, ec.message());
}

// The user's name without what a store name does not carry: an `hf:` prefix and an `@REVISION`.
std::string bare_name(std::string name) {
    if (name.rfind("hf:", 0) == 0) name.erase(0, 3);
    if (const size_t at = name.rfind('@'); at != std::string::npos && name.find('/', at) == std::string::npos)
        name.erase(at);
    return name;
}

// Removes `dir` and its parents up to (not including) the store root while they are empty.
void prune_empty_dirs(const fs::path& root, fs::path dir) {
    std::error_code ec;
    while (dir != root && dir.string().size() > root.string().size()) {
        if (!fs::is_empty(dir, ec) || ec) break;
        fs::remove(dir, ec);
        dir = dir.parent_path();
    }
}

}  // namespace

std::string root() {
    if (const std::string h = env("HEARTH_HOME"); !h.empty()) return fs::absolute(fs::path(h) / "models").string();
    if (const std::string x = env("XDG_DATA_HOME"); !x.empty())
        return fs::absolute(fs::path(x) / "hearth" / "models").string();
    const std::string home = env("HOME");
    if (home.empty()) fail("cannot place the model store: set HEARTH_HOME (or HOME)");
    return (fs::path(home) / ".local" / "share" / "hearth" / "models").string();
}

Spec parse_spec(const std::string& spec) {
    if (spec.rfind("hf:", 0) != 0) fail("bad model spec '{}': expected hf:OWNER/REPO/FILE.gguf[@REVISION]", spec);
    std::string rest = spec.substr(3);
    Spec s;
    if (const size_t at = rest.rfind('@'); at != std::string::npos) {
        s.revision = rest.substr(at + 1);
        rest.erase(at);
        check_part(spec, s.revision, "revision");
    }
    std::vector<std::string> parts;
    for (size_t pos = 0;;) {
        const size_t slash = rest.find('/', pos);
        parts.push_back(rest.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos));
        if (slash == std::string::npos) break;
        pos = slash + 1;
    }
    if (parts.size() < 3) fail("bad model spec '{}': expected hf:OWNER/REPO/FILE.gguf[@REVISION]", spec);
    check_part(spec, parts[0], "owner");
    check_part(spec, parts[1], "repository");
    for (size_t i = 2; i < parts.size(); ++i) check_part(spec, parts[i], i + 1 < parts.size() ? "folder" : "file name");
    const std::string& file = parts.back();
    if (!ends_with(file, ".gguf") || file.size() == 5) fail("bad model spec '{}': the file must be a .gguf", spec);
    s.owner = parts[0];
    s.repo = parts[1];
    for (size_t i = 2; i < parts.size(); ++i) s.file += (i > 2 ? "/" : "") + parts[i];
    return s;
}

std::string hub_url(const Spec& s) {
    std::string endpoint = env("HEARTH_HF_ENDPOINT");
    if (endpoint.empty()) endpoint = "https://huggingface.co";
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    return fmt::format("{}/{}/{}/resolve/{}/{}", endpoint, s.owner, s.repo, s.revision, s.file);
}

std::vector<Entry> list() {
    const fs::path r = root();
    std::vector<Entry> out;
    std::error_code ec;
    if (!fs::is_directory(r, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(r, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && ends_with(it->path().filename().string(), ".gguf"))
            out.push_back(read_entry(r, it->path()));
    }
    if (ec) fail("cannot read the model store {}: {}", r.string(), ec.message());
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
    return out;
}

Entry find(const std::string& name) {
    const std::string q = bare_name(name);
    if (q.empty()) return {};
    const std::vector<Entry> all = list();
    std::vector<const Entry*> hits;
    for (const Entry& e : all) {
        if (e.name == q || e.name == q + ".gguf") return e;
        if (ends_with(e.name, "/" + q) || ends_with(e.name, "/" + q + ".gguf")) hits.push_back(&e);
    }
    if (hits.size() == 1) return *hits[0];
    if (hits.size() > 1) {
        std::string names;
        for (const Entry* e : hits) names += (names.empty() ? "" : ", ") + e->name;
        fail("'{}' matches several stored models: {} (give more of the name)", name, names);
    }
    return {};
}

std::string resolve_model(const std::string& arg) {
    std::error_code ec;
    if (fs::exists(arg, ec)) return arg;
    bool have_store = true;
    try {
        root();
    } catch (const Error&) {
        have_store = false;  // no HOME: only paths can work, and the message below says what was wrong
    }
    const Entry e = have_store ? find(arg) : Entry{};
    if (e.name.empty()) fail("no such file or stored model: {} (hearth list shows the store)", arg);
    return e.path;
}

PullResult pull(const std::string& spec_text, const PullOptions& opts) {
    const Spec spec = parse_spec(spec_text);
    std::string want = lower(opts.sha256);
    if (!want.empty() && !is_hex64(want)) fail("--sha256 must be 64 hex digits (got '{}')", opts.sha256);
    const fs::path r = root();
    const fs::path dest = r / spec.name();
    const std::string part = dest.string() + ".part";
    PullResult res;
    std::error_code ec;
    if (fs::exists(dest, ec)) {
        res.entry = read_entry(r, dest);
        if (!want.empty() && !res.entry.sha256.empty() && res.entry.sha256 != want)
            fail("{} is already in the store with sha256 {}, not {} (hearth rm it to pull again)", spec.name(),
                 res.entry.sha256, want);
        res.already_present = true;
        return res;
    }
    fs::create_directories(dest.parent_path(), ec);
    if (ec) fail("cannot create {}: {}", dest.parent_path().string(), ec.message());

    const std::string url = hub_url(spec);
    PartFile pf(part);
    Sha256 hash;
    Transfer t;
    // A failure before any byte arrived (bad URL, 404, refused connection) leaves nothing behind; one after
    // keeps the .part to resume from.
    struct Cleanup {
        const fs::path& root;
        const fs::path& dest;
        const std::string& part;
        bool armed = true;
        ~Cleanup() {
            if (!armed) return;
            std::error_code ec;
            const auto size = fs::file_size(part, ec);
            if (!ec && size != 0) return;
            if (!ec) fs::remove(part, ec);
            prune_empty_dirs(root, dest.parent_path());
        }
    } cleanup{r, dest, part};
    for (int attempt = 0;; ++attempt) {
        t = Transfer{};
        t.url = url;
        t.label = spec.file;
        t.fd = pf.fd;
        t.hash = &hash;
        t.progress = opts.progress;
        hash.reset();
        t.offset = hash_file(part, hash);
        res.resumed_from = t.offset;
        if (t.offset > 0 && opts.progress) fmt::print(stderr, "{}: resuming from {}\n", spec.file, mib(t.offset));
        if (fetch(t) == Outcome::Complete) break;
        if (attempt > 0) fail("{}: HTTP 416 (range not satisfiable) for a fresh download", url);
        if (ftruncate(pf.fd, 0) != 0) fail("cannot truncate {}: {}", part, std::strerror(errno));
        if (opts.progress) fmt::print(stderr, "{}: the partial download is stale; starting over\n", spec.file);
    }
    if (t.restarted) res.resumed_from = 0;  // the server ignored the Range request
    pf.close_checked(part);

    const std::string got = hash.hex();
    if (!want.empty()) {
        res.expected_from = "--sha256";
    } else if (!t.linked_etag.empty()) {
        want = t.linked_etag;
        res.expected_from = "X-Linked-Etag";
    } else if (!t.etag.empty()) {
        want = t.etag;
        res.expected_from = "ETag";
    }
    if (!want.empty() && got != want) {
        fs::remove(part, ec);
        fail("{}: sha256 mismatch: expected {} ({}), got {}; the download was deleted", url, want, res.expected_from,
             got);
    }
    try {
        (void)gguf::File::open(part);
    } catch (const Error& e) {
        fs::remove(part, ec);
        fail("{}: the download is not a valid GGUF file, deleted ({})", url, e.what());
    }
    fs::rename(part, dest, ec);
    if (ec) fail("cannot move {} into place: {}", part, ec.message());
    cleanup.armed = false;

    Entry& e = res.entry;
    e.name = spec.name();
    e.path = dest.string();
    e.size = static_cast<int64_t>(fs::file_size(dest));
    e.url = url;
    e.revision = spec.revision;
    e.sha256 = got;
    e.verified = !want.empty();
    e.pulled_at = iso_now();
    write_sidecar(e, res.expected_from);
    return res;
}

std::string remove(const std::string& name) {
    const fs::path r = root();
    Entry e = find(name);
    std::error_code ec;
    if (e.name.empty()) {
        // A pull that never finished leaves only a .part, which `hearth rm` by full name also clears.
        const std::string q = bare_name(name);
        bool valid = true;
        try {
            parse_spec("hf:" + q);  // keeps the path inside the store
        } catch (const Error&) {
            valid = false;
        }
        const fs::path part = r / (q + ".part");
        if (!valid || !fs::exists(part, ec)) fail("no stored model named {} (hearth list shows the store)", name);
        e.name = q;
        e.path = (r / q).string();
    }
    for (const std::string& p : {e.path, e.path + ".json", e.path + ".part", e.path + ".json.tmp"}) {
        fs::remove(p, ec);
        if (ec) fail("cannot remove {}: {}", p, ec.message());
    }
    prune_empty_dirs(r, fs::path(e.path).parent_path());
    return e.name;
}

}  // namespace hearth::store
