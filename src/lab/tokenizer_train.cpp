#include "lab/tokenizer_train.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <unordered_map>

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include "base/error.h"
#include "tokenizer/vocab.h"

#ifndef HEARTH_SENTENCEPIECE_VERSION
#define HEARTH_SENTENCEPIECE_VERSION "unknown"
#endif

namespace hearth::lab {

namespace {

namespace fs = std::filesystem;

// llama.cpp's token types (llama_token_type), which are also SentencePiece's piece types.
enum : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// A sample that is the same for a seed on every platform: splitmix64 and an unbiased bounded draw (std's
// distributions are implementation-defined).
class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, n), n > 0 (Lemire's multiply-and-reject).
    uint64_t below(uint64_t n) {
        const uint64_t threshold = (0 - n) % n;
        for (;;) {
            const unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
            if (static_cast<uint64_t>(m) >= threshold) return static_cast<uint64_t>(m >> 64);
        }
    }

private:
    uint64_t s_;
};

// Feeds SentencePiece the chosen lines from memory, so that nothing is written beside the user's files.
class LineIterator : public sentencepiece::SentenceIterator {
public:
    LineIterator(const std::vector<std::string_view>& lines, const std::function<void(int64_t, int64_t)>& on_load)
        : lines_(lines), on_load_(on_load) {
        load();
    }
    bool done() const override { return i_ >= lines_.size(); }
    void Next() override {
        ++i_;
        load();
        if (on_load_ && (i_ % 4096 == 0 || i_ == lines_.size()))
            on_load_(static_cast<int64_t>(i_), static_cast<int64_t>(lines_.size()));
    }
    const std::string& value() const override { return value_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

private:
    void load() {
        if (i_ < lines_.size()) value_.assign(lines_[i_]);
    }
    const std::vector<std::string_view>& lines_;
    const std::function<void(int64_t, int64_t)>& on_load_;
    size_t i_ = 0;
    std::string value_;
};

// SentencePiece's status messages start with "<file>(<line>) [<condition>] "; the rest is the sentence.
std::string spm_message(const sentencepiece::util::Status& st) {
    std::string msg = st.message();
    const size_t cond = msg.find(") [");
    const size_t end = cond == std::string::npos ? cond : msg.find("] ", cond);
    if (end != std::string::npos && msg.find(' ') > cond) msg.erase(0, end + 2);
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    return msg;
}

// The number that follows `after` in `msg`, or "" when `after` is not there.
std::string number_after(const std::string& msg, std::string_view after) {
    size_t i = msg.find(after);
    if (i == std::string::npos) return "";
    i += after.size();
    size_t j = i;
    while (j < msg.size() && msg[j] >= '0' && msg[j] <= '9') ++j;
    return msg.substr(i, j - i);
}

[[noreturn]] void fail_training(const sentencepiece::util::Status& st, const TokenizerTrainOptions& o) {
    const std::string msg = spm_message(st);
    // "Vocabulary size too high (N). Please set it to a value <= M."
    if (msg.find("Vocabulary size too high") != std::string::npos) {
        const std::string most = number_after(msg, "<= ");
        if (!most.empty())
            fail("the corpus is too small for a vocabulary of {} tokens: SentencePiece ({}) finds at most {} in it "
                 "(use --vocab-size {} or less, or more text)",
                 o.vocab_size, spm_type_name(o.type), most, most);
    }
    // "Vocabulary size is smaller than required_chars. N vs M."
    if (msg.find("Vocabulary size is smaller than required_chars") != std::string::npos) {
        const std::string need = number_after(msg, " vs ");
        if (!need.empty())
            fail("a vocabulary of {} tokens cannot hold the characters the corpus needs at character coverage {}: "
                 "SentencePiece needs at least {} (with the 259 special and byte tokens); raise --vocab-size or "
                 "lower --character-coverage",
                 o.vocab_size, o.character_coverage, need);
    }
    fail("sentencepiece training failed: {}", msg);
}

std::string errno_text(int e) { return std::system_category().message(e); }

}  // namespace

SpmType spm_type_from_name(const std::string& name) {
    if (name == "bpe") return SpmType::Bpe;
    if (name == "unigram") return SpmType::Unigram;
    fail("unknown tokenizer type '{}' (expected bpe or unigram)", name);
}

const char* spm_type_name(SpmType t) { return t == SpmType::Bpe ? "bpe" : "unigram"; }

TrainedTokenizer train_tokenizer(const std::vector<std::string>& texts, const TokenizerTrainOptions& o) {
    if (o.vocab_size < kMinTokenizerVocab)
        fail("vocab size {} is too small: at least {} (3 special tokens, 256 byte tokens and some text)", o.vocab_size,
             kMinTokenizerVocab);
    if (!(o.character_coverage > 0 && o.character_coverage <= 1))
        fail("character coverage {} is out of range (0, 1]", o.character_coverage);
    if (o.threads < 1) fail("threads must be at least 1 (got {})", o.threads);
    if (o.max_sentences < 0) fail("max sentences must be 0 (all) or more (got {})", o.max_sentences);

    TrainedTokenizer r;
    std::vector<std::string_view> lines;
    for (const std::string& text : texts) {
        std::string_view rest(text);
        while (!rest.empty()) {
            const size_t nl = rest.find('\n');
            const std::string_view line = rest.substr(0, nl);
            rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
            if (line.empty()) continue;
            ++r.sentences;
            if (line.size() > kMaxSentenceBytes) {
                ++r.sentences_long;
                continue;
            }
            lines.push_back(line);
        }
    }
    if (lines.empty() && r.sentences == 0) fail("the corpus is empty: no text to train on");
    if (lines.empty()) fail("every line of the corpus is longer than {} bytes: nothing to train on", kMaxSentenceBytes);

    if (o.max_sentences > 0 && lines.size() > static_cast<size_t>(o.max_sentences)) {
        // A uniform sample (partial Fisher-Yates), kept in corpus order.
        const size_t k = static_cast<size_t>(o.max_sentences);
        std::vector<size_t> idx(lines.size());
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
        Rng rng(o.seed);
        for (size_t i = 0; i < k; ++i) std::swap(idx[i], idx[i + rng.below(idx.size() - i)]);
        idx.resize(k);
        std::sort(idx.begin(), idx.end());
        std::vector<std::string_view> sample;
        sample.reserve(k);
        for (size_t i : idx) sample.push_back(lines[i]);
        lines.swap(sample);
    }
    r.sentences_used = static_cast<int64_t>(lines.size());

    // The sample is drawn above, so SentencePiece takes every sentence in order; neither the BPE nor the unigram
    // trainer draws random numbers after that, so the result depends only on the sentences, the options and
    // (unigram) the thread count.
    const std::unordered_map<std::string, std::string> args = {
        {"model_type", spm_type_name(o.type)},
        {"vocab_size", std::to_string(o.vocab_size)},
        {"character_coverage", fmt::format("{}", o.character_coverage)},
        {"byte_fallback", "true"},
        {"split_digits", "true"},
        {"normalization_rule_name", "identity"},
        {"add_dummy_prefix", "true"},
        {"remove_extra_whitespaces", "false"},
        // Runs of spaces (indentation) become pieces of their own, as in Llama 2's vocabulary; otherwise every
        // space but a word's first is a token (man pages: 35 % more tokens).
        {"allow_whitespace_only_pieces", "true"},
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"},
        {"max_sentence_length", std::to_string(kMaxSentenceBytes)},
        {"num_threads", std::to_string(o.threads)},
        {"unk_id", "0"},
        {"bos_id", "1"},
        {"eos_id", "2"},
        {"pad_id", "-1"},
        {"unk_piece", "<unk>"},
        {"bos_piece", "<s>"},
        {"eos_piece", "</s>"},
        // SentencePiece logs every step on stderr; errors come back in the status.
        {"minloglevel", "2"},
    };
    LineIterator it(lines, o.on_load);
    const auto t0 = std::chrono::steady_clock::now();
    const sentencepiece::util::Status st = sentencepiece::SentencePieceTrainer::Train(args, &it, &r.spm_model);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st.ok()) fail_training(st, o);

    sentencepiece::SentencePieceProcessor sp;
    const sentencepiece::util::Status loaded = sp.LoadFromSerializedProto(r.spm_model);
    if (!loaded.ok()) fail("cannot load the trained sentencepiece model: {}", spm_message(loaded));
    const int n = sp.GetPieceSize();
    r.tokens.reserve(static_cast<size_t>(n));
    for (int id = 0; id < n; ++id) {
        r.tokens.push_back(sp.IdToPiece(id));
        r.scores.push_back(sp.GetScore(id));
        // No user-defined symbols are asked for, so every other piece is normal.
        r.types.push_back(sp.IsUnknown(id)   ? kUnknown
                          : sp.IsControl(id) ? kControl
                          : sp.IsUnused(id)  ? kUnused
                          : sp.IsByte(id)    ? kByte
                                             : kNormal);
    }
    if (n < kMinTokenizerVocab || r.tokens[0] != "<unk>" || r.tokens[1] != "<s>" || r.tokens[2] != "</s>" ||
        r.tokens[3] != "<0x00>" || r.types[258] != kByte)
        fail("the trained sentencepiece model does not have the Llama layout (<unk>, <s>, </s>, then 256 bytes)");
    return r;
}

gguf::Writer tokenizer_gguf(const TrainedTokenizer& t, const TokenizerTrainOptions& o) {
    using gguf::Value;
    gguf::Writer w;
    w.set("general.architecture", Value::str("llama"));
    w.set("general.name", Value::str(fmt::format("hearth-spm-{}-{}", spm_type_name(o.type), t.tokens.size())));
    w.set("tokenizer.ggml.model", Value::str("llama"));
    w.set("tokenizer.ggml.tokens", Value::str_array(t.tokens));
    w.set("tokenizer.ggml.scores", Value::f32_array(t.scores));
    w.set("tokenizer.ggml.token_type", Value::i32_array(t.types));
    w.set("tokenizer.ggml.unknown_token_id", Value::u32(0));
    w.set("tokenizer.ggml.bos_token_id", Value::u32(1));
    w.set("tokenizer.ggml.eos_token_id", Value::u32(2));
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(true));
    w.set("tokenizer.ggml.add_eos_token", Value::boolean(false));
    w.set("tokenizer.ggml.add_space_prefix", Value::boolean(true));
    // Under tokenizer.* so that whoever copies a vocabulary's tokenizer keys into a model carries it along.
    w.set("tokenizer.hearth.algorithm", Value::str(spm_type_name(o.type)));
    w.set("hearth.tokenizer.trainer", Value::str("sentencepiece " HEARTH_SENTENCEPIECE_VERSION));
    w.set("hearth.tokenizer.type", Value::str(spm_type_name(o.type)));
    w.set("hearth.tokenizer.vocab_size", Value::u32(static_cast<uint32_t>(o.vocab_size)));
    w.set("hearth.tokenizer.character_coverage", Value::f64(o.character_coverage));
    w.set("hearth.tokenizer.max_sentences", Value::u64(static_cast<uint64_t>(o.max_sentences)));
    w.set("hearth.tokenizer.seed", Value::u64(o.seed));
    w.set("hearth.tokenizer.threads", Value::u32(static_cast<uint32_t>(o.threads)));
    w.set("hearth.tokenizer.sentences", Value::u64(static_cast<uint64_t>(t.sentences)));
    w.set("hearth.tokenizer.sentences_used", Value::u64(static_cast<uint64_t>(t.sentences_used)));
    w.set("hearth.tokenizer.normalization", Value::str("identity"));
    w.set("hearth.tokenizer.byte_fallback", Value::boolean(true));
    w.set("hearth.tokenizer.split_digits", Value::boolean(true));
    w.set("hearth.tokenizer.add_dummy_prefix", Value::boolean(true));
    w.set("hearth.tokenizer.remove_extra_whitespaces", Value::boolean(false));
    w.set("hearth.tokenizer.allow_whitespace_only_pieces", Value::boolean(true));
    return w;
}

void check_writable(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) fail("{}: is a folder, not a file", path);
    const fs::path parent = fs::path(path).parent_path();
    const std::string probe =
        ((parent.empty() ? fs::path(".") : parent) / fmt::format(".{}.probe.{}", fs::path(path).filename().string(),
                                                                 static_cast<long>(::getpid())))
            .string();
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) fail("{}: cannot write there: {}", path, errno_text(errno));
    ::close(fd);
    ::unlink(probe.c_str());
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    const std::string tmp = fmt::format("{}.tmp.{}", path, static_cast<long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) fail("{}: cannot create {}: {}", path, tmp, errno_text(errno));
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t k = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            const int e = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            fail("{}: write failed: {}", path, errno_text(e));
        }
        done += static_cast<size_t>(k);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        fail("{}: cannot finish writing: {}", path, errno_text(e));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        fail("{}: cannot rename {} to it: {}", path, tmp, errno_text(e));
    }
}

Compression measure_compression(const tok::Vocab& vocab, const std::vector<std::string>& texts) {
    Compression c;
    for (const std::string& text : texts) {
        ++c.documents;
        c.bytes += static_cast<int64_t>(text.size());
        for (char ch : text) c.characters += (static_cast<uint8_t>(ch) & 0xC0) != 0x80;
        c.tokens += static_cast<int64_t>(vocab.encode(text, /*add_special=*/false, /*parse_special=*/false).size());
    }
    return c;
}

}  // namespace hearth::lab
