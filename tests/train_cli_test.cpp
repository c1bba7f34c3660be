// `hearth train` end to end on a corpus of real man pages (section 2, rendered by `hearth data man`) with a
// tokenizer trained by `hearth tokenizer train`: the trained model loads in run / perplexity / quantize and its
// perplexity equals the trainer's validation loss; a run killed with SIGKILL and resumed has exactly the loss
// curve of one never interrupted; Ctrl-C leaves a checkpoint; two MPI ranks equal one process; and bad input
// (empty or too small corpora, a shape that does not fit the tokenizer, a diverging loss, corrupt or foreign
// checkpoints, a full disk) gets one clear error and loses nothing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "serve_fixture.h"
#include "test_util.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;
using test::run_command;
using test::run_hearth;

// A small llama: 2 layers, 64 wide, trained on 64-token rows; a step takes milliseconds.
constexpr const char* kShape = "embd=64,layers=2,heads=4,kv_heads=2,ff=128";
constexpr const char* kTrainArgs = "--batch 8 --seq 64 --seed 7";

struct Fixture {
    std::string dir, corpus, tok;
};

const Fixture& fixture() {
    static const Fixture f = [] {
        Fixture x;
        x.dir = test::tmp_dir() + "/train_cli";
        fs::create_directories(x.dir);
        // The corpus and the tokenizer are made once per build and shared by the test processes.
        const std::string cache = test::cached_dir("train_cli_man2_tok1000", [](const std::string& d) {
            const auto c = run_hearth(fmt::format("data man --sections 2 -o {}/corpus", d));
            if (c.code != 0) throw std::runtime_error("hearth data man: " + c.err);
            const auto t = run_hearth(fmt::format("tokenizer train --data {0}/corpus --vocab-size 1000 -o {0}/tok.gguf", d));
            if (t.code != 0) throw std::runtime_error("hearth tokenizer train: " + t.err);
        });
        x.corpus = cache + "/corpus";
        x.tok = cache + "/tok.gguf";
        return x;
    }();
    return f;
}

nlohmann::json train_json(const std::string& args) {
    const auto r = run_hearth("train " + args + " --json");
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
}

// step -> loss, from a training log (NAME.train.jsonl).
std::map<int64_t, double> log_losses(const std::string& path) {
    std::map<int64_t, double> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        if (j.contains("loss")) out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
    }
    return out;
}

std::string base_args(const Fixture& f, const std::string& out, const std::string& lr = "3e-3") {
    return fmt::format("-m {} --tokenizer {} --data {} -o {} {} --lr {}", kShape, f.tok, f.corpus, out, kTrainArgs, lr);
}

TEST(TrainCli, TrainedModelLoadsRunsAndItsPerplexityIsTheValidationLoss) {
    const Fixture& f = fixture();
    const std::string out = f.dir + "/m.gguf";
    const auto j = train_json(base_args(f, out) + " --tokens 40960 --eval-windows 8");
    const auto losses = j.at("losses").get<std::vector<double>>();
    ASSERT_EQ(losses.size(), 80u);  // 40960 / (8 x 64)
    EXPECT_LT(losses.back(), losses.front() - 1.0) << "the loss should fall by more than a nat";
    EXPECT_TRUE(fs::exists(out));
    EXPECT_TRUE(fs::exists(f.dir + "/m.train.jsonl"));
    const std::string svg = test::read_file(f.dir + "/m.loss.svg");
    EXPECT_NE(svg.find("<polyline"), std::string::npos);
    EXPECT_NE(svg.find("validation"), std::string::npos);
    // The final validation takes every window of --seq tokens, as llama.cpp's perplexity does.
    const auto p = run_hearth(fmt::format("perplexity -m {} --data {} -c 64 --json", out, f.corpus));
    ASSERT_EQ(p.code, 0) << p.err;
    const auto pj = nlohmann::json::parse(p.out);
    EXPECT_EQ(pj.at("chunks").get<int64_t>(), j.at("val_windows").get<int64_t>());
    const double nll = pj.at("nll_mean").get<double>(), val = j.at("val_loss").get<double>();
    std::printf("trainer validation loss %.6f, hearth perplexity %.6f (%zu windows)\n", val, nll,
                static_cast<size_t>(pj.at("chunks").get<int64_t>()));
    EXPECT_LT(std::fabs(nll - val) / val, 1e-4);
    const auto r = run_hearth(fmt::format("run -m {} -p \"The\" -n 8 --temp 0", out));
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_FALSE(r.out.empty());
    const auto q = run_hearth(fmt::format("quantize {} {}/m-q8.gguf Q8_0", out, f.dir));
    EXPECT_EQ(q.code, 0) << q.err;
    const auto i = run_hearth(fmt::format("info -m {}/m-q8.gguf --json", f.dir));
    EXPECT_EQ(i.code, 0) << i.err;
    // llama.cpp's reading of it: every llama.* and tokenizer.ggml.* key of a llama file that llama.cpp itself
    // wrote (the conformance pack's, whose goldens llama.cpp produced by running it) is present with the same
    // type, and every tensor llama.cpp's llama loader asks for has the same name, type class and dimension order.
    {
        const auto ours = gguf::File::open(out);
        const auto ref = gguf::File::open(test::shared("conformance/llama/llama.F16.gguf"));
        int keys = 0;
        for (const auto& [key, v] : ref.metadata()) {
            if (key.rfind("llama.", 0) != 0 && key.rfind("tokenizer.ggml.", 0) != 0) continue;
            // Optional in llama.cpp, absent meaning "none": this vocabulary has no separator or padding piece.
            if (key == "tokenizer.ggml.seperator_token_id" || key == "tokenizer.ggml.padding_token_id") continue;
            const gguf::Value* mine = ours.find(key);
            ASSERT_NE(mine, nullptr) << "llama.cpp's key " << key << " is missing";
            EXPECT_EQ(static_cast<int>(mine->type), static_cast<int>(v.type)) << key;
            if (v.type == gguf::ValueType::ARRAY) {
                EXPECT_EQ(static_cast<int>(mine->elem_type), static_cast<int>(v.elem_type)) << key;
            }
            ++keys;
        }
        EXPECT_GE(keys, 15);
        EXPECT_EQ(ours.get_str("tokenizer.ggml.model"), "llama");
        for (const auto& t : ref.tensors()) {
            if (t.name == "output.weight" && !ours.find_tensor(t.name)) continue;  // tied: llama.cpp reuses token_embd
            const gguf::TensorInfo* mine = ours.find_tensor(t.name);
            ASSERT_NE(mine, nullptr) << "llama.cpp's tensor " << t.name << " is missing";
            ASSERT_EQ(mine->dims.size(), t.dims.size()) << t.name;
            // The same row length (ggml's ne[0]) as the reference, in units of each file's own widths.
            const auto width = [](const gguf::File& f, int64_t n) {
                return n == f.get_u32("llama.embedding_length")      ? std::string("embd")
                       : n == f.get_u32("llama.feed_forward_length") ? std::string("ff")
                                                                     : std::to_string(n);
            };
            if (t.name.find("norm") == std::string::npos) {
                EXPECT_EQ(width(ours, mine->dims[0]), width(ref, t.dims[0])) << t.name;
            }
            if (t.type == DType::F32) {
                EXPECT_EQ(mine->type, DType::F32) << t.name << ": llama.cpp wants F32 norms";
            }
        }
    }
    // And it serves: a completion over HTTP.
    serve::ServerOptions so;
    so.n_ctx = 256;
    const serve::ServerFixture server(so, out);
    const auto res = server.client().Post("/v1/completions", R"({"prompt":"NAME","max_tokens":8,"temperature":0})",
                                          "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_GE(nlohmann::json::parse(res->body).at("usage").at("completion_tokens").get<int>(), 1) << res->body;
}

TEST(TrainCli, RunKilledWithSigkillAndResumedHasTheSameLossCurve) {
    const Fixture& f = fixture();
    const std::string whole = f.dir + "/whole.gguf", killed = f.dir + "/killed.gguf";
    // 160 steps; validations every 40 (4 windows; the final one 16)
    const std::string run = " --tokens 81920 --checkpoint-every 20 --eval-every 40 --eval-windows 4 --final-eval-windows 16";
    train_json(base_args(f, whole) + run);
    // The same run in the background, killed without warning once a checkpoint is on disk.
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string cmd = std::string(HEARTH_BINARY) + " train " + base_args(f, killed) + run + " >/dev/null 2>&1";
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
        _exit(127);
    }
    const std::string first = f.dir + "/killed.ckpt/step-00000020.gguf";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (!fs::exists(first) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it could be killed";
    const auto before = log_losses(f.dir + "/killed.train.jsonl");
    ASSERT_LT(before.rbegin()->first, 160) << "killed too late to test anything";
    const auto j = train_json(fmt::format("--data {} -o {} --resume {}/killed.ckpt", f.corpus, killed, f.dir));
    EXPECT_EQ(j.at("steps").get<int64_t>(), 160);
    const auto a = log_losses(f.dir + "/whole.train.jsonl"), b = log_losses(f.dir + "/killed.train.jsonl");
    ASSERT_EQ(a.size(), 160u);
    ASSERT_EQ(b.size(), 160u);
    for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;  // bit for bit
    std::printf("killed after step %lld of 160, resumed: all 160 losses equal\n",
                static_cast<long long>(before.rbegin()->first));
}

TEST(TrainCli, InterruptSavesACheckpointThatResumes) {
    const Fixture& f = fixture();
    const std::string out = f.dir + "/int.gguf";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string cmd = std::string(HEARTH_BINARY) + " train " + base_args(f, out) +
                                " --tokens 10000000 --checkpoint-every 100000 > " + f.dir + "/int.out 2>&1";
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
        _exit(127);
    }
    // Wait for the first steps in the log, then Ctrl-C.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (log_losses(f.dir + "/int.train.jsonl").size() < 3 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 130);
    const std::string said = test::read_file(f.dir + "/int.out");
    EXPECT_NE(said.find("resume with"), std::string::npos) << said;
    std::vector<std::string> ckpts;
    for (const auto& e : fs::directory_iterator(f.dir + "/int.ckpt")) ckpts.push_back(e.path().string());
    ASSERT_EQ(ckpts.size(), 1u);
    // It resumes (a short look: stop again after 2 steps).
    const auto r = run_hearth(fmt::format("train --data {} -o {} --resume {} --stop-after 2", f.corpus, out, ckpts[0]));
    EXPECT_EQ(r.code, 130) << r.err;
}

TEST(TrainCli, TwoMpiRanksGiveTheLossCurveOfOneProcess) {
    const Fixture& f = fixture();
    const std::string one = f.dir + "/one.gguf", two = f.dir + "/two.gguf";
    const std::string run = " --tokens 20480 --eval-windows 4 --final-eval-windows 16 -t 1";
    const auto a = train_json(base_args(f, one) + run);
    const auto r = run_command(fmt::format(
        "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
        "mpirun -np 2 --oversubscribe --bind-to none {} train {}{} --json",
        HEARTH_BINARY, base_args(f, two), run));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto b = nlohmann::json::parse(r.out);
    EXPECT_EQ(b.at("ranks").get<int>(), 2);
    const auto la = a.at("losses").get<std::vector<double>>(), lb = b.at("losses").get<std::vector<double>>();
    ASSERT_EQ(la.size(), lb.size());
    double worst = 0;
    for (size_t i = 0; i < la.size(); ++i) worst = std::max(worst, std::fabs(la[i] - lb[i]) / la[i]);
    std::printf("2 ranks vs 1 process over %zu steps: largest relative loss difference %.3g\n", la.size(), worst);
    EXPECT_LT(worst, 1e-5);
    EXPECT_LT(std::fabs(a.at("val_loss").get<double>() - b.at("val_loss").get<double>()) / a.at("val_loss").get<double>(),
              1e-5);
}

// ---- bad input -------------------------------------------------------------------------------------------------

void expect_error(const std::string& args, const std::string& needle) {
    const auto r = run_hearth("train " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "error for " << args << ":\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
}

// A corpus folder made by hand from `texts` (train split; val gets the same), with its manifest.
std::string tiny_corpus(const std::string& name, const std::vector<std::string>& texts) {
    const std::string dir = test::tmp_dir() + "/" + name;
    fs::create_directories(dir);
    // Written through `hearth data` would need man pages: instead, a copy of the real corpus' manifest format is
    // produced by the corpus writer itself via a one-page man tree.
    const std::string root = dir + "_man/man1";
    fs::create_directories(root);
    for (size_t i = 0; i < texts.size(); ++i) {
        std::ofstream(root + "/page" + std::to_string(i) + ".1")
            << ".TH PAGE" << i << " 1\n.SH NAME\npage" << i << "\n.SH DESCRIPTION\n" << texts[i] << "\n";
    }
    const auto r = run_hearth(fmt::format("data man --root {}_man --val-fraction 0 -o {}", dir, dir));
    EXPECT_EQ(r.code, 0) << r.err;
    return dir;
}

TEST(TrainCli, BadInputGetsOneClearError) {
    const Fixture& f = fixture();
    const std::string out = f.dir + "/bad.gguf";
    const std::string tiny = tiny_corpus("tiny_corpus", {"a very short page"});
    expect_error(fmt::format("-m {} --tokenizer {} --data {} -o {} --tokens 1000", kShape, f.tok, tiny, out),
                 "too few");
    expect_error(fmt::format("-m {} --tokenizer {} --data {}/nothing -o {} --tokens 1000", kShape, f.tok, f.dir, out),
                 "nothing");
    expect_error(fmt::format("-m {},vocab=5000 --tokenizer {} --data {} -o {} --tokens 1000", kShape, f.tok, f.corpus,
                             out),
                 "the tokenizer");
    expect_error(fmt::format("-m {} --tokenizer {} --data {} -o {}", kShape, f.tok, f.corpus, out), "--tokens");
    expect_error(fmt::format("-m smollm2-135m,arch=qwen3 --tokenizer {} --data {} -o {} --tokens 1000", f.tok,
                             f.corpus, out),
                 "shape");
    EXPECT_FALSE(fs::exists(out));
}

TEST(TrainCli, DivergingLossStopsNamingTheStepAndKeepsTheLastCheckpoint) {
    const Fixture& f = fixture();
    const std::string out = f.dir + "/nan.gguf";
    const auto r = run_hearth("train " + base_args(f, out, "1e12") + " --tokens 20480 --warmup 0 --clip 0 --checkpoint-every 1");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("at step"), std::string::npos) << r.err;
    EXPECT_TRUE(r.err.find("became NaN") != std::string::npos || r.err.find("became infinite") != std::string::npos) << r.err;
    EXPECT_NE(r.err.find("last good checkpoint"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_TRUE(fs::exists(f.dir + "/nan.ckpt/step-00000001.gguf"));
}

TEST(TrainCli, CorruptOrForeignCheckpointsAreRefused) {
    const Fixture& f = fixture();
    const std::string out = f.dir + "/ck.gguf";
    const auto r = run_hearth("train " + base_args(f, out) + " --tokens 20480 --stop-after 2");
    ASSERT_EQ(r.code, 130) << r.err;
    const std::string ck = f.dir + "/ck.ckpt/step-00000002.gguf";
    ASSERT_TRUE(fs::exists(ck));
    // A model file is not a checkpoint.
    expect_error(fmt::format("--data {} -o {} --resume {}", f.corpus, out, f.tok), "not a hearth training checkpoint");
    // A truncated checkpoint.
    const std::string cut = f.dir + "/cut.gguf";
    const std::string bytes = test::read_file(ck);
    std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    const auto c = run_hearth(fmt::format("train --data {} -o {} --resume {}", f.corpus, out, cut));
    EXPECT_EQ(c.code, 1);
    EXPECT_NE(c.err.find(cut), std::string::npos) << c.err;
    // A checkpoint of other data.
    const std::string other = tiny_corpus("other_corpus", {std::string(20000, 'x')});
    expect_error(fmt::format("--data {} -o {} --resume {}", other, out, ck), "sha256");
}

TEST(TrainCli, FullDiskDuringACheckpointKeepsThePreviousOne) {
    const Fixture& f = fixture();
    const std::string mnt = f.dir + "/full";
    fs::create_directories(mnt);
    // A disk that holds one checkpoint of this run but not two: its size from a first checkpoint elsewhere.
    const std::string probe = f.dir + "/probe.gguf";
    ASSERT_EQ(run_hearth("train " + base_args(f, probe) + " --tokens 20480 --stop-after 1").code, 130);
    const auto size = fs::file_size(f.dir + "/probe.ckpt/step-00000001.gguf");
    const std::string opts = fmt::format("size={}k", size * 3 / 2 / 1024);
    if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, opts.c_str()) != 0)
        GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
    struct Unmount {
        std::string p;
        ~Unmount() { umount(p.c_str()); }
    } unmount{mnt};
    const std::string out = f.dir + "/disk.gguf";
    const auto r = run_hearth("train " + base_args(f, out) + " --tokens 20480 --checkpoint-every 2 --final-eval-windows 4 "
                              "--checkpoint-dir " + mnt);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("last good checkpoint is " + mnt + "/step-00000002.gguf"), std::string::npos) << r.err;
    // It is whole: training resumes from it.
    const auto g = run_hearth(fmt::format("train --data {} -o {} --resume {}/step-00000002.gguf --stop-after 1 "
                                          "--checkpoint-dir {}/ck2",
                                          f.corpus, out, mnt, f.dir));
    EXPECT_EQ(g.code, 130) << g.err;
}

}  // namespace
}  // namespace hearth
