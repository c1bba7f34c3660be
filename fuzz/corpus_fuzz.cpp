// libFuzzer target for the corpus reader (lab/data/corpus.h): the input is a manifest and a train split,
// separated by a line "\x01\n", written into a folder; read_corpus_split must return documents or throw
// hearth::Error, never crash. When the manifest's sha256 is the placeholder "SHA", the split's real sha256 goes
// in its place, so that the line parser behind the checksum is reached.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.h"
#include "lab/data/corpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::string dir = [] {
        const auto p = std::filesystem::temp_directory_path() / ("hearth_corpus_fuzz_" + std::to_string(::getpid()));
        std::filesystem::create_directories(p);
        return p.string();
    }();
    const std::string in(reinterpret_cast<const char*>(data), size);
    const size_t cut = in.find("\x01\n");
    std::string manifest = in.substr(0, cut);
    const std::string split = cut == std::string::npos ? std::string() : in.substr(cut + 2);
    if (const size_t at = manifest.find("SHA"); at != std::string::npos)
        manifest.replace(at, 3, hearth::lab::sha256_hex(split));
    std::ofstream(dir + "/manifest.json", std::ios::binary | std::ios::trunc) << manifest;
    std::ofstream(dir + "/train.jsonl", std::ios::binary | std::ios::trunc) << split;
    try {
        size_t total = 0;
        for (const auto& d : hearth::lab::read_corpus_split(dir, "train"))
            total += d.name.size() + d.section.size() + d.text.size();
        (void)total;
    } catch (const hearth::Error&) {
    }
    return 0;
}
