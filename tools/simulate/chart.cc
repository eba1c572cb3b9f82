#include "tools/simulate/chart.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>

#include <fmt/format.h>

namespace rapport::simulate {

double NiceStep(double max, int ticks) {
  if (!(max > 0) || ticks < 1) return 1;
  const double rough = max / ticks;
  const double power = std::pow(10.0, std::floor(std::log10(rough)));
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * power >= rough) return m * power;
  }
  return 10 * power;
}

namespace {

constexpr const char* kFont = "DejaVu Sans";

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};

// A white canvas with the title drawn, ready for a plot area.
class Canvas {
 public:
  explicit Canvas(const ChartText& text)
      : surface_(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, kChartWidth, kChartHeight)),
        cr_(cairo_create(surface_.get())) {
    cairo_set_source_rgb(cr(), 1, 1, 1);
    cairo_paint(cr());
    cairo_select_font_face(cr(), kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
    cairo_set_font_size(cr(), 16);
    Colour(40, 40, 40);
    Text(text.title, 20, 26);
    cairo_select_font_face(cr(), kFont, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr(), 12);
  }

  cairo_t* cr() { return cr_.get(); }
  void Colour(int r, int g, int b) { cairo_set_source_rgb(cr(), r / 255.0, g / 255.0, b / 255.0); }
  void Colour(const std::array<uint8_t, 3>& c) { Colour(c[0], c[1], c[2]); }
  double Width(const std::string& s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr(), s.c_str(), &e);
    return e.x_advance;
  }
  // `align`: 0 left, 0.5 centred, 1 right of x.
  void Text(const std::string& s, double x, double y, double align = 0) {
    cairo_move_to(cr(), x - align * Width(s), y);
    cairo_show_text(cr(), s.c_str());
  }
  void Line(double x0, double y0, double x1, double y1, double width) {
    cairo_set_line_width(cr(), width);
    cairo_move_to(cr(), x0, y0);
    cairo_line_to(cr(), x1, y1);
    cairo_stroke(cr());
  }
  // A row of coloured squares with names, from x at y.
  void Legend(const std::vector<std::string>& names, double x, double y) {
    for (size_t i = 0; i < names.size(); ++i) {
      Colour(kPalette[i % kPalette.size()]);
      cairo_rectangle(cr(), x, y - 10, 12, 12);
      cairo_fill(cr());
      Colour(40, 40, 40);
      Text(names[i], x + 17, y);
      x += 17 + Width(names[i]) + 22;
    }
  }

  absl::Status Write(const std::string& path) {
    cairo_surface_flush(surface_.get());
    if (cairo_status(cr()) != CAIRO_STATUS_SUCCESS) {
      return absl::InternalError(fmt::format("drawing {}: {}", path, cairo_status_to_string(cairo_status(cr()))));
    }
    const cairo_status_t st = cairo_surface_write_to_png(surface_.get(), path.c_str());
    if (st != CAIRO_STATUS_SUCCESS) {
      return absl::InternalError(fmt::format("cannot write {}: {}", path, cairo_status_to_string(st)));
    }
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<cairo_surface_t, SurfaceDeleter> surface_;
  std::unique_ptr<cairo_t, ContextDeleter> cr_;
};

// A tick's label: whole numbers as they are, fractions with the step's decimals.
std::string TickLabel(double v, double step) {
  if (step >= 1) return fmt::format("{}", static_cast<long long>(std::llround(v)));
  const int decimals = static_cast<int>(std::ceil(-std::log10(step)));
  return fmt::format("{:.{}f}", v, decimals);
}

}  // namespace

absl::Status WriteLineChart(const std::string& path, const ChartText& text, const std::vector<Series>& series) {
  if (series.empty() || series[0].values.empty()) return absl::InvalidArgumentError("a line chart needs values");
  const size_t n = series[0].values.size();
  double max = 0;
  for (const Series& s : series) {
    if (s.values.size() != n) return absl::InvalidArgumentError("a line chart's series must have one length");
    for (double v : s.values) max = std::max(max, v);
  }
  const double step = NiceStep(max, 5);
  const double top = std::max(step, std::ceil(max / step) * step);
  Canvas c(text);
  std::vector<std::string> names;
  for (const Series& s : series) names.push_back(s.name);
  c.Legend(names, 20, 52);
  // The plot area, with room on the left for the widest y label.
  const double left = 30 + c.Width(TickLabel(top, step)) + 10, right = kChartWidth - 25.0;
  const double plot_top = 70, bottom = kChartHeight - 55.0;
  auto x_of = [&](size_t i) { return n == 1 ? (left + right) / 2 : left + (right - left) * static_cast<double>(i) / static_cast<double>(n - 1); };
  auto y_of = [&](double v) { return bottom - (bottom - plot_top) * std::min(v, top) / top; };
  for (double v = 0; v <= top + step / 2; v += step) {
    c.Colour(225, 225, 225);
    c.Line(left, y_of(v), right, y_of(v), 1);
    c.Colour(90, 90, 90);
    c.Text(TickLabel(v, step), left - 6, y_of(v) + 4, 1);
  }
  const double x_step = std::max(1.0, NiceStep(static_cast<double>(n), 10));
  for (size_t day = 1; day <= n; ++day) {
    if (day != 1 && std::fmod(static_cast<double>(day), x_step) != 0) continue;
    c.Colour(90, 90, 90);
    c.Line(x_of(day - 1), bottom, x_of(day - 1), bottom + 4, 1);
    c.Text(fmt::format("{}", day), x_of(day - 1), bottom + 17, 0.5);
  }
  c.Colour(90, 90, 90);
  c.Line(left, bottom, right, bottom, 1);
  c.Text(text.x_label, (left + right) / 2, kChartHeight - 14.0, 0.5);
  cairo_save(c.cr());
  cairo_move_to(c.cr(), 16, (plot_top + bottom) / 2 + c.Width(text.y_label) / 2);
  cairo_rotate(c.cr(), -std::numbers::pi / 2);
  cairo_show_text(c.cr(), text.y_label.c_str());
  cairo_restore(c.cr());
  for (size_t s = 0; s < series.size(); ++s) {
    c.Colour(kPalette[s % kPalette.size()]);
    cairo_set_line_width(c.cr(), 2);
    cairo_set_line_join(c.cr(), CAIRO_LINE_JOIN_ROUND);
    for (size_t i = 0; i < n; ++i) {
      if (i == 0) cairo_move_to(c.cr(), x_of(i), y_of(series[s].values[i]));
      else cairo_line_to(c.cr(), x_of(i), y_of(series[s].values[i]));
    }
    if (n == 1) cairo_arc(c.cr(), x_of(0), y_of(series[s].values[0]), 3, 0, 2 * std::numbers::pi);
    cairo_stroke(c.cr());
  }
  return c.Write(path);
}

absl::Status WriteBarChart(const std::string& path, const ChartText& text,
                           const std::vector<std::pair<std::string, double>>& bars, double max, int decimals) {
  if (bars.empty()) return absl::InvalidArgumentError("a bar chart needs bars");
  if (!(max > 0)) return absl::InvalidArgumentError("a bar chart's axis must end above 0");
  Canvas c(text);
  double label_width = 0;
  for (const auto& [label, value] : bars) label_width = std::max(label_width, c.Width(label));
  const double left = 20 + label_width + 12, right = kChartWidth - 80.0;
  const double plot_top = 50, bottom = kChartHeight - 55.0;
  const double slot = (bottom - plot_top) / static_cast<double>(bars.size());
  const double thickness = std::min(40.0, slot * 0.6);
  // The axis ends at a whole number of ticks at or above `max`.
  const double step = NiceStep(max, 5);
  max = std::ceil(max / step - 1e-9) * step;
  auto x_of = [&](double v) { return left + (right - left) * std::clamp(v, 0.0, max) / max; };
  for (double v = 0; v <= max + step / 2; v += step) {
    c.Colour(225, 225, 225);
    c.Line(x_of(v), plot_top, x_of(v), bottom, 1);
    c.Colour(90, 90, 90);
    c.Text(TickLabel(v, step), x_of(v), bottom + 17, 0.5);
  }
  c.Text(text.x_label, (left + right) / 2, kChartHeight - 14.0, 0.5);
  for (size_t i = 0; i < bars.size(); ++i) {
    const double y = plot_top + slot * (static_cast<double>(i) + 0.5);
    c.Colour(kPalette[i % kPalette.size()]);
    cairo_rectangle(c.cr(), left, y - thickness / 2, x_of(bars[i].second) - left, thickness);
    cairo_fill(c.cr());
    c.Colour(40, 40, 40);
    c.Text(bars[i].first, left - 12, y + 4, 1);
    c.Text(fmt::format("{:.{}f}", bars[i].second, decimals), x_of(bars[i].second) + 6, y + 4);
  }
  c.Colour(90, 90, 90);
  c.Line(left, plot_top, left, bottom, 1);
  return c.Write(path);
}

}  // namespace rapport::simulate
