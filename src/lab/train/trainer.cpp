#include "lab/train/trainer.h"

#include <fcntl.h>
#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "gguf/gguf.h"
#include "lab/plot.h"
#include "lab/train/data.h"
#include "lab/train/distributed.h"
#include "lab/train/optim.h"
#include "lab/train/params.h"
#include "lab/train/transformer.h"
#include "model/synth.h"
#include "tensor/gemm.h"
#include "tokenizer/vocab.h"

namespace hearth::lab {

double train_flops_per_token(int64_t n_matmul_params, int64_t n_layer, int64_t q_dim, int seq) {
    return 6.0 * static_cast<double>(n_matmul_params) +
           12.0 * static_cast<double>(n_layer) * static_cast<double>(q_dim) * seq;
}

namespace {

namespace fs = std::filesystem;
constexpr const char* kCheckpointType = "hearth.checkpoint";
constexpr uint32_t kCheckpointVersion = 1;

std::atomic<int> g_signal{0};
extern "C" void on_stop_signal(int sig) { g_signal.store(sig); }

// SIGINT / SIGTERM ask the loop to stop after the current step (with a checkpoint); the previous handlers
// come back afterwards.
struct StopSignals {
    struct sigaction old_int {}, old_term {};
    StopSignals() {
        g_signal.store(0);
        struct sigaction sa {};
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
    }
    ~StopSignals() {
        sigaction(SIGINT, &old_int, nullptr);
        sigaction(SIGTERM, &old_term, nullptr);
    }
};

std::string stem_of(const std::string& out) {
    if (out.size() > 5 && out.compare(out.size() - 5, 5, ".gguf") == 0) return out.substr(0, out.size() - 5);
    return out;
}

// The settings that define a run: stored in every checkpoint, taken from it on resume.
struct RunConfig {
    int batch = 0, seq = 0, accum = 0;
    float lr = 0, min_lr_ratio = 0, weight_decay = 0, clip = 0, beta1 = 0, beta2 = 0, eps = 0, init_std = 0;
    int64_t warmup = 0, total_steps = 0, eval_every = 0, eval_windows = 0, checkpoint_every = 0;
    uint64_t seed = 0;
    bool bf16 = false;
    std::string model;       // what -m said
    std::string data_sha256;  // of the train split, from the corpus manifest
};

void set_config(gguf::Writer& w, const RunConfig& c) {
    auto i64 = [](int64_t v) { return gguf::Value::i64(v); };
    w.set("hearth.train.batch", i64(c.batch));
    w.set("hearth.train.seq", i64(c.seq));
    w.set("hearth.train.accum", i64(c.accum));
    w.set("hearth.train.lr", gguf::Value::f32(c.lr));
    w.set("hearth.train.min_lr_ratio", gguf::Value::f32(c.min_lr_ratio));
    w.set("hearth.train.weight_decay", gguf::Value::f32(c.weight_decay));
    w.set("hearth.train.clip", gguf::Value::f32(c.clip));
    w.set("hearth.train.beta1", gguf::Value::f32(c.beta1));
    w.set("hearth.train.beta2", gguf::Value::f32(c.beta2));
    w.set("hearth.train.eps", gguf::Value::f32(c.eps));
    w.set("hearth.train.init_std", gguf::Value::f32(c.init_std));
    w.set("hearth.train.warmup", i64(c.warmup));
    w.set("hearth.train.total_steps", i64(c.total_steps));
    w.set("hearth.train.eval_every", i64(c.eval_every));
    w.set("hearth.train.eval_windows", i64(c.eval_windows));
    w.set("hearth.train.checkpoint_every", i64(c.checkpoint_every));
    w.set("hearth.train.seed", gguf::Value::u64(c.seed));
    w.set("hearth.train.bf16", gguf::Value::boolean(c.bf16));
    w.set("hearth.train.model", gguf::Value::str(c.model));
    w.set("hearth.train.data_sha256", gguf::Value::str(c.data_sha256));
}

RunConfig get_config(const gguf::File& f) {
    RunConfig c;
    c.batch = static_cast<int>(f.get_i64("hearth.train.batch"));
    c.seq = static_cast<int>(f.get_i64("hearth.train.seq"));
    c.accum = static_cast<int>(f.get_i64("hearth.train.accum"));
    c.lr = f.get_f32("hearth.train.lr");
    c.min_lr_ratio = f.get_f32("hearth.train.min_lr_ratio");
    c.weight_decay = f.get_f32("hearth.train.weight_decay");
    c.clip = f.get_f32("hearth.train.clip");
    c.beta1 = f.get_f32("hearth.train.beta1");
    c.beta2 = f.get_f32("hearth.train.beta2");
    c.eps = f.get_f32("hearth.train.eps");
    c.init_std = f.get_f32("hearth.train.init_std");
    c.warmup = f.get_i64("hearth.train.warmup");
    c.total_steps = f.get_i64("hearth.train.total_steps");
    c.eval_every = f.get_i64("hearth.train.eval_every");
    c.eval_windows = f.get_i64("hearth.train.eval_windows");
    c.checkpoint_every = f.get_i64("hearth.train.checkpoint_every");
    c.seed = f.get_u64("hearth.train.seed");
    c.bf16 = f.get_bool("hearth.train.bf16");
    c.model = f.get_str("hearth.train.model");
    c.data_sha256 = f.get_str("hearth.train.data_sha256");
    if (c.batch <= 0 || c.seq < 8 || c.accum <= 0 || c.total_steps <= 0 || c.eval_every <= 0 || c.checkpoint_every <= 0)
        fail("{}: the checkpoint's training settings are invalid", f.path());
    return c;
}

// The train split's sha256 as the corpus manifest records it (a resumed run must see the same data).
std::string train_split_sha256(const std::string& dir) {
    const fs::path p = fs::path(dir) / "manifest.json";
    std::ifstream in(p);
    if (!in) fail("{}: no manifest.json (make the corpus with `hearth data man -o {}`)", dir, dir);
    nlohmann::json j;
    try {
        in >> j;
        return j.at("files").at("train").at("sha256").get<std::string>();
    } catch (const std::exception& e) {
        fail("{}: the manifest has no sha256 of the train split ({})", p.string(), e.what());
    }
}

// Makes rename durable: the directory entry is synced too.
void sync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

std::string checkpoint_name(int64_t step) { return fmt::format("step-{:08d}.gguf", step); }

// The newest checkpoint of a folder (by step number in the name), or the file itself.
std::string resolve_checkpoint(const std::string& path) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        if (!fs::exists(path, ec)) fail("{}: no such checkpoint", path);
        return path;
    }
    std::string best;
    for (const auto& e : fs::directory_iterator(path, ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("step-", 0) == 0 && n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0 && n > fs::path(best).filename().string())
            best = e.path().string();
    }
    if (best.empty()) fail("{}: the folder holds no checkpoint (step-*.gguf)", path);
    return best;
}

gguf::Value f64_array(const std::vector<double>& v) {
    std::vector<gguf::Value> elems;
    elems.reserve(v.size());
    for (double x : v) elems.push_back(gguf::Value::f64(x));
    return gguf::Value::array(gguf::ValueType::FLOAT64, std::move(elems));
}

double f64_of(const gguf::File& f, const char* key) {
    const gguf::Value* v = f.find(key);
    if (!v || v->type != gguf::ValueType::FLOAT64) fail("{}: missing or mistyped key {}", f.path(), key);
    return v->f;
}

std::vector<double> f64_array_of(const gguf::File& f, const char* key) {
    const gguf::Value* v = f.find(key);
    if (!v || v->type != gguf::ValueType::ARRAY || v->elem_type != gguf::ValueType::FLOAT64)
        fail("{}: missing or mistyped key {}", f.path(), key);
    std::vector<double> out;
    for (const gguf::Value& e : v->arr) out.push_back(e.f);
    return out;
}

struct Checkpoint {
    RunConfig cfg;
    int64_t step = 0;
    double elapsed = 0;
    int64_t tokens = 0;
    std::vector<double> losses;
    std::vector<std::pair<int64_t, double>> val;
};

}  // namespace

TrainReport train(const TrainOptions& opt, const std::function<void(const StepInfo&)>& on_step) {
    Distributed& D = Distributed::get();
    const bool root = D.is_root();
    const int threads = opt.threads > 0 ? opt.threads : omp_get_num_procs();
    if (opt.output.empty()) fail("no output file (-o)");
    if (opt.data.empty()) fail("no training data (--data DIR, made by `hearth data man`)");

    // ---- the run's settings, model and tokenizer: from a checkpoint, or from the options -------------------
    std::optional<gguf::File> ckpt_file, tok_file, init_file;
    Checkpoint resume;
    RunConfig cfg;
    if (!opt.resume.empty()) {
        const std::string path = resolve_checkpoint(opt.resume);
        ckpt_file.emplace(gguf::File::open(path));
        const gguf::File& f = *ckpt_file;
        const std::string type = f.get_str_or("general.type", "");
        if (type != kCheckpointType)
            fail("{}: not a hearth training checkpoint (general.type is '{}', expected '{}')", path, type, kCheckpointType);
        if (f.get_u32_or("hearth.checkpoint.version", 0) != kCheckpointVersion)
            fail("{}: checkpoint version {} is not {} (written by another hearth)", path,
                 f.get_u32_or("hearth.checkpoint.version", 0), kCheckpointVersion);
        cfg = get_config(f);
        resume.step = f.get_i64("hearth.checkpoint.step");
        resume.elapsed = f64_of(f, "hearth.checkpoint.elapsed_s");
        resume.tokens = f.get_i64("hearth.checkpoint.tokens");
        resume.losses = f64_array_of(f, "hearth.checkpoint.losses");
        const auto vs = f.get_i32_array("hearth.checkpoint.val_steps");
        const auto vl = f64_array_of(f, "hearth.checkpoint.val_losses");
        if (vs.size() != vl.size() || static_cast<int64_t>(resume.losses.size()) != resume.step ||
            resume.step <= 0 || resume.step > cfg.total_steps)
            fail("{}: the checkpoint's history is inconsistent (step {}, {} losses)", path, resume.step, resume.losses.size());
        for (size_t i = 0; i < vs.size(); ++i) resume.val.emplace_back(vs[i], vl[i]);
    } else {
        if (opt.tokenizer.empty()) fail("no tokenizer (--tokenizer tok.gguf, made by `hearth tokenizer train`)");
        if (opt.model.empty()) fail("no model shape (-m SHAPE or -m embd=..,layers=..,heads=..,ff=..)");
        if (opt.batch <= 0 || opt.accum <= 0) fail("--batch and --accum must be positive");
        if (opt.seq < 8) fail("--seq {} is too short (at least 8)", opt.seq);
        if (!(opt.lr > 0) || !(opt.min_lr_ratio >= 0) || !(opt.weight_decay >= 0) || !(opt.clip >= 0))
            fail("--lr must be positive, --wd, --clip and --min-lr-ratio non-negative");
        if (!(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1 && opt.eps > 0))
            fail("AdamW's betas must be in [0, 1) and eps positive");
        if (opt.tokens <= 0 && opt.minutes <= 0) fail("say how long to train: --tokens N or --minutes M");
        cfg.batch = opt.batch, cfg.seq = opt.seq, cfg.accum = opt.accum;
        cfg.lr = opt.lr, cfg.min_lr_ratio = opt.min_lr_ratio, cfg.weight_decay = opt.weight_decay, cfg.clip = opt.clip;
        cfg.beta1 = opt.beta1, cfg.beta2 = opt.beta2, cfg.eps = opt.eps, cfg.init_std = opt.init_std;
        cfg.seed = opt.seed;
        cfg.bf16 = opt.bf16;
        if (opt.bf16 && !sgemm_has_bf16())
            fail("--bf16: this CPU has no AVX512-BF16 (bfloat16 dot products); train in float without it");
        cfg.model = opt.model;
        tok_file.emplace(gguf::File::open(opt.tokenizer));
    }
    const gguf::File& vocab_file = ckpt_file ? *ckpt_file : *tok_file;
    const tok::Vocab vocab = tok::Vocab::from_gguf(vocab_file);
    if (vocab.bos() < 0 || vocab.eos() < 0)
        fail("{}: the tokenizer has no BOS or EOS token (training marks documents with them)", vocab_file.path());

    TrainShape shape;
    if (ckpt_file) {
        shape = train_shape_of(*ckpt_file);
    } else {
        std::error_code ec;
        if (fs::is_regular_file(opt.model, ec)) {  // continue training a llama GGUF
            init_file.emplace(gguf::File::open(opt.model));
            shape = train_shape_of(*init_file);
        } else {
            SynthShape ss = synth_shape(opt.model);
            shape = train_shape_from(ss);
            // A named shape brings its own vocabulary size; an explicit one may say vocab=N, which must agree.
            const bool explicit_vocab = opt.model.find("vocab=") != std::string::npos;
            if (explicit_vocab && ss.n_vocab != vocab.n_tokens())
                fail("shape '{}' has vocab {}, but the tokenizer {} has {} tokens", opt.model, ss.n_vocab,
                     opt.tokenizer, vocab.n_tokens());
            shape.n_vocab = vocab.n_tokens();
        }
        if (shape.n_vocab != vocab.n_tokens())
            fail("{}: the model has {} token rows, but the tokenizer has {} tokens", opt.model, shape.n_vocab,
                 vocab.n_tokens());
    }
    shape.n_ctx = cfg.seq;
    const ParamLayout layout(shape);
    if (cfg.batch < D.size())
        fail("--batch {} is smaller than the {} MPI ranks: every rank needs at least one row", cfg.batch, D.size());

    // ---- data -------------------------------------------------------------------------------------------------
    const std::string data_sha = train_split_sha256(opt.data);
    if (ckpt_file && data_sha != cfg.data_sha256)
        fail("{}: the checkpoint was trained on a train split with sha256 {}, but {} has {}", ckpt_file->path(),
             cfg.data_sha256, opt.data, data_sha);
    cfg.data_sha256 = data_sha;
    const TokenStream train_data = tokenize_split(opt.data, "train", vocab, threads);
    const TokenStream val_data = tokenize_split(opt.data, "val", vocab, threads);
    if (train_data.documents == 0) fail("{}: the train split is empty", opt.data);
    if (static_cast<int64_t>(train_data.tokens.size()) < 4LL * (cfg.seq + 1))
        fail("{}: the train split has {} tokens, too few for rows of {} (want at least {}); use a smaller --seq or "
             "more data",
             opt.data, train_data.tokens.size(), cfg.seq + 1, 4 * (cfg.seq + 1));
    if (n_eval_windows(val_data, cfg.seq) == 0)
        fail("{}: the validation split has {} tokens, fewer than one evaluation window of {}", opt.data,
             val_data.tokens.size(), cfg.seq);

    // ---- weights and optimiser state ---------------------------------------------------------------------------
    std::vector<float> params(layout.n_floats()), grads(layout.n_floats()), adam_m(layout.n_floats()),
        adam_v(layout.n_floats());
    if (ckpt_file) {
        read_params(layout, *ckpt_file, "", params.data());
        read_params(layout, *ckpt_file, "adam.m.", adam_m.data());
        read_params(layout, *ckpt_file, "adam.v.", adam_v.data());
    } else if (init_file) {
        read_params(layout, *init_file, "", params.data());
    } else {
        init_params(layout, cfg.seed, cfg.init_std, params.data());
    }

    if (cfg.bf16 && !sgemm_has_bf16())
        fail("{}: the run multiplies in bf16, which this CPU cannot (no AVX512-BF16)", opt.resume);
    Transformer model(layout, threads, opt.recompute, cfg.bf16);
    const int row_begin = cfg.batch * D.rank() / D.size(), row_end = cfg.batch * (D.rank() + 1) / D.size();
    const int my_rows = row_end - row_begin;
    std::vector<int32_t> rows_buf(static_cast<size_t>(my_rows) * (cfg.seq + 1));
    const int64_t tokens_per_step = static_cast<int64_t>(cfg.batch) * cfg.seq * cfg.accum;
    const float grad_scale = 1.0f / static_cast<float>(tokens_per_step);

    // One step's forward and backward on this rank (gradients summed into grads); returns the loss sum.
    auto compute_step = [&](int64_t step) {
        zero_grads(grads.data(), grads.size(), threads);
        double loss_sum = 0;
        for (int a = 0; a < cfg.accum; ++a) {
            sample_rows(train_data, cfg.seq, cfg.seed, step, a, row_begin, row_end, rows_buf.data());
            loss_sum += model.forward_backward(params.data(), rows_buf.data(), my_rows, cfg.seq, grad_scale, grads.data());
        }
        return loss_sum;
    };

    if (!ckpt_file) {
        if (opt.tokens > 0) {
            cfg.total_steps = std::max<int64_t>(1, (opt.tokens + tokens_per_step - 1) / tokens_per_step);
        } else {
            // Time a step (its gradients are thrown away) to turn minutes into a step count, fixed before the
            // first update so that the schedule, and a resumed run, do not depend on timing. The step before it
            // is not timed: it first touches every buffer, which costs more than the step itself.
            compute_step(0);
            const auto t0 = std::chrono::steady_clock::now();
            compute_step(0);
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            D.sum(&secs, 1);
            secs /= D.size();
            cfg.total_steps = std::max<int64_t>(1, static_cast<int64_t>(opt.minutes * 60.0 / (secs * 1.02)));
        }
        cfg.warmup = opt.warmup >= 0 ? opt.warmup : std::max<int64_t>(1, cfg.total_steps / 20);
        cfg.eval_every = opt.eval_every > 0 ? opt.eval_every : std::max<int64_t>(1, cfg.total_steps / 20);
        cfg.eval_windows = opt.eval_windows;
        cfg.checkpoint_every = opt.checkpoint_every > 0 ? opt.checkpoint_every : cfg.eval_every;
    }
    Schedule sched;
    sched.lr = cfg.lr, sched.warmup = cfg.warmup, sched.total = cfg.total_steps, sched.min_lr_ratio = cfg.min_lr_ratio;
    AdamWConfig adam;
    adam.lr = cfg.lr, adam.beta1 = cfg.beta1, adam.beta2 = cfg.beta2, adam.eps = cfg.eps;
    adam.weight_decay = cfg.weight_decay;

    // ---- outputs ----------------------------------------------------------------------------------------------
    const std::string stem = stem_of(opt.output);
    TrainReport rep;
    rep.output = opt.output;
    rep.log = stem + ".train.jsonl";
    rep.chart = stem + ".loss.svg";
    const std::string ckpt_dir = !opt.checkpoint_dir.empty() ? opt.checkpoint_dir : stem + ".ckpt";
    rep.total_steps = cfg.total_steps;
    rep.ranks = D.size();
    rep.threads = threads;
    rep.bf16 = cfg.bf16;
    rep.train_tokens_available = static_cast<int64_t>(train_data.tokens.size());
    rep.val_tokens_available = static_cast<int64_t>(val_data.tokens.size());
    int64_t n_matmul = 0;
    for (const ParamTensor& t : layout.tensors())
        if (t.decay && t.name != "token_embd.weight") n_matmul += t.size();
    n_matmul += shape.n_vocab * shape.n_embd;  // the output projection (tied or not)
    rep.flops_per_token = train_flops_per_token(n_matmul, shape.n_layer, shape.q_dim(), cfg.seq);
    for (const ParamTensor& t : layout.tensors()) rep.n_params += t.size();
    rep.losses = resume.losses;
    rep.val = resume.val;

    std::FILE* log = nullptr;
    if (root) {
        std::error_code ec;
        fs::create_directories(ckpt_dir, ec);
        if (ec) fail("{}: cannot create the checkpoint folder: {}", ckpt_dir, ec.message());
        log = std::fopen(rep.log.c_str(), "w");
        if (!log) fail("{}: cannot write the training log: {}", rep.log, std::strerror(errno));
        // A resumed run's log is rewritten from the checkpoint's history, then continues.
        size_t vi = 0;
        for (size_t i = 0; i < resume.losses.size(); ++i) {
            std::fprintf(log, "{\"step\":%zu,\"loss\":%.17g}\n", i + 1, resume.losses[i]);
            for (; vi < resume.val.size() && resume.val[vi].first == static_cast<int64_t>(i + 1); ++vi)
                std::fprintf(log, "{\"step\":%zu,\"val_loss\":%.17g}\n", i + 1, resume.val[vi].second);
        }
        std::fflush(log);
    }
    struct LogCloser {
        std::FILE*& f;
        ~LogCloser() {
            if (f) std::fclose(f);
        }
    } log_closer{log};

    auto draw_chart = [&]() {
        if (!root) return;
        Chart c;
        c.title = fmt::format("hearth train {} ({:.1f}M parameters)", cfg.model, rep.n_params / 1e6);
        c.x_label = "step";
        c.y_label = "loss (nats per token)";
        Series tr{"train", {}, {}, "#1f77b4", false}, va{"validation", {}, {}, "#d62728", true};
        // The train curve smoothed over a window of ~1 % of the run, so the trend shows through batch noise.
        const int64_t win = std::max<int64_t>(1, static_cast<int64_t>(rep.losses.size()) / 100);
        double acc = 0;
        for (size_t i = 0; i < rep.losses.size(); ++i) {
            acc += rep.losses[i];
            if (i >= static_cast<size_t>(win)) acc -= rep.losses[i - win];
            const double n = static_cast<double>(std::min<size_t>(i + 1, win));
            tr.x.push_back(static_cast<double>(i + 1));
            tr.y.push_back(acc / n);
        }
        for (const auto& [s, l] : rep.val) va.x.push_back(static_cast<double>(s)), va.y.push_back(l);
        c.series = {tr, va};
        write_chart_svg(c, rep.chart);
    };

    // Mean loss of the scored half of `windows` validation windows (0: all, as `hearth perplexity` takes them),
    // split between the ranks. A subset is spread evenly over the split: its first pages alone are no sample.
    auto evaluate = [&](int64_t windows, int64_t* used = nullptr) {
        const int n_ctx = cfg.seq;
        const int64_t avail = n_eval_windows(val_data, n_ctx);
        const int64_t n = windows > 0 ? std::min(windows, avail) : avail;
        const int first = n_ctx / 2;
        std::vector<int32_t> rows(static_cast<size_t>(cfg.batch) * n_ctx);
        std::vector<float> losses(static_cast<size_t>(cfg.batch) * (n_ctx - 1));
        double sums[2] = {0, 0};  // nll, scored tokens
        std::vector<int64_t> mine;
        for (int64_t i = D.rank(); i < n; i += D.size()) mine.push_back(i * avail / n);
        for (size_t i = 0; i < mine.size(); i += static_cast<size_t>(cfg.batch)) {
            const int nr = static_cast<int>(std::min<size_t>(cfg.batch, mine.size() - i));
            for (int r = 0; r < nr; ++r) eval_window(val_data, n_ctx, mine[i + r], vocab.bos(), rows.data() + r * n_ctx);
            model.forward_losses(params.data(), rows.data(), nr, n_ctx - 1, losses.data());
            for (int r = 0; r < nr; ++r)
                for (int p = first; p < n_ctx - 1; ++p) sums[0] += losses[r * (n_ctx - 1) + p], sums[1] += 1;
        }
        D.sum(sums, 2);
        if (used) *used = n;
        return sums[0] / sums[1];
    };

    auto save_checkpoint = [&](int64_t step, double elapsed) {
        if (!root) return;
        gguf::Writer w;
        add_model_metadata(layout, &vocab_file, "hearth checkpoint " + cfg.model, w);
        w.set("general.type", gguf::Value::str(kCheckpointType));
        w.set("hearth.checkpoint.version", gguf::Value::u32(kCheckpointVersion));
        set_config(w, cfg);
        w.set("hearth.checkpoint.step", gguf::Value::i64(step));
        w.set("hearth.checkpoint.elapsed_s", gguf::Value::f64(elapsed));
        w.set("hearth.checkpoint.tokens", gguf::Value::i64(step * tokens_per_step));
        // The history in double: a resumed run's log then shows the very numbers of the interrupted one.
        std::vector<double> vl;
        std::vector<int32_t> vs;
        for (const auto& [s, l] : rep.val) vs.push_back(static_cast<int32_t>(s)), vl.push_back(l);
        w.set("hearth.checkpoint.losses", f64_array(rep.losses));
        w.set("hearth.checkpoint.val_steps", gguf::Value::i32_array(vs));
        w.set("hearth.checkpoint.val_losses", f64_array(vl));
        std::vector<std::vector<uint8_t>> store;
        add_model_tensors(layout, params.data(), DType::F32, "", w, store);
        add_model_tensors(layout, adam_m.data(), DType::F32, "adam.m.", w, store);
        add_model_tensors(layout, adam_v.data(), DType::F32, "adam.v.", w, store);
        const std::string path = (fs::path(ckpt_dir) / checkpoint_name(step)).string();
        try {
            w.write(path);
        } catch (const Error& e) {
            if (rep.checkpoint.empty())
                fail("writing the checkpoint of step {} failed ({}); no earlier checkpoint exists", step, e.what());
            fail("writing the checkpoint of step {} failed ({}); the last good checkpoint is {}", step, e.what(),
                 rep.checkpoint);
        }
        sync_dir(ckpt_dir);
        // Keep this one and the previous one.
        const std::string previous = rep.checkpoint;
        rep.checkpoint = path;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(ckpt_dir, ec)) {
            const std::string n = e.path().filename().string();
            if (n.rfind("step-", 0) == 0 && e.path().string() != path && e.path().string() != previous)
                fs::remove(e.path(), ec);
        }
    };

    // ---- the loop ---------------------------------------------------------------------------------------------
    StopSignals signals;
    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&]() {
        return resume.elapsed + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    int64_t step = resume.step;
    int64_t last_checkpoint = resume.step;
    if (ckpt_file) rep.checkpoint = ckpt_file->path();
    int64_t steps_here = 0;
    double window_time = 0;
    int64_t window_tokens = 0;
    while (step < cfg.total_steps) {
        const auto t0 = std::chrono::steady_clock::now();
        // Loss, and whether any rank was asked to stop, summed over the ranks with the gradients.
        double loss_stop[2] = {compute_step(step), static_cast<double>(g_signal.load() != 0)};
        D.sum(grads.data(), grads.size());
        D.sum(loss_stop, 2);
        const double loss = loss_stop[0] / static_cast<double>(tokens_per_step);
        const double norm = global_norm(grads.data(), grads.size(), threads);
        if (!std::isfinite(loss) || !std::isfinite(norm)) {
            auto name = [](double x) { return std::isnan(x) ? "NaN" : "infinite"; };
            const std::string what = !std::isfinite(loss) ? fmt::format("the loss became {}", name(loss))
                                                          : fmt::format("the gradient norm became {}", name(norm));
            if (rep.checkpoint.empty())
                fail("{} at step {}; nothing was saved (no checkpoint yet); try a lower --lr", what, step + 1);
            fail("{} at step {}; the last good checkpoint is {}; try a lower --lr", what, step + 1, rep.checkpoint);
        }
        clip_by_global_norm(grads.data(), grads.size(), norm, cfg.clip, threads);
        const float lr = sched.at(step);
        adamw_step(layout, adam, lr, step + 1, params.data(), grads.data(), adam_m.data(), adam_v.data(), threads);
        ++step;
        ++steps_here;
        rep.losses.push_back(loss);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        window_time += dt;
        window_tokens += tokens_per_step;
        StepInfo info;
        info.step = step, info.total = cfg.total_steps, info.loss = loss, info.lr = lr, info.grad_norm = norm;
        info.tokens_per_s = window_tokens / window_time;
        info.elapsed_s = elapsed();
        info.eta_s = (cfg.total_steps - step) * (window_time / std::max<int64_t>(1, steps_here));
        if (root) std::fprintf(log, "{\"step\":%lld,\"loss\":%.17g,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%lld,\"elapsed_s\":%.3f}\n",
                               static_cast<long long>(step), loss, lr, norm, static_cast<long long>(step * tokens_per_step),
                               info.elapsed_s);
        if (step % cfg.eval_every == 0 || step == cfg.total_steps) {
            info.has_val = true;
            info.val_loss = evaluate(cfg.eval_windows);
            rep.val.emplace_back(step, info.val_loss);
            if (root) std::fprintf(log, "{\"step\":%lld,\"val_loss\":%.17g}\n", static_cast<long long>(step), info.val_loss);
        }
        if (root) std::fflush(log);
        if (on_step && root) on_step(info);
        const bool stop = loss_stop[1] > 0 || (opt.stop_after > 0 && steps_here >= opt.stop_after);
        if (step < cfg.total_steps && (step % cfg.checkpoint_every == 0 || stop)) {
            save_checkpoint(step, elapsed());
            last_checkpoint = step;
            draw_chart();
        }
        if (stop && step < cfg.total_steps) {
            rep.interrupted = true;
            break;
        }
    }
    (void)last_checkpoint;

    rep.steps = step;
    rep.tokens = step * tokens_per_step;
    rep.seconds = elapsed();
    rep.tokens_per_s = window_time > 0 ? window_tokens / window_time : 0;
    rep.gflops_per_s = rep.tokens_per_s * rep.flops_per_token / 1e9;
    const size_t tail = std::min<size_t>(10, rep.losses.size());
    for (size_t i = rep.losses.size() - tail; i < rep.losses.size(); ++i) rep.train_loss += rep.losses[i] / tail;
    if (rep.interrupted) return rep;

    rep.val_loss = evaluate(opt.final_eval_windows, &rep.val_windows);
    rep.val_ppl = std::exp(rep.val_loss);
    if (root) {
        gguf::Writer w;
        add_model_metadata(layout, &vocab_file, "hearth " + cfg.model, w);
        w.set("hearth.train.steps", gguf::Value::i64(rep.steps));
        w.set("hearth.train.tokens", gguf::Value::i64(rep.tokens));
        w.set("hearth.train.val_loss", gguf::Value::f32(static_cast<float>(rep.val_loss)));
        set_config(w, cfg);
        w.set("general.file_type", gguf::Value::u32(opt.out_type == DType::F32 ? 0 : opt.out_type == DType::F16 ? 1 : 32));
        std::vector<std::vector<uint8_t>> store;
        add_model_tensors(layout, params.data(), opt.out_type, "", w, store);
        w.write(opt.output);
        draw_chart();
    }
    return rep;
}

}  // namespace hearth::lab
