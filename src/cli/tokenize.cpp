// `hearth tokenize` and `hearth detokenize`: text <-> token ids with a model's vocabulary, printed the way
// llama.cpp's llama-tokenize prints them. Only the GGUF's tokenizer.* metadata is read (no weights are
// loaded), so a vocab-only GGUF works as well as a model.
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "gguf/gguf.h"
#include "serve/openai.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {
namespace {


// A piece as it appears between the quotes of a listing line. Valid UTF-8 is printed as it is, but a piece
// such as "\n" must not break the line and a byte token's half of a character must not reach the terminal
// raw, so control characters and bytes that are not valid UTF-8 are shown as escapes (and a backslash is
// doubled, which keeps the escapes unambiguous).
std::string display_piece(std::string_view p) {
    std::string out;
    for (size_t i = 0; i < p.size();) {
        const size_t n = tok::utf8_unit_length(p, i);
        const std::string_view unit = p.substr(i, n);
        const auto c = static_cast<unsigned char>(p[i]);
        if (c < 0x80) {
            if (c == '\\') out += "\\\\";
            else if (c == '\n') out += "\\n";
            else if (c == '\t') out += "\\t";
            else if (c == '\r') out += "\\r";
            else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02X}", c);
            else out += static_cast<char>(c);
        } else if (tok::is_valid_utf8(unit)) {
            out += unit;
        } else {
            for (unsigned char b : unit) out += fmt::format("\\x{:02X}", b);
        }
        i += n;
    }
    return out;
}

// Token ids from the command line: separate arguments, or lists as `tokenize --ids` prints them ("[1, 2, 3]"),
// so that one command's output can be pasted into the other.
std::vector<int32_t> parse_ids(const std::vector<std::string>& args, const tok::Vocab& vocab) {
    std::vector<int32_t> ids;
    for (const std::string& arg : args) {
        size_t i = 0;
        while (i < arg.size()) {
            const size_t start = arg.find_first_not_of("[], \t\n", i);
            if (start == std::string::npos) break;
            size_t end = arg.find_first_of("[], \t\n", start);
            if (end == std::string::npos) end = arg.size();
            const std::string_view word(arg.data() + start, end - start);
            int64_t id = 0;
            const auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
            if (ec == std::errc::result_out_of_range || (ec == std::errc() && ptr == word.data() + word.size() &&
                                                         (id < 0 || id >= vocab.n_tokens())))
                fail("token id {} is out of range: the vocabulary has {} tokens (ids 0 to {})", word, vocab.n_tokens(),
                     vocab.n_tokens() - 1);
            if (ec != std::errc() || ptr != word.data() + word.size())
                fail("'{}' is not a token id (ids are integers, separated by spaces or commas)", word);
            ids.push_back(static_cast<int32_t>(id));
            i = end;
        }
    }
    return ids;
}

}  // namespace

void add_tokenize(CLI::App& app) {
    {
        auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text (as llama.cpp's llama-tokenize)");
        struct Opts {
            std::string model, prompt, file;
            bool ids = false, json = false, no_bos = false, special = false;
        };
        auto o = std::make_shared<Opts>();
        cmd->add_option("-m,--model", o->model, "GGUF model or vocab-only GGUF, or a store name (hearth list)")
            ->required();
        auto* input = cmd->add_option_group("input", "The text: exactly one of -p and -f");
        input->add_option("-p,--prompt", o->prompt, "Text to tokenize");
        auto* file = input->add_option("-f,--file", o->file, "File whose whole content is the text");
        input->require_option(1);
        auto* ids = cmd->add_flag("--ids", o->ids, "Print only the ids, as a list: [1, 2, 3]");
        auto* js = cmd->add_flag("--json", o->json, "Print {\"tokens\": [{\"id\", \"piece\"}, ...], \"count\"} as JSON");
        ids->excludes(js);
        cmd->add_flag("--no-bos", o->no_bos, "Do not add the BOS (and EOS) tokens the vocabulary adds to a text");
        cmd->add_flag("--special", o->special,
                      "Parse special-token texts in the input (\"<s>\", \"<|im_start|>\") into their ids; without it "
                      "they are ordinary text");
        cmd->callback([o, file] {
            const std::string text = file->count() ? read_text(o->file, "text") : o->prompt;
            const tok::Vocab vocab = load_vocab(o->model);
            const std::vector<int32_t> tokens = vocab.encode(text, /*add_special=*/!o->no_bos, o->special);
            std::string out;
            if (o->ids) {
                out = "[";
                for (size_t i = 0; i < tokens.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", tokens[i]);
                out += "]\n";
            } else if (o->json) {
                nlohmann::ordered_json j;
                j["tokens"] = nlohmann::ordered_json::array();
                for (int32_t t : tokens)
                    j["tokens"].push_back({{"id", t}, {"piece", serve::piece_json(vocab.token_to_piece(t, /*special=*/true))}});
                j["count"] = tokens.size();
                out = j.dump() + "\n";
            } else {
                // Special tokens are shown by their text ('<s>'), as llama-tokenize does.
                for (int32_t t : tokens)
                    out += fmt::format("{:>6} -> '{}'\n", t, display_piece(vocab.token_to_piece(t, /*special=*/true)));
            }
            std::fwrite(out.data(), 1, out.size(), stdout);
        });
    }
    {
        auto* cmd = app.add_subcommand("detokenize", "Print the text of token ids");
        struct Opts {
            std::string model;
            std::vector<std::string> ids;
            bool special = false;
        };
        auto o = std::make_shared<Opts>();
        cmd->add_option("-m,--model", o->model, "GGUF model or vocab-only GGUF, or a store name (hearth list)")
            ->required();
        cmd->add_option("ids", o->ids, "Token ids: separate arguments, or a list as tokenize --ids prints it")
            ->required();
        cmd->add_flag("--special", o->special,
                      "Write every token, BOS, EOS and other control tokens included, as its text");
        cmd->callback([o] {
            const tok::Vocab vocab = load_vocab(o->model);
            std::vector<int32_t> ids = parse_ids(o->ids, vocab);
            if (!o->special) {
                // The inverse of `tokenize`: the BOS / EOS (WordPiece: [CLS] / [SEP]) the vocabulary adds to a
                // text are not part of it, and once the BOS is gone decode() also drops the space the SPM
                // encoder put before the text, so the ids of `tokenize -p X` give back X. (llama.cpp's
                // detokenize keeps that space after a BOS, and decode(remove_special) follows it.)
                if (!ids.empty() && vocab.add_bos() && ids.front() == vocab.bos()) ids.erase(ids.begin());
                if (!ids.empty() && vocab.add_eos() && ids.back() == vocab.eos()) ids.pop_back();
                if (!ids.empty() && vocab.model() == tok::TokenizerModel::Wpm && vocab.add_sep() &&
                    ids.back() == vocab.sep())
                    ids.pop_back();
            }
            // The bytes as they are: ids may split a character, and the output is meant to be exact.
            const std::string text = vocab.decode(ids, o->special);
            std::fwrite(text.data(), 1, text.size(), stdout);
        });
    }
}

}  // namespace hearth::cli
