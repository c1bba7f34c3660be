// A corpus of plain text from the installed man pages (`hearth data man`): find the pages under man roots,
// render each with mandoc (-T utf8, one subprocess per page, run from the page's man directory so that
// `.so` requests resolve), clean the terminal output into plain text, drop exact duplicates, and split
// train / validation by page name.
//
// Choices:
//  - Only roff sources in `manN` section directories (N a section: 1, 3, 3pm, n, ...) count as pages; with
//    all_languages also `<lang>/manN`. Preformatted `catN` directories are never read. Files compressed other
//    than with gzip (.bz2, .xz, .zst, .lz, .lzma, .Z) are found but reported as failed: mandoc reads gzip only.
//  - A link page (a file whose only request is `.so TARGET`) is resolved here rather than by mandoc: mandoc
//    renders a missing target as the text "See the file TARGET.", which would enter the corpus as a page;
//    here it is a failure naming the target. A resolved link renders its target, so it is dropped as an exact
//    duplicate when the target is among the pages found. Symbolic links render their target likewise. Pages
//    that share a source file are rendered once.
//  - The header and footer lines mandoc draws (`LS(1)  User Commands  LS(1)`, and the source / date line)
//    are dropped: name and section are already the document's fields, and the footer's package version and
//    date (or, for mdoc pages without an Os macro, the build host's uname) vary between installs of the same
//    text, so keeping them would add noise to the text and defeat duplicate detection across packages.
//  - Exact duplicates (same cleaned text, by sha256) keep the first page in path order, except that an alias
//    (a symbolic link or a link page) never wins over a page with a source of its own: `[`.1 yields to
//    test.1, awk.1 to gawk.1.
//  - Split: sha256(name), its first 8 bytes as a big-endian integer, mod 10000; below val_fraction * 10000
//    goes to validation. By name alone, so printf(1) and printf(3), or a page and its translations, land on
//    the same side, and a page's side never depends on which other pages exist.
//  - Output never depends on the thread count: pages are processed in sorted path order.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lab/data/corpus.h"

namespace hearth::lab {

struct ManPage {
    std::string path;      // absolute
    std::string base_dir;  // the directory that holds the page's manN directory: `.so` paths are relative to it
    std::string name;      // "ls" of ls.1.gz
    std::string section;   // "1" of ls.1.gz, "3pm" of foo.3pm.gz
    std::string section_dir;  // "3" of man3/foo.3pm.gz
};

struct ManSearch {
    std::vector<std::string> roots{"/usr/share/man"};
    std::vector<std::string> sections;  // empty: every section; else a page matches by its section or its dir's
    bool all_languages = false;
};

// "1,3pm,8" -> {"1", "3pm", "8"}. Each item is a digit or one of n, l, o, optionally followed by letters and
// digits. Throws hearth::Error naming the item that is not a section.
std::vector<std::string> parse_man_sections(const std::string& list);

// True when `section` has the syntax of a man section (see parse_man_sections).
bool is_man_section(std::string_view section);

// ls.1.gz -> {"ls", "1"}; CA.pl.1ssl.gz -> {"CA.pl", "1ssl"}. False for names that are not man pages (no
// section extension, or one that is not a section).
bool parse_man_file_name(std::string_view file_name, std::string& name, std::string& section);

// The pages under the roots, sorted by path. Throws hearth::Error for a root that is not a directory.
std::vector<ManPage> find_man_pages(const ManSearch& search);

// mandoc's -T utf8 output as plain text: overstrike (`c\bc` bold, `_\bc` underline) and ANSI escapes removed,
// invalid UTF-8 replaced (U+FFFD), trailing blanks cut, the header and footer lines dropped, blank lines at
// either end removed and runs of more than two blank lines cut to two; ends with one newline ("" when
// nothing is left).
std::string clean_man_text(std::string_view rendered);

// The mandoc executable found on PATH. Throws hearth::Error naming the package when there is none.
std::string find_mandoc();

struct RenderedPage {
    bool ok = false;
    std::string text;    // cleaned
    std::string reason;  // why not ok
};

// Renders one page with `mandoc -c -T utf8 PATH` run in `cwd` (no shell; stderr discarded). Not ok when
// mandoc cannot be started, exits non-zero or is killed, or the cleaned text is empty.
RenderedPage render_man_page(const std::string& mandoc, const std::string& path, const std::string& cwd);

// True when a page named `name` belongs to validation at this fraction (see the split rule above).
bool is_validation_name(const std::string& name, double val_fraction);

struct ManCorpusOptions {
    ManSearch search;
    double val_fraction = 0.05;
    std::string tokenizer;  // a GGUF whose tokenizer counts tokens per split; "" for none
    int threads = 0;        // 0: every core
};

struct FailedPage {
    std::string path, reason;
};

struct SplitTotals {
    uint64_t documents = 0, bytes = 0, tokens = 0;  // bytes of text (UTF-8), not of the JSONL file
};

struct ManCorpusReport {
    std::string output_dir;
    size_t pages_found = 0, rendered = 0, failed = 0, duplicates_dropped = 0;
    SplitTotals train, val;
    bool counted_tokens = false;
    std::vector<FailedPage> failures;  // in path order
    std::vector<CorpusFile> files;
};

// Called with a stage ("render", "tokens"), the items done and the items in that stage.
using ManProgress = std::function<void(const char* stage, size_t done, size_t total)>;

// Builds the corpus in out_dir (train.jsonl, val.jsonl, manifest.json). Throws hearth::Error, before writing
// any corpus file, for an invalid fraction, a missing mandoc, no pages found, an unwritable out_dir, a bad
// tokenizer or no page rendering at all.
ManCorpusReport build_man_corpus(const ManCorpusOptions& options, const std::string& out_dir,
                                 const ManProgress& progress = {});

// The report's figures as JSON (also the manifest's "totals" and "failed").
nlohmann::json man_corpus_totals_json(const ManCorpusReport& report);

}  // namespace hearth::lab
