// The web chat UI's files (src/serve/webui/), compiled into the binary by cmake/embed_files.cmake so that
// `hearth serve` needs no files beside it.
#pragma once
#include <span>
#include <string_view>

namespace hearth::serve {

struct WebAsset {
    std::string_view path;  // "/index.html", ...
    std::string_view data;
};

std::span<const WebAsset> web_assets();

}  // namespace hearth::serve
