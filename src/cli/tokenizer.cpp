#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/progress.h"
#include "cli/commands.h"
#include "gguf/gguf.h"
#include "lab/data/corpus.h"
#include "lab/tokenizer_train.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

namespace {

// SentencePiece trains in one opaque call; a ticker keeps the bar's clock moving and shows how far it has read.
class TrainingProgress {
public:
    explicit TrainingProgress(std::string label) : bar_(std::move(label), 1) {
        ticker_ = std::thread([this] {
            std::unique_lock<std::mutex> lock(mu_);
            while (!stop_) {
                const int64_t loaded = loaded_.load(), total = total_.load();
                bar_.update(0, loaded < total ? fmt::format("reading sentences {}/{}", loaded, total)
                                              : std::string("training"));
                cv_.wait_for(lock, std::chrono::milliseconds(200));
            }
        });
    }
    ~TrainingProgress() { finish(); }
    void on_load(int64_t loaded, int64_t total) {
        total_ = total;
        loaded_ = loaded;
    }
    void finish() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (stop_) return;
            stop_ = true;
        }
        cv_.notify_all();
        ticker_.join();
        bar_.finish();
    }

private:
    Progress bar_;
    std::atomic<int64_t> loaded_{0}, total_{1};
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread ticker_;
};

void add_tokenizer_train(CLI::App& parent) {
    auto* cmd = parent.add_subcommand("train", "Train a SentencePiece tokenizer on a corpus folder, written as a vocab GGUF");
    struct Opts {
        std::string data, out, type = "bpe", spm_model;
        lab::TokenizerTrainOptions train;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("--data", o->data, "Corpus folder (train.jsonl, val.jsonl, as `hearth data` writes them)")
        ->required();
    cmd->add_option("--vocab-size", o->train.vocab_size,
                    fmt::format("Tokens in the vocabulary, with 3 special and 256 byte tokens (at least {})",
                                lab::kMinTokenizerVocab))
        ->required();
    cmd->add_option("--type", o->type, "bpe (default) or unigram");
    cmd->add_option("--character-coverage", o->train.character_coverage,
                    "Share of the corpus's characters that get tokens of their own (default 0.9995); the rarest "
                    "rest are spelled with byte tokens");
    cmd->add_option("--max-sentences", o->train.max_sentences,
                    "Train on a sample of at most N lines, drawn with --seed (default 2000000; 0: all)");
    cmd->add_option("--seed", o->train.seed, "Seed of the sample (default 0)");
    cmd->add_option("--threads", o->train.threads,
                    "SentencePiece threads (default 8, fixed: a unigram vocabulary depends on the count)");
    cmd->add_option("-o,--output", o->out, "Output vocab GGUF")->required();
    cmd->add_option("--save-spm-model", o->spm_model, "Also write the SentencePiece .model file");
    cmd->add_flag("--json", o->json, "Print JSON");
    cmd->callback([o] {
        o->train.type = lab::spm_type_from_name(o->type);
        if (o->train.vocab_size < lab::kMinTokenizerVocab)
            fail("vocab size {} is too small: at least {} (3 special tokens, 256 byte tokens and some text)",
                 o->train.vocab_size, lab::kMinTokenizerVocab);
        // Refused before the training rather than after it.
        lab::check_writable(o->out);
        if (!o->spm_model.empty()) lab::check_writable(o->spm_model);

        auto texts = [&](const char* split) {
            std::vector<std::string> out;
            for (lab::Document& d : lab::read_corpus_split(o->data, split)) out.push_back(std::move(d.text));
            return out;
        };
        const std::vector<std::string> train = texts("train");
        if (train.empty()) fail("{}: the train split is empty: no text to train on", o->data);
        const std::vector<std::string> val = texts("val");
        const bool has_val = !val.empty();

        lab::TrainedTokenizer t;
        {
            TrainingProgress progress(fmt::format("tokenizer {} {}", o->type, o->train.vocab_size));
            o->train.on_load = [&](int64_t loaded, int64_t total) { progress.on_load(loaded, total); };
            t = lab::train_tokenizer(train, o->train);
            o->train.on_load = nullptr;
        }
        const gguf::Writer w = lab::tokenizer_gguf(t, o->train);
        // What the model trainer and llama.cpp will read: the file's own bytes, loaded as a vocabulary.
        const std::vector<uint8_t> bytes = w.to_bytes();
        const gguf::File f = gguf::File::from_memory(bytes.data(), bytes.size(), o->out);
        const tok::Vocab vocab = tok::Vocab::from_gguf(f);
        const lab::Compression c = lab::measure_compression(vocab, val);
        if (!o->spm_model.empty()) lab::write_file_atomic(o->spm_model, t.spm_model);
        w.write(o->out);

        int64_t by_type[7] = {};
        for (int32_t ty : t.types) ++by_type[ty >= 0 && ty < 7 ? ty : 0];
        if (o->json) {
            nlohmann::json j;
            j["output"] = o->out;
            j["type"] = o->type;
            j["vocab_size"] = t.tokens.size();
            j["pieces"] = {{"normal", by_type[1]}, {"unknown", by_type[2]}, {"control", by_type[3]},
                           {"user_defined", by_type[4]}, {"unused", by_type[5]}, {"byte", by_type[6]}};
            j["train_documents"] = train.size();
            j["sentences"] = t.sentences;
            j["sentences_used"] = t.sentences_used;
            j["max_sentences"] = o->train.max_sentences;
            j["sentences_too_long"] = t.sentences_long;
            j["seed"] = o->train.seed;
            j["threads"] = o->train.threads;
            j["character_coverage"] = o->train.character_coverage;
            j["training_seconds"] = t.seconds;
            if (has_val)
                j["validation"] = {{"documents", c.documents},         {"characters", c.characters},
                                   {"bytes", c.bytes},                 {"tokens", c.tokens},
                                   {"chars_per_token", c.chars_per_token()}, {"bytes_per_token", c.bytes_per_token()}};
            else
                j["validation"] = nullptr;
            j["spm_model"] = o->spm_model.empty() ? nlohmann::json(nullptr) : nlohmann::json(o->spm_model);
            fmt::print("{}\n", j.dump(2));
            return;
        }
        fmt::print("wrote {}: {} vocabulary of {} tokens ({} normal, {} byte, {} control, {} unknown)\n", o->out,
                   o->type, t.tokens.size(), by_type[1], by_type[6], by_type[3], by_type[2]);
        fmt::print("trained on {} of {} lines ({} documents) in {:.1f} s\n", t.sentences_used, t.sentences,
                   train.size(), t.seconds);
        if (t.sentences_long)
            fmt::print("left out {} lines longer than {} bytes\n", t.sentences_long, lab::kMaxSentenceBytes);
        if (has_val)
            fmt::print("validation: {} documents, {} characters -> {} tokens: {:.3f} characters per token ({:.3f} "
                       "bytes)\n",
                       c.documents, c.characters, c.tokens, c.chars_per_token(), c.bytes_per_token());
        else
            fmt::print("validation: the val split of {} is empty\n", o->data);
        if (!o->spm_model.empty()) fmt::print("wrote {}\n", o->spm_model);
    });
}

}  // namespace

void add_tokenizer(CLI::App& app) {
    auto* cmd = app.add_subcommand("tokenizer", "Tokenizers: train");
    cmd->require_subcommand(1);
    add_tokenizer_train(*cmd);
}

}  // namespace hearth::cli
