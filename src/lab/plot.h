// Line charts as SVG, written by hand (a few hundred bytes of markup; no charting library is packaged for C++):
// training and validation loss curves for `hearth train`, its checkpoints and bench/RESULTS.md.
#pragma once
#include <string>
#include <vector>

namespace hearth::lab {

struct Series {
    std::string name;
    std::vector<double> x, y;
    std::string color = "#1f77b4";
    bool markers = false;  // dots at the points (sparse series such as validation loss)
};

struct Chart {
    std::string title, x_label, y_label;
    std::vector<Series> series;
    int width = 720, height = 420;
};

// The chart's SVG document: axes with rounded ticks over the data's range, one polyline per series, a legend.
// Non-finite points are skipped.
std::string chart_svg(const Chart& chart);
// Writes it crash-safe (temporary file, fsync, rename). Throws hearth::Error naming the path.
void write_chart_svg(const Chart& chart, const std::string& path);

}  // namespace hearth::lab
