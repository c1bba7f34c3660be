// Options and helpers shared by several subcommands.
#pragma once
#include <CLI/CLI.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "base/error.h"
#include "gguf/gguf.h"
#include "model/forward.h"
#include "store/model_store.h"
#include "tokenizer/vocab.h"

namespace hearth::cli {

// Thrown by a command whose exit status says more than success / failure (grammar check: 1 rejected, 2
// refused); main() returns the code, printing nothing more.
struct ExitStatus {
    int code;
};

// --kv-type and --kv-residual: how the KV cache stores K and V (runtime/kv_quant.h).
struct KvOptions {
    std::string type = "f16";
    int residual = 32;
    // Parsed into the context's parameters; throws hearth::Error naming a bad value.
    void apply(ContextParams& cp) const {
        cp.kv_type = parse_kv_type(type);
        if (residual < 0) fail("--kv-residual must not be negative (got {})", residual);
        cp.kv_residual = residual;
    }
};
inline void add_kv_options(CLI::App* cmd, KvOptions& kv) {
    cmd->add_option("--kv-type", kv.type,
                    "KV cache type: f16 (default), f32, q8 / q4 (KIVI: keys per channel, values per token), "
                    "rot4 / rot3 (Hadamard-rotated heads, Gaussian levels)");
    cmd->add_option("--kv-residual", kv.residual,
                    "Compressed KV types: positions kept in f16 after a block before it is quantized (default 32)");
}

// -c / --ctx-size of a command that runs one sequence: the user's (`given`: they passed the option, which must
// then be positive), else the model's training context, at most 4,096.
inline int context_size(const Model& model, int ctx, bool given) {
    if (given && ctx <= 0) fail("context size must be positive (got {})", ctx);
    const int64_t train = model.hp.n_ctx_train > 0 ? model.hp.n_ctx_train : 4096;
    return ctx > 0 ? ctx : static_cast<int>(std::min<int64_t>(train, 4096));
}

// Threads: 0 or negative from the user is an error, absent means every core.
inline int check_threads(int threads) {
    if (threads <= 0) fail("threads must be at least 1 (got {})", threads);
    return threads;
}

// The whole of a file the user named (`what` says which in the error: "template", "JSON schema", ...).
inline std::string read_text(const std::string& path, const char* what) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("{}: cannot open the {} file", path, what);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// The vocabulary of a model file or store name; only the GGUF's tokenizer metadata is read (no weights), so a
// vocab-only GGUF works as well.
inline tok::Vocab load_vocab(const std::string& model) {
    return tok::Vocab::from_gguf(gguf::File::open(store::resolve_model(model)));
}

}  // namespace hearth::cli
