#include "lab/data/corpus.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace hearth::lab {
namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kFormat = "hearth-corpus/1";

class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) {
        if (!ctx_ || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
            EVP_MD_CTX_free(ctx_);
            fail("sha256: OpenSSL could not initialise");
        }
    }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;
    void update(std::string_view bytes) {
        if (EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) != 1) fail("sha256: OpenSSL update failed");
    }
    std::string hex() {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        if (EVP_DigestFinal_ex(ctx_, md, &n) != 1) fail("sha256: OpenSSL final failed");
        static const char digits[] = "0123456789abcdef";
        std::string out;
        for (unsigned int i = 0; i < n; ++i) {
            out += digits[md[i] >> 4];
            out += digits[md[i] & 15];
        }
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
};

std::string errno_text() { return std::strerror(errno); }

void fsync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("{}: cannot open the directory to sync it: {}", dir, errno_text());
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) fail("{}: fsync of the directory failed: {}", dir, std::strerror(err));
}

// A file that appears under its final name only when commit() has written, synced and renamed it; destroyed
// uncommitted, it removes its temporary file. Hashes what it writes so the manifest needs no second read.
class AtomicFile {
public:
    explicit AtomicFile(std::string path) : path_(std::move(path)) {
        const fs::path p(path_);
        dir_ = p.parent_path().empty() ? "." : p.parent_path().string();
        // Hidden and unique per process and call, so concurrent writers and a later reader never mistake it
        // for a corpus file; O_EXCL refuses to reuse a stale one.
        static std::atomic<uint64_t> serial{0};
        tmp_ = (fs::path(dir_) / fmt::format(".{}.tmp.{}.{}", p.filename().string(), getpid(), serial++)).string();
        fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd_ < 0) fail("{}: cannot write in {}: {}", path_, dir_, errno_text());
    }
    ~AtomicFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(tmp_.c_str());
    }
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(std::string_view bytes) {
        sha_.update(bytes);
        size_ += bytes.size();
        while (!bytes.empty()) {
            const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                fail("{}: write failed: {}", path_, errno_text());
            }
            bytes.remove_prefix(static_cast<size_t>(n));
        }
    }

    // Returns the sha256 (hex) of what was written.
    std::string commit() {
        if (::fsync(fd_) != 0) fail("{}: fsync failed: {}", path_, errno_text());
        const int rc = ::close(fd_);
        fd_ = -1;
        if (rc != 0) fail("{}: close failed: {}", path_, errno_text());
        if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("{}: rename failed: {}", path_, errno_text());
        committed_ = true;
        fsync_dir(dir_);
        return sha_.hex();
    }

    uint64_t size() const { return size_; }

private:
    std::string path_, dir_, tmp_;
    int fd_ = -1;
    bool committed_ = false;
    uint64_t size_ = 0;
    Sha256 sha_;
};

std::string read_whole(const std::string& path, bool& found) {
    std::ifstream f(path, std::ios::binary);
    found = static_cast<bool>(f);
    if (!found) return {};
    std::stringstream ss;
    ss << f.rdbuf();
    if (f.bad()) fail("{}: read failed", path);
    return ss.str();
}

std::string join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

}  // namespace

std::string sha256_hex(std::string_view bytes) {
    Sha256 sha;
    sha.update(bytes);
    return sha.hex();
}

void write_file_atomic(const std::string& path, std::string_view content) {
    AtomicFile f(path);
    f.write(content);
    f.commit();
}

void check_corpus_dir_writable(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("{}: cannot create the output directory: {}", dir, ec.message());
    if (!fs::is_directory(dir)) fail("{}: not a directory", dir);
    AtomicFile probe(join(dir, ".write-probe"));
    probe.write("probe");
    // Synced but never committed: the destructor removes it.
}

CorpusFile write_corpus_split(const std::string& dir, const std::string& split, const std::vector<Document>& docs) {
    CorpusFile info;
    info.split = split;
    info.path = split + ".jsonl";
    AtomicFile f(join(dir, info.path));
    std::string line;
    for (const Document& d : docs) {
        line.clear();
        line += R"({"name":)";
        line += nlohmann::json(d.name).dump();
        line += R"(,"section":)";
        line += nlohmann::json(d.section).dump();
        line += R"(,"text":)";
        line += nlohmann::json(d.text).dump();
        line += "}\n";
        f.write(line);
    }
    info.bytes = f.size();
    info.documents = docs.size();
    info.sha256 = f.commit();
    return info;
}

void write_corpus_manifest(const std::string& dir, nlohmann::json manifest, const std::vector<CorpusFile>& files) {
    manifest["format"] = kFormat;
    nlohmann::json j_files = nlohmann::json::object();
    for (const CorpusFile& f : files)
        j_files[f.split] = {{"path", f.path}, {"sha256", f.sha256}, {"bytes", f.bytes}, {"documents", f.documents}};
    manifest["files"] = j_files;
    write_file_atomic(join(dir, kManifest), manifest.dump(2) + "\n");
}

void remove_corpus_manifest(const std::string& dir) {
    const std::string path = join(dir, kManifest);
    if (::unlink(path.c_str()) != 0) {
        if (errno == ENOENT) return;
        fail("{}: cannot remove the old manifest: {}", path, errno_text());
    }
    fsync_dir(dir);
}

std::vector<Document> read_corpus_split(const std::string& dir, const std::string& split) {
    const std::string manifest_path = join(dir, kManifest);
    bool found = false;
    const std::string manifest_text = read_whole(manifest_path, found);
    if (!found) fail("{}: no {} (not a corpus, or its writing did not finish)", dir, kManifest);
    nlohmann::json manifest;
    try {
        manifest = nlohmann::json::parse(manifest_text);
    } catch (const nlohmann::json::exception& e) {
        fail("{}: not valid JSON: {}", manifest_path, e.what());
    }
    const auto files = manifest.find("files");
    if (!manifest.is_object() || files == manifest.end() || !files->is_object())
        fail("{}: no \"files\" object (not a hearth corpus manifest)", manifest_path);
    const auto entry = files->find(split);
    if (entry == files->end()) fail("{}: the corpus has no split '{}'", manifest_path, split);

    std::string rel, want_sha;
    uint64_t want_docs = 0;
    try {
        rel = entry->at("path").get<std::string>();
        want_sha = entry->at("sha256").get<std::string>();
        want_docs = entry->at("documents").get<uint64_t>();
    } catch (const nlohmann::json::exception&) {
        fail("{}: the entry of split '{}' needs path, sha256 and documents", manifest_path, split);
    }
    // The manifest names files beside it, never elsewhere.
    if (rel.empty() || rel.find('/') != std::string::npos || rel == "." || rel == "..")
        fail("{}: split '{}' has path '{}', which is not a file name in the corpus directory", manifest_path, split,
             rel);
    const std::string path = join(dir, rel);
    const std::string data = read_whole(path, found);
    if (!found) fail("{}: missing split file (the manifest lists it)", path);
    const std::string got_sha = sha256_hex(data);
    if (got_sha != want_sha)
        fail("{}: sha256 mismatch: the manifest says {}, the file has {}", path, want_sha, got_sha);

    std::vector<Document> docs;
    size_t line_no = 0;
    for (size_t pos = 0; pos < data.size();) {
        size_t end = data.find('\n', pos);
        if (end == std::string::npos) end = data.size();
        const std::string_view line(data.data() + pos, end - pos);
        pos = end + 1;
        ++line_no;
        try {
            const nlohmann::json j = nlohmann::json::parse(line);
            if (!j.is_object()) fail("{}: malformed line {}: not a JSON object", path, line_no);
            Document d;
            for (auto [key, field] : {std::pair{"name", &d.name}, {"section", &d.section}, {"text", &d.text}}) {
                const auto it = j.find(key);
                if (it == j.end() || !it->is_string())
                    fail("{}: malformed line {}: \"{}\" is missing or not a string", path, line_no, key);
                *field = it->get<std::string>();
            }
            docs.push_back(std::move(d));
        } catch (const nlohmann::json::exception& e) {
            fail("{}: malformed line {}: {}", path, line_no, e.what());
        }
    }
    if (docs.size() != want_docs)
        fail("{}: {} documents, but the manifest says {}", path, docs.size(), want_docs);
    return docs;
}

}  // namespace hearth::lab
