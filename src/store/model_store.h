// The local model store: `hearth pull hf:OWNER/REPO/FILE.gguf` downloads into it, `hearth list` / `hearth rm`
// manage it, and every `-m` accepts a store name as well as a path.
//
// Why it is shaped so: a model is one plain GGUF file at models/OWNER/REPO/FILE.gguf (the hub's own layout), so
// the store needs no database or blob indirection, any tool can read a stored model by path, and a name is just
// the path below the root. What the file alone cannot say (where it came from, the verified sha256, when)
// lives in a sidecar FILE.gguf.json. A download goes to FILE.gguf.part and is renamed into place only after its
// hash and its GGUF structure check out, so a file in the store is always complete and valid, and an interrupted
// pull resumes from the .part.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hearth::store {

// $HEARTH_HOME/models, else $XDG_DATA_HOME/hearth/models, else ~/.local/share/hearth/models.
std::string root();

// A parsed `hf:OWNER/REPO/PATH.gguf[@REVISION]`. PATH may have folders (the hub allows them).
struct Spec {
    std::string owner, repo, file, revision = "main";
    std::string name() const { return owner + "/" + repo + "/" + file; }  // the store name
};
// Strict: throws hearth::Error naming the problem (no `..`, no empty parts, must end in .gguf, ...).
Spec parse_spec(const std::string& spec);
// ${HEARTH_HF_ENDPOINT:-https://huggingface.co}/OWNER/REPO/resolve/REVISION/PATH.gguf
std::string hub_url(const Spec& spec);

struct Entry {
    std::string name;  // OWNER/REPO/FILE.gguf
    std::string path;  // absolute file path
    int64_t size = 0;
    // From the sidecar; empty when it is missing (a file copied in by hand).
    std::string url, revision, sha256, pulled_at;
    bool verified = false;
};
// Every complete model in the store, sorted by name.
std::vector<Entry> list();

// The stored model a user means by `name`: the full name (an `hf:` prefix and `@REVISION` are ignored), or a
// suffix of it on a `/` boundary, with or without `.gguf`, that matches exactly one model. Nothing matches →
// an Entry with an empty name; several → throws hearth::Error listing them.
Entry find(const std::string& name);

// What `-m ARG` opens: an existing file path wins, else a store name, else an error.
std::string resolve_model(const std::string& arg);

struct PullOptions {
    std::string sha256;  // expected hash (lower or upper case hex); overrides the server's
    bool progress = true;  // the bar, and a line on stderr when a download resumes or starts over
};
struct PullResult {
    Entry entry;
    bool already_present = false;  // the model was in the store; nothing was downloaded
    int64_t resumed_from = 0;      // bytes of an earlier .part kept
    std::string expected_from;     // "--sha256", "X-Linked-Etag", "ETag" or "" (not verified)
};
// Downloads (resuming a .part), verifies sha256 and GGUF structure, and moves the file into the store.
PullResult pull(const std::string& spec, const PullOptions& opts);

// Removes a stored model (its file, sidecar and any .part) and the folders it leaves empty. Returns its name.
std::string remove(const std::string& name);

}  // namespace hearth::store
