// A plain-text corpus on disk, as the lab's data commands write it and its trainers read it:
//
//   DIR/train.jsonl, DIR/val.jsonl   one JSON object per line: {"name":"ls","section":"1","text":"..."}
//   DIR/manifest.json                source, options, per-file {path, sha256, bytes, documents}, totals
//
// Every file is written crash-safe (a temporary file in DIR, fsync, rename, fsync of DIR) and the manifest
// last, so a reader that finds a manifest finds the files it describes; the reader checks each file's
// sha256 against it, so a file changed or half-replaced after the fact is refused rather than trained on.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace hearth::lab {

struct Document {
    std::string name;
    std::string section;
    std::string text;
};

// Reads DIR/<split>.jsonl (split is "train" or "val"), verifying the file's sha256 against DIR/manifest.json.
// Throws hearth::Error naming the problem (no manifest, missing split, sha256 mismatch, malformed line N).
std::vector<Document> read_corpus_split(const std::string& dir, const std::string& split);

// What the manifest records about one written split file.
struct CorpusFile {
    std::string split;
    std::string path;    // relative to DIR
    std::string sha256;  // lowercase hex
    uint64_t bytes = 0;  // of the file
    uint64_t documents = 0;
};

// Writes DIR/<split>.jsonl crash-safe and returns its manifest entry. Nothing named <split>.jsonl changes
// unless the whole file reached the disk.
CorpusFile write_corpus_split(const std::string& dir, const std::string& split, const std::vector<Document>& docs);

// Writes DIR/manifest.json crash-safe. `manifest` is the caller's (source, options, totals); this adds
// "format" and "files" (one entry per CorpusFile, keyed by split).
void write_corpus_manifest(const std::string& dir, nlohmann::json manifest, const std::vector<CorpusFile>& files);

// Removes DIR/manifest.json if present: called before a corpus is rewritten in place, so that a crash between
// the renames of the new files leaves "no manifest" rather than an old manifest beside new files.
void remove_corpus_manifest(const std::string& dir);

// Creates DIR if needed and proves it writable (a temporary file is created, synced and removed), so that a
// long build fails at its start, not its end. Throws hearth::Error naming DIR and the system's reason.
void check_corpus_dir_writable(const std::string& dir);

// sha256 of bytes, lowercase hex (OpenSSL EVP).
std::string sha256_hex(std::string_view bytes);

// Writes `content` to `path` through a temporary file in the same directory: write, fsync, rename, fsync of
// the directory. On any failure the temporary file is removed and `path` is left as it was.
void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace hearth::lab
