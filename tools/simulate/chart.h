// PNG charts for the simulator's report, drawn with cairo: a line chart of daily series and a
// horizontal bar chart. Plain and legible (DejaVu Sans, a colour per series, a legend), not a
// plotting library: the axes start at zero and their ticks are 1, 2 or 5 times a power of ten.
#ifndef RAPPORT_TOOLS_SIMULATE_CHART_H_
#define RAPPORT_TOOLS_SIMULATE_CHART_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rapport::simulate {

// Colours of series and bars, in order (RGB 0-255); the n-th series takes kPalette[n % size].
inline constexpr std::array<std::array<uint8_t, 3>, 6> kPalette = {{
    {31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {148, 103, 189}, {255, 127, 14}, {23, 190, 207}}};

struct Series {
  std::string name;
  std::vector<double> values;  // one per x: day 1, 2, …
};

struct ChartText {
  std::string title, x_label, y_label;
};

inline constexpr int kChartWidth = 900, kChartHeight = 420;

// Writes a line chart of `series` (all the same length, at least one value) over x = 1, 2, … to
// `path`. InvalidArgument for no series or uneven lengths; Internal when the PNG cannot be written.
absl::Status WriteLineChart(const std::string& path, const ChartText& text, const std::vector<Series>& series);

// Writes horizontal bars, one per (label, value), on an axis from 0 to `max` rounded up to a
// whole tick (values above it are drawn to the end), each labelled with its value to
// `decimals` places.
absl::Status WriteBarChart(const std::string& path, const ChartText& text,
                           const std::vector<std::pair<std::string, double>>& bars, double max, int decimals);

// The tick step for an axis from 0 to `max` with about `ticks` ticks: 1, 2 or 5 times a power of
// ten (1 when max ≤ 0).
double NiceStep(double max, int ticks);

}  // namespace rapport::simulate

#endif  // RAPPORT_TOOLS_SIMULATE_CHART_H_
