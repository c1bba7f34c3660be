#include "tokenizer/import.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace hearth::tok {
namespace {

using nlohmann::json;

json read_json(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open", path);
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        fail("{}: malformed JSON: {}", path, e.what());
    }
}

enum TokenType : int32_t { kNormal = 1, kControl = 3, kUserDefined = 4 };

void set_bpe(gguf::Writer& w, std::vector<std::string> tokens, std::vector<int32_t> types,
             const std::vector<std::string>& merges, const std::string& pre, int32_t bos, int32_t eos, bool add_bos) {
    w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
    w.set("tokenizer.ggml.pre", gguf::Value::str(pre));
    w.set("tokenizer.ggml.tokens", gguf::Value::str_array(tokens));
    w.set("tokenizer.ggml.token_type", gguf::Value::i32_array(types));
    w.set("tokenizer.ggml.merges", gguf::Value::str_array(merges));
    if (bos >= 0) w.set("tokenizer.ggml.bos_token_id", gguf::Value::u32(static_cast<uint32_t>(bos)));
    if (eos >= 0) w.set("tokenizer.ggml.eos_token_id", gguf::Value::u32(static_cast<uint32_t>(eos)));
    w.set("tokenizer.ggml.add_bos_token", gguf::Value::boolean(add_bos));
}

// The llama.cpp pre-tokenizer name for a tokenizer.json's pre_tokenizer section. Only byte-level BPE is
// imported; a section hearth does not recognise is an error naming it rather than a guess.
std::string detect_pre(const json& j, const std::string& path) {
    if (!j.contains("pre_tokenizer") || !j["pre_tokenizer"].is_object())
        fail("{}: no pre_tokenizer (hearth imports byte-level BPE tokenizers, which have a ByteLevel one)", path);
    const json& pt = j["pre_tokenizer"];
    std::vector<json> parts;
    if (pt.value("type", "") == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array())
        for (const auto& p : pt["pretokenizers"]) parts.push_back(p);
    else
        parts.push_back(pt);
    std::string types;
    bool byte_level = false, byte_level_regex = false, digits = false;
    std::string split;
    for (const auto& p : parts) {
        const std::string type = p.is_object() ? p.value("type", "?") : "?";
        types += (types.empty() ? "" : ", ") + type;
        if (type == "ByteLevel") {
            byte_level = true;
            byte_level_regex = p.value("use_regex", true);
        } else if (type == "Digits" && p.value("individual_digits", false)) {
            digits = true;
        } else if (type == "Split" && p.contains("pattern") && p["pattern"].is_object() &&
                   p["pattern"].contains("Regex") && p["pattern"]["Regex"].is_string()) {
            split = p["pattern"]["Regex"].get<std::string>();
        } else {
            fail("{}: pre-tokenizer '{}' is not supported (byte-level BPE with ByteLevel, Digits or Split)", path,
                 type);
        }
    }
    if (!byte_level) fail("{}: pre-tokenizer [{}] is not byte-level (no ByteLevel): not supported", path, types);
    static const std::string kQwen2 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const std::string kLlama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    if (!split.empty() && !digits && !byte_level_regex) {
        if (split == kQwen2) return "qwen2";
        if (split == kLlama3) return "llama-bpe";
        fail("{}: the Split pre-tokenizer regex '{}' is not one hearth recognises", path, split);
    }
    if (split.empty() && digits && byte_level_regex) return "smollm";
    if (split.empty() && !digits && byte_level_regex) return "gpt-2";
    fail("{}: pre-tokenizer combination [{}] is not supported", path, types);
}

ImportedTokenizer from_hf_json(const std::string& path, gguf::Writer& w, const std::string& pre_override) {
    const json j = read_json(path);
    if (!j.contains("model") || !j["model"].is_object()) fail("{}: no \"model\" object", path);
    const json& model = j["model"];
    const std::string type = model.value("type", "");
    if (type != "BPE") fail("{}: tokenizer model '{}' is not supported (only BPE)", path, type);
    if (!model.contains("vocab") || !model["vocab"].is_object()) fail("{}: model.vocab is missing", path);
    std::map<int64_t, std::string> by_id;
    for (const auto& [tok, id] : model["vocab"].items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0) fail("{}: vocab id of '{}' is not an id", path, tok);
        by_id[id.get<int64_t>()] = tok;
    }
    std::map<int64_t, bool> special;
    if (j.contains("added_tokens"))
        for (const auto& a : j["added_tokens"]) {
            const int64_t id = a.at("id").get<int64_t>();
            by_id[id] = a.at("content").get<std::string>();
            special[id] = a.value("special", false);
        }
    const int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
    if (static_cast<int64_t>(by_id.size()) != n) fail("{}: token ids are not contiguous from 0", path);
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    for (const auto& [id, text] : by_id) {
        tokens.push_back(text);
        auto it = special.find(id);
        types.push_back(it == special.end() ? kNormal : it->second ? kControl : kUserDefined);
    }
    std::vector<std::string> merges;
    if (model.contains("merges"))
        for (const auto& m : model["merges"]) {
            if (m.is_string()) merges.push_back(m.get<std::string>());
            else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
            else fail("{}: a merge is neither \"a b\" nor [a, b]", path);
        }
    auto find = [&](std::initializer_list<const char*> names) -> int32_t {
        for (const char* name : names)
            for (const auto& [id, text] : by_id)
                if (text == name) return static_cast<int32_t>(id);
        return -1;
    };
    const int32_t eos = find({"<|im_end|>", "<|endoftext|>", "</s>"});
    const int32_t bos = find({"<|im_start|>", "<|endoftext|>", "<s>"});
    const std::string pre = pre_override.empty() ? detect_pre(j, path) : pre_override;
    set_bpe(w, std::move(tokens), std::move(types), merges, pre, bos, eos, false);
    return {n, "gpt2"};
}

ImportedTokenizer from_encoder_json(const std::string& path, gguf::Writer& w, const std::string& pre_override) {
    const json enc = read_json(path);
    const std::string bpe_path = (std::filesystem::path(path).parent_path() / "vocab.bpe").string();
    std::ifstream bpe(bpe_path);
    if (!bpe) fail("{}: cannot open (it must sit beside {})", bpe_path, path);
    std::map<int64_t, std::string> by_id;
    for (const auto& [tok, id] : enc.items()) by_id[id.get<int64_t>()] = tok;
    const int64_t n_base = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
    if (static_cast<int64_t>(by_id.size()) != n_base) fail("{}: token ids are not contiguous from 0", path);
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    for (auto& [id, t] : by_id) {
        tokens.push_back(t);
        types.push_back(kNormal);
    }
    // Llama 3's 256 special tokens follow the 128000 BPE tokens.
    const bool llama3 = n_base == 128000;
    if (llama3) {
        const std::map<int, std::string> named = {{0, "<|begin_of_text|>"}, {1, "<|end_of_text|>"},
                                                  {4, "<|finetune_right_pad_id|>"}, {6, "<|start_header_id|>"},
                                                  {7, "<|end_header_id|>"}, {8, "<|eom_id|>"},
                                                  {9, "<|eot_id|>"}, {10, "<|python_tag|>"}};
        int reserved = 0;
        for (int i = 0; i < 256; ++i) {
            auto it = named.find(i);
            tokens.push_back(it != named.end() ? it->second
                                               : "<|reserved_special_token_" + std::to_string(reserved++) + "|>");
            types.push_back(kControl);
        }
    }
    std::vector<std::string> merges;
    std::string line;
    while (std::getline(bpe, line)) {
        if (line.rfind("#version", 0) == 0 || line.empty()) continue;
        merges.push_back(line);
    }
    const std::string pre = pre_override.empty() ? (llama3 ? "llama-bpe" : "gpt-2") : pre_override;
    set_bpe(w, std::move(tokens), std::move(types), merges, pre, llama3 ? 128000 : -1, llama3 ? 128009 : -1, llama3);
    return {static_cast<int64_t>(n_base + (llama3 ? 256 : 0)), "gpt2"};
}

}  // namespace

ImportedTokenizer import_tokenizer(const std::string& path, gguf::Writer& w, const std::string& pre) {
    if (!std::filesystem::exists(path)) fail("{}: no such file", path);
    const std::string ext = std::filesystem::path(path).extension().string();
    if (ext == ".gguf") {
        gguf::File f = gguf::File::open(path);
        ImportedTokenizer r;
        // The tokenizer, and how `hearth tokenizer train` made it.
        for (const auto& [key, value] : f.metadata())
            if (key.rfind("tokenizer.", 0) == 0 || key.rfind("hearth.tokenizer.", 0) == 0) w.set(key, value);
        if (!f.has("tokenizer.ggml.tokens")) fail("{}: has no tokenizer.ggml.tokens", path);
        r.n_tokens = static_cast<int64_t>(f.find("tokenizer.ggml.tokens")->arr.size());
        r.model = f.get_str_or("tokenizer.ggml.model", "");
        return r;
    }
    if (std::filesystem::path(path).filename() == "encoder.json") return from_encoder_json(path, w, pre);
    if (ext == ".json") return from_hf_json(path, w, pre);
    fail("{}: unknown tokenizer file (expected a .gguf, a tokenizer.json or an encoder.json)", path);
}

Vocab import_vocab(const std::string& path, const std::string& pre) {
    gguf::Writer w;
    import_tokenizer(path, w, pre);
    const std::vector<uint8_t> bytes = w.to_bytes();
    return Vocab::from_gguf(gguf::File::from_memory(bytes.data(), bytes.size(), path));
}

}  // namespace hearth::tok
