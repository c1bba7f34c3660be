// `hearth data man` and the corpus format: small man trees written here (roff and mdoc sources, gzip, a
// `.so` link page, a symbolic link, an exact duplicate, pages that cannot render), then one pass over the real
// section 2 of /usr/share/man.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "lab/data/corpus.h"
#include "lab/data/man_pages.h"
#include "test_util.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

using test::RunResult;

void write_text(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream f(path, std::ios::binary);
    f << content;
}

void write_gzip(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, content.data(), static_cast<unsigned>(content.size())), static_cast<int>(content.size()));
    gzclose(f);
}

std::string roff_page(const std::string& title, const std::string& section, const std::string& summary,
                      const std::string& body) {
    return ".\\\" a comment line\n.TH " + title + " " + section + " 2024-01-01 \"fixture 1.0\"\n.SH NAME\n" + title +
           " \\- " + summary + "\n.SH DESCRIPTION\n" + body + "\n";
}

const std::string kFooPage = roff_page("foo", "1", "frobnicate the bar",
                                       ".B foo\nfrobnicates \\fIwidgets\\fP quickly.\n.PP\nSee\n.BR bar (1).");

// A fixture tree under `root`:
//   man1/foo.1.gz        roff, gzip, bold and italic          -> document foo(1)
//   man1/bar.1           mdoc                                  -> document bar(1)
//   man1/alias.1         `.so man1/foo.1` (resolves to .gz)    -> duplicate of foo
//   man1/afoo.1.gz       symbolic link to foo.1.gz             -> duplicate of foo (an alias never wins)
//   man7/foo-copy.7      a copy of foo's source                -> duplicate of foo
//   man1/printf.1, man3/printf.3                               -> two documents named printf
//   man3/Widget.3pm.gz                                         -> document Widget(3pm)
//   man1/empty.1         .TH only                              -> failed: renders empty
//   man1/dangling.1.gz   symbolic link to nothing              -> failed: mandoc cannot open it
//   man1/lost.1          `.so man1/missing.1`                  -> failed: link target not found
//   man1/README, cat1/old.1, de/man1/foo.1                     -> not pages (de only with all_languages)
void make_fixture(const fs::path& root) {
    fs::remove_all(root);
    write_gzip(root / "man1/foo.1.gz", kFooPage);
    write_text(root / "man1/bar.1",
               ".Dd January 1, 2024\n.Dt BAR 1\n.Os fixture\n.Sh NAME\n.Nm bar\n.Nd serve the drinks\n"
               ".Sh DESCRIPTION\nThe\n.Nm\nutility pours a\n.Em generous\nmeasure of\n.Sy everything .\n");
    write_text(root / "man1/alias.1", ".\\\" link page\n.so man1/foo.1\n");
    fs::create_symlink("foo.1.gz", root / "man1/afoo.1.gz");
    write_text(root / "man7/foo-copy.7", kFooPage);
    write_text(root / "man1/printf.1",
               roff_page("printf", "1", "format and print data", "The shell utility writes formatted output."));
    write_text(root / "man3/printf.3",
               roff_page("printf", "3", "formatted output conversion", "The C function writes to stdout."));
    write_gzip(root / "man3/Widget.3pm.gz",
               roff_page("Widget", "3pm", "a Perl widget", "Caf\\('e widgets in \\fBbold\\fR and \\fIitalics\\fR."));
    write_text(root / "man1/empty.1", ".TH EMPTY 1\n");
    fs::create_symlink("nowhere.1.gz", root / "man1/dangling.1.gz");
    write_text(root / "man1/lost.1", ".so man1/missing.1\n");
    write_text(root / "man1/README", "not a man page\n");
    write_text(root / "cat1/old.1", "preformatted\n");
    write_text(root / "de/man1/foo.1",
               roff_page("foo", "1", "frobniziert die Bar", "Deutscher Text \\(:uber Widgets."));
}

std::string fixture_root(const std::string& name) {
    const fs::path root = fs::path(test::tmp_dir()) / name;
    make_fixture(root);
    return root.string();
}

lab::ManCorpusOptions fixture_options(const std::string& root, double val_fraction = 0.05) {
    lab::ManCorpusOptions o;
    o.search.roots = {root};
    o.val_fraction = val_fraction;
    return o;
}

std::vector<lab::Document> all_documents(const std::string& dir) {
    std::vector<lab::Document> docs = lab::read_corpus_split(dir, "train");
    for (lab::Document& d : lab::read_corpus_split(dir, "val")) docs.push_back(std::move(d));
    return docs;
}

const lab::Document* find_doc(const std::vector<lab::Document>& docs, const std::string& name,
                              const std::string& section) {
    for (const lab::Document& d : docs)
        if (d.name == name && d.section == section) return &d;
    return nullptr;
}

TEST(DataMan, CleanTextRemovesOverstrikeEscapesHeaderAndFooter) {
    const std::string rendered =
        "FOO(1)          General Commands Manual          FOO(1)\n"
        "\n"
        "N\bNA\bAM\bME\bE   \n"
        "       foo - _\bw_\bi_\bd_\bg_\be_\bt \xC3\xA9\b\xC3\xA9t\xC3\xA9 \x1b[1mbold\x1b[0m\t\n"
        "\n\n\n\n\n"
        "       after five blank lines\n"
        "\n"
        "fixture 1.0        2024-01-01        FOO(1)\n";
    EXPECT_EQ(lab::clean_man_text(rendered),
              "NAME\n       foo - widget \xC3\xA9t\xC3\xA9 bold\n\n\n       after five blank lines\n");
    // Header and footer only: nothing is left.
    EXPECT_EQ(lab::clean_man_text("EMPTY(1)   General Commands Manual   EMPTY(1)\n\n      EMPTY(1)\n"), "");
    // Invalid UTF-8 becomes U+FFFD, so every document can be written as JSON.
    EXPECT_EQ(lab::clean_man_text("H\n\nbad \xFF byte\n\nF\n"), "bad \xEF\xBF\xBD byte\n");
}

TEST(DataMan, FileNamesGiveNameAndSection) {
    std::string name, section;
    ASSERT_TRUE(lab::parse_man_file_name("ls.1.gz", name, section));
    EXPECT_EQ(name, "ls");
    EXPECT_EQ(section, "1");
    ASSERT_TRUE(lab::parse_man_file_name("foo.3pm.gz", name, section));
    EXPECT_EQ(name, "foo");
    EXPECT_EQ(section, "3pm");
    ASSERT_TRUE(lab::parse_man_file_name("aclocal-1.16.1.gz", name, section));
    EXPECT_EQ(name, "aclocal-1.16");
    EXPECT_EQ(section, "1");
    ASSERT_TRUE(lab::parse_man_file_name("CA.pl.1ssl", name, section));
    EXPECT_EQ(name, "CA.pl");
    EXPECT_EQ(section, "1ssl");
    ASSERT_TRUE(lab::parse_man_file_name("x.1.xz", name, section));
    EXPECT_EQ(name, "x");
    EXPECT_FALSE(lab::parse_man_file_name("README", name, section));
    EXPECT_FALSE(lab::parse_man_file_name("index.db", name, section));
    EXPECT_FALSE(lab::parse_man_file_name(".1.gz", name, section));
}

TEST(DataMan, SectionListsAreParsedAndBadOnesNamed) {
    EXPECT_EQ(lab::parse_man_sections("1,2,7"), (std::vector<std::string>{"1", "2", "7"}));
    EXPECT_EQ(lab::parse_man_sections("3pm, n,1"), (std::vector<std::string>{"3pm", "n", "1"}));
    for (const std::string bad : {"", "1,,2", "man1", "1-3", "x", "*", "1;rm"}) {
        try {
            lab::parse_man_sections(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("not a man section"), std::string::npos) << e.what();
        }
    }
}

TEST(DataMan, FindsSectionDirsOnlyAndLanguagesOnRequest) {
    const std::string root = fixture_root("find");
    lab::ManSearch s;
    s.roots = {root};
    const std::vector<lab::ManPage> pages = lab::find_man_pages(s);
    std::vector<std::string> rel;
    for (const lab::ManPage& p : pages) rel.push_back(fs::path(p.path).lexically_relative(root).string());
    EXPECT_EQ(rel, (std::vector<std::string>{"man1/afoo.1.gz", "man1/alias.1", "man1/bar.1", "man1/dangling.1.gz",
                                             "man1/empty.1", "man1/foo.1.gz", "man1/lost.1", "man1/printf.1",
                                             "man3/Widget.3pm.gz", "man3/printf.3", "man7/foo-copy.7"}));
    s.all_languages = true;
    EXPECT_EQ(lab::find_man_pages(s).size(), pages.size() + 1);
    s.all_languages = false;
    s.sections = {"3"};
    EXPECT_EQ(lab::find_man_pages(s).size(), 2u);  // man3 whole, 3pm included
    s.sections = {"3pm", "7"};
    EXPECT_EQ(lab::find_man_pages(s).size(), 2u);
}

TEST(DataMan, FixtureCorpusRendersDropsDuplicatesAndReportsFailures) {
    const std::string root = fixture_root("corpus");
    const std::string out = test::tmp_dir() + "/corpus_out";
    const lab::ManCorpusReport r = lab::build_man_corpus(fixture_options(root), out);
    EXPECT_EQ(r.pages_found, 11u);
    EXPECT_EQ(r.failed, 3u);
    EXPECT_EQ(r.rendered, 8u);
    EXPECT_EQ(r.duplicates_dropped, 3u);  // alias.1 (.so), afoo.1.gz (symlink), man7/foo-copy.7
    EXPECT_EQ(r.train.documents + r.val.documents, 5u);
    std::map<std::string, std::string> failures;
    for (const lab::FailedPage& f : r.failures) failures[fs::path(f.path).lexically_relative(root).string()] = f.reason;
    EXPECT_EQ(failures["man1/empty.1"], "rendered empty");
    EXPECT_NE(failures["man1/dangling.1.gz"].find("mandoc exited with status"), std::string::npos);
    EXPECT_NE(failures["man1/lost.1"].find("man1/missing.1 not found"), std::string::npos);

    const std::vector<lab::Document> docs = all_documents(out);
    ASSERT_EQ(docs.size(), 5u);
    for (const lab::Document& d : docs) {
        EXPECT_EQ(d.text.find('\b'), std::string::npos) << d.name;
        EXPECT_EQ(d.text.find('\x1b'), std::string::npos) << d.name;
        EXPECT_FALSE(d.text.empty());
        EXPECT_EQ(d.text.back(), '\n');
        EXPECT_EQ(d.text.find(" \n"), std::string::npos) << d.name;  // no trailing blanks
        EXPECT_EQ(d.text.find("2024"), std::string::npos) << d.name;  // footer dropped
    }
    const lab::Document* foo = find_doc(docs, "foo", "1");
    ASSERT_NE(foo, nullptr) << "the page with its own source keeps the text, not its aliases";
    EXPECT_NE(foo->text.find("foo - frobnicate the bar"), std::string::npos) << foo->text;
    EXPECT_NE(foo->text.find("foo frobnicates widgets quickly."), std::string::npos) << foo->text;
    EXPECT_EQ(foo->text.find("FOO(1)"), std::string::npos) << "header dropped";
    const lab::Document* bar = find_doc(docs, "bar", "1");
    ASSERT_NE(bar, nullptr);
    EXPECT_NE(bar->text.find("pours a generous measure of everything."), std::string::npos) << bar->text;
    const lab::Document* widget = find_doc(docs, "Widget", "3pm");
    ASSERT_NE(widget, nullptr);
    EXPECT_NE(widget->text.find("Caf\xC3\xA9 widgets in bold and italics."), std::string::npos) << widget->text;
    EXPECT_NE(find_doc(docs, "printf", "1"), nullptr);
    EXPECT_NE(find_doc(docs, "printf", "3"), nullptr);
    EXPECT_EQ(find_doc(docs, "alias", "1"), nullptr);
    EXPECT_EQ(find_doc(docs, "foo-copy", "7"), nullptr);

    // Exactly the three files, no temporaries left behind.
    std::vector<std::string> names;
    for (const fs::directory_entry& e : fs::directory_iterator(out)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"manifest.json", "train.jsonl", "val.jsonl"}));

    // The manifest's hashes, sizes and counts describe the files.
    const auto manifest = nlohmann::json::parse(test::read_file(out + "/manifest.json"));
    for (const char* split : {"train", "val"}) {
        const auto& f = manifest["files"][split];
        const std::string data = test::read_file(out + "/" + f["path"].get<std::string>());
        EXPECT_EQ(f["sha256"], lab::sha256_hex(data)) << split;
        EXPECT_EQ(f["bytes"], data.size()) << split;
        EXPECT_EQ(f["documents"], std::count(data.begin(), data.end(), '\n')) << split;
    }
    EXPECT_EQ(manifest["totals"]["pages_found"], 11);
    EXPECT_EQ(manifest["totals"]["duplicates_dropped"], 3);
    EXPECT_EQ(manifest["failed"].size(), 3u);
    EXPECT_EQ(manifest["options"]["val_fraction"], 0.05);
    EXPECT_EQ(manifest["format"], "hearth-corpus/1");
    EXPECT_FALSE(manifest["totals"]["train"].contains("tokens"));
}

TEST(DataMan, SplitIsByNameAndStableWhenPagesAreAdded) {
    // The rule itself: sha256(name)'s first 8 bytes as a big-endian integer mod 10000.
    for (const std::string name : {"ls", "printf", "open", "git-commit"}) {
        const uint64_t h = std::stoull(lab::sha256_hex(name).substr(0, 16), nullptr, 16);
        EXPECT_EQ(lab::is_validation_name(name, 0.05), h % 10000 < 500) << name;
        EXPECT_EQ(lab::is_validation_name(name, 0.3), h % 10000 < 3000) << name;
        EXPECT_FALSE(lab::is_validation_name(name, 0.0));
    }
    int val = 0;
    for (int i = 0; i < 20000; ++i) val += lab::is_validation_name("page" + std::to_string(i), 0.05);
    EXPECT_NEAR(val / 20000.0, 0.05, 0.006);

    const std::string root = fixture_root("split");
    const std::string out1 = test::tmp_dir() + "/split1", out2 = test::tmp_dir() + "/split2";
    lab::build_man_corpus(fixture_options(root, 0.5), out1);
    auto sides = [](const std::string& dir) {
        std::map<std::string, std::string> side;  // "name(section)" -> split
        for (const char* split : {"train", "val"})
            for (const lab::Document& d : lab::read_corpus_split(dir, split))
                side[d.name + "(" + d.section + ")"] = split;
        return side;
    };
    const auto before = sides(out1);
    EXPECT_EQ(before.at("printf(1)"), before.at("printf(3)"));
    EXPECT_EQ(before.at("printf(1)"), lab::is_validation_name("printf", 0.5) ? "val" : "train");

    // Forty more pages: none of the first pages changes side.
    for (int i = 0; i < 40; ++i)
        write_text(fs::path(root) / "man8" / fmt::format("extra{}.8", i),
                   roff_page(fmt::format("extra{}", i), "8", "an extra page", fmt::format("Extra text {}.", i)));
    lab::build_man_corpus(fixture_options(root, 0.5), out2);
    const auto after = sides(out2);
    EXPECT_EQ(after.size(), before.size() + 40);
    int extra_val = 0;
    for (const auto& [page, split] : after) {
        if (page.rfind("extra", 0) == 0) {
            extra_val += split == "val";
            continue;
        }
        EXPECT_EQ(before.at(page), split) << page;
    }
    EXPECT_GT(extra_val, 5);  // half of forty, roughly: both sides are used
    EXPECT_LT(extra_val, 35);
}

TEST(Corpus, RoundTripsAndRefusesTamperedOrMalformedFiles) {
    const std::string dir = test::tmp_dir() + "/roundtrip";
    std::error_code ec;
    fs::remove_all(dir, ec);
    lab::check_corpus_dir_writable(dir);
    const std::vector<lab::Document> train = {{"ls", "1", "list\n\"quoted\" \\ tab\t \xC3\xA9\n"}, {"cat", "1", "x"}};
    const std::vector<lab::Document> val = {{"printf", "3", "formatted output\n"}};
    std::vector<lab::CorpusFile> files = {lab::write_corpus_split(dir, "train", train),
                                          lab::write_corpus_split(dir, "val", val)};
    lab::write_corpus_manifest(dir, {{"source", "test"}}, files);
    const auto got = lab::read_corpus_split(dir, "train");
    ASSERT_EQ(got.size(), 2u);
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].name, train[i].name);
        EXPECT_EQ(got[i].section, train[i].section);
        EXPECT_EQ(got[i].text, train[i].text);
    }
    EXPECT_EQ(lab::read_corpus_split(dir, "val").at(0).text, val[0].text);

    auto expect_error = [&](const std::string& split, const std::string& needle) {
        try {
            lab::read_corpus_split(dir, split);
            ADD_FAILURE() << "no error, wanted one naming " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        }
    };
    expect_error("test", "no split 'test'");

    // One byte changed in a document: refused by its sha256.
    std::string data = test::read_file(dir + "/train.jsonl");
    data[data.find("list")] = 'L';
    write_text(dir + "/train.jsonl", data);
    expect_error("train", "sha256 mismatch");
    EXPECT_EQ(lab::read_corpus_split(dir, "val").size(), 1u);

    // A bad line under a manifest that matches it: named by its number.
    const std::string bad = test::read_file(dir + "/val.jsonl") + "{\"name\":\"x\",\"section\":1,\"text\":\"\"}\n";
    write_text(dir + "/val.jsonl", bad);
    files[1].sha256 = lab::sha256_hex(bad);
    files[1].documents = 2;
    lab::write_corpus_manifest(dir, {{"source", "test"}}, files);
    expect_error("val", "malformed line 2");
    const std::string not_json = "{\"name\":\"x\",\"section\":\"1\",\"text\":\"\"}\nnot json\n";
    write_text(dir + "/val.jsonl", not_json);
    files[1].sha256 = lab::sha256_hex(not_json);
    lab::write_corpus_manifest(dir, {{"source", "test"}}, files);
    expect_error("val", "malformed line 2");

    fs::remove(dir + "/val.jsonl");
    expect_error("val", "missing split file");
    lab::remove_corpus_manifest(dir);
    expect_error("train", "no manifest.json");
}

TEST(Corpus, AtomicWriteReplacesWholeFilesOnly) {
    const std::string dir = test::tmp_dir() + "/atomic";
    fs::create_directories(dir);
    lab::write_file_atomic(dir + "/a.txt", "first");
    lab::write_file_atomic(dir + "/a.txt", "second");
    EXPECT_EQ(test::read_file(dir + "/a.txt"), "second");
    // A directory where the file should go: the rename fails, the temporary is removed.
    fs::create_directories(dir + "/b.txt/inside");
    EXPECT_THROW(lab::write_file_atomic(dir + "/b.txt", "x"), Error);
    size_t entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
    EXPECT_EQ(entries, 2u);
}

// --- the CLI ---

using test::q;

using test::expect_one_line_error;

TEST(DataManCli, JsonReportAndTokens) {
    const std::string root = fixture_root("cli");
    const std::string out = test::tmp_dir() + "/cli_out";
    const RunResult r = test::run_hearth("data man -o " + q(out) + " --root " + q(root) +
                                         " --val-fraction 0.5 --threads 2 --json --tokenizer " +
                                         q(test::shared("models/stories260K.gguf")));
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["pages_found"], 11);
    EXPECT_EQ(j["rendered"], 8);
    EXPECT_EQ(j["failed"], 3);
    EXPECT_EQ(j["duplicates_dropped"], 3);
    EXPECT_EQ(j["documents"], 5);
    EXPECT_EQ(j["output"], out);
    EXPECT_EQ(j["failed_pages"].size(), 3u);
    EXPECT_TRUE(j["seconds"].is_number());
    uint64_t docs = 0;
    for (const char* split : {"train", "val"}) {
        docs += j[split]["documents"].get<uint64_t>();
        const auto split_docs = lab::read_corpus_split(out, split);
        uint64_t bytes = 0;
        for (const auto& d : split_docs) bytes += d.text.size();
        EXPECT_EQ(j[split]["bytes"], bytes) << split;
        EXPECT_EQ(j[split]["documents"], split_docs.size()) << split;
        // At least one token per byte-ish document plus BOS; an empty split has none.
        EXPECT_EQ(j[split]["tokens"].get<uint64_t>() > 0, !split_docs.empty()) << split;
        EXPECT_EQ(j["files"][split]["sha256"], lab::sha256_hex(test::read_file(out + "/" + split + ".jsonl")));
    }
    EXPECT_EQ(docs, 5u);
    const auto manifest = nlohmann::json::parse(test::read_file(out + "/manifest.json"));
    EXPECT_EQ(manifest["totals"]["train"]["tokens"], j["train"]["tokens"]);

    // The plain report names the figures.
    const RunResult text = test::run_hearth("data man -o " + q(out) + " --root " + q(root));
    ASSERT_EQ(text.code, 0) << text.err;
    EXPECT_NE(text.out.find("11 found, 8 rendered, 3 failed, 3 exact duplicates dropped"), std::string::npos)
        << text.out;
    EXPECT_NE(text.out.find("empty.1: rendered empty"), std::string::npos) << text.out;
}

TEST(DataManCli, OutputDoesNotDependOnThreads) {
    const std::string root = fixture_root("threads");
    const std::string a = test::tmp_dir() + "/threads1", b = test::tmp_dir() + "/threads2";
    ASSERT_EQ(test::run_hearth("data man -o " + q(a) + " --root " + q(root) + " --threads 1").code, 0);
    ASSERT_EQ(test::run_hearth("data man -o " + q(b) + " --root " + q(root) + " --threads 2").code, 0);
    for (const char* f : {"train.jsonl", "val.jsonl", "manifest.json"})
        EXPECT_EQ(test::read_file(a + "/" + f), test::read_file(b + "/" + f)) << f;
}

TEST(DataManCli, ErrorsAreOneLineAndWriteNothing) {
    const std::string root = fixture_root("errors");
    const std::string out = test::tmp_dir() + "/errors_out";
    const std::string base = "data man -o " + q(out) + " --root " + q(root);
    auto expect_nothing_written = [&] { EXPECT_FALSE(fs::exists(out + "/manifest.json")); };

    const std::string empty_root = test::tmp_dir() + "/empty_root";
    fs::create_directories(empty_root + "/man1");
    expect_one_line_error(test::run_hearth("data man -o " + q(out) + " --root " + q(empty_root)),
                          "no man pages found under");
    expect_nothing_written();
    expect_one_line_error(test::run_hearth(base + " --sections 9"), "no man pages found under");
    expect_one_line_error(test::run_hearth("data man -o " + q(out) + " --root " + q(root + "/nope")),
                          "no such man directory");

    // A path below a regular file cannot be created, whoever runs the test (root ignores permissions).
    write_text(test::tmp_dir() + "/a_file", "x");
    expect_one_line_error(test::run_hearth("data man -o " + q(test::tmp_dir() + "/a_file/out") + " --root " + q(root)),
                          "cannot create the output directory");

    expect_one_line_error(test::run_command("PATH=/nonexistent " + std::string(HEARTH_BINARY) + " " + base),
                          "apt-get install mandoc");
    expect_nothing_written();

    for (const char* f : {"1", "1.5", "-0.1", "nan"})
        expect_one_line_error(test::run_hearth(base + " --val-fraction " + f), "--val-fraction must be in [0, 1)");
    expect_one_line_error(test::run_hearth(base + " --sections 1,man2"), "'man2' is not a man section");
    expect_one_line_error(test::run_hearth(base + " --sections '1;2'"), "not a man section");
    expect_one_line_error(test::run_hearth(base + " --threads 0"), "threads must be at least 1");
    expect_nothing_written();

    // Every page fails: a clear error, and still nothing written.
    const std::string bad_root = test::tmp_dir() + "/bad_root";
    write_text(bad_root + "/man1/empty.1", ".TH EMPTY 1\n");
    write_text(bad_root + "/man1/lost.1", ".so man1/missing.1\n");
    expect_one_line_error(test::run_hearth("data man -o " + q(out) + " --root " + q(bad_root)),
                          "none of the 2 man pages rendered");
    expect_nothing_written();
    EXPECT_TRUE(fs::is_empty(out)) << "no temporaries left";
}

// The real pages of section 2 (manpages-dev): hundreds of system calls, none empty.
TEST(DataMan, RealSection2) {
    if (!fs::is_directory("/usr/share/man/man2"))
        GTEST_SKIP() << "no /usr/share/man/man2 (apt-get install manpages-dev)";
    const std::string out = test::tmp_dir() + "/real2";
    lab::ManCorpusOptions o;
    o.search.sections = {"2"};
    const lab::ManCorpusReport r = lab::build_man_corpus(o, out);
    // About 500 files, 40 % of them symbolic links or link pages to the others (openat -> open.2).
    EXPECT_GT(r.pages_found, 400u);
    EXPECT_GT(r.train.documents + r.val.documents, 250u);
    EXPECT_GT(r.duplicates_dropped, 100u);
    EXPECT_GT(r.val.documents, 0u);
    EXPECT_LT(r.failed, r.pages_found / 20)
        << (r.failures.empty() ? "" : r.failures[0].path + ": " + r.failures[0].reason);
    const std::vector<lab::Document> docs = all_documents(out);
    EXPECT_EQ(docs.size(), r.train.documents + r.val.documents);
    for (const lab::Document& d : docs) {
        EXPECT_GT(d.text.size(), 100u) << d.name;
        EXPECT_EQ(d.text.find('\b'), std::string::npos) << d.name;
        EXPECT_EQ(d.section.substr(0, 1), "2") << d.name;
    }
    const lab::Document* open = find_doc(docs, "open", "2");
    ASSERT_NE(open, nullptr);
    EXPECT_NE(open->text.find("O_CREAT"), std::string::npos);
}

}  // namespace
}  // namespace hearth
