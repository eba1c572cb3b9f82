#include "tools/simulate/chart.h"

#include <cairo.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <unistd.h>

#include <gtest/gtest.h>

namespace rapport::simulate {
namespace {

TEST(NiceStep, IsOneTwoOrFiveTimesAPowerOfTen) {
  EXPECT_DOUBLE_EQ(NiceStep(10, 5), 2);
  EXPECT_DOUBLE_EQ(NiceStep(7, 5), 2);
  EXPECT_DOUBLE_EQ(NiceStep(12, 5), 5);
  EXPECT_DOUBLE_EQ(NiceStep(4000, 5), 1000);
  EXPECT_DOUBLE_EQ(NiceStep(1, 5), 0.2);
  EXPECT_DOUBLE_EQ(NiceStep(30, 10), 5);
  EXPECT_DOUBLE_EQ(NiceStep(0, 5), 1);
  EXPECT_DOUBLE_EQ(NiceStep(-3, 5), 1);
}

// A PNG read back, pixel by pixel.
class Png {
 public:
  explicit Png(const std::string& path) : surface_(cairo_image_surface_create_from_png(path.c_str())) {}
  ~Png() { cairo_surface_destroy(surface_); }
  bool ok() const { return cairo_surface_status(surface_) == CAIRO_STATUS_SUCCESS; }
  int width() const { return cairo_image_surface_get_width(surface_); }
  int height() const { return cairo_image_surface_get_height(surface_); }
  // Whether pixel (x, y) is within `tolerance` of palette colour `c` in every channel.
  bool Is(int x, int y, size_t c, int tolerance = 40) const {
    const unsigned char* row = cairo_image_surface_get_data(surface_) + y * cairo_image_surface_get_stride(surface_);
    const uint32_t px = reinterpret_cast<const uint32_t*>(row)[x];
    const int r = (px >> 16) & 0xff, g = (px >> 8) & 0xff, b = px & 0xff;
    const auto& want = kPalette[c];
    return std::abs(r - want[0]) <= tolerance && std::abs(g - want[1]) <= tolerance &&
           std::abs(b - want[2]) <= tolerance;
  }
  // The rows of column x in colour c (first and last), or -1.
  std::pair<int, int> RowsOf(int x, size_t c) const {
    int first = -1, last = -1;
    for (int y = 0; y < height(); ++y) {
      if (Is(x, y, c)) {
        if (first < 0) first = y;
        last = y;
      }
    }
    return {first, last};
  }
  // The last column of row y in colour c, or -1.
  int LastColumnOf(int y, size_t c) const {
    int last = -1;
    for (int x = 0; x < width(); ++x) {
      if (Is(x, y, c)) last = x;
    }
    return last;
  }

 private:
  cairo_surface_t* surface_;
};

std::string TempPng(const char* name) {
  // Unique per process: test binaries of several builds may run at once.
  return (std::filesystem::temp_directory_path() /
          (std::string("rapport-chart-") + std::to_string(::getpid()) + "-" + name + ".png"))
      .string();
}

TEST(LineChart, DrawsEachSeriesAtItsHeight) {
  const std::string path = TempPng("line");
  // The top series sits on the axis' top gridline (10 is a whole number of steps), another on
  // the x axis, a third halfway between.
  ASSERT_TRUE(WriteLineChart(path, {"t", "day", "n"},
                             {{"ten", {10, 10, 10, 10, 10}}, {"zero", {0, 0, 0, 0, 0}}, {"five", {5, 5, 5, 5, 5}}})
                  .ok());
  Png png(path);
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(png.width(), kChartWidth);
  EXPECT_EQ(png.height(), kChartHeight);
  const int middle = kChartWidth / 2;
  const auto [ten_top, ten_bottom] = png.RowsOf(middle, 0);
  const auto [zero_top, zero_bottom] = png.RowsOf(middle, 1);
  const auto [five_top, five_bottom] = png.RowsOf(middle, 2);
  ASSERT_GE(ten_top, 0);
  ASSERT_GE(zero_top, 0);
  ASSERT_GE(five_top, 0);
  EXPECT_LE(ten_bottom - ten_top, 4);  // a line, not a fill
  EXPECT_LT(ten_bottom, five_top);
  EXPECT_LT(five_bottom, zero_top);
  const double half = (ten_top + zero_top) / 2.0;
  EXPECT_NEAR((five_top + five_bottom) / 2.0, half, 2);
  std::filesystem::remove(path);
}

TEST(BarChart, BarLengthsFollowTheirValues) {
  const std::string path = TempPng("bars");
  ASSERT_TRUE(WriteBarChart(path, {"t", "x", ""}, {{"whole", 1.0}, {"half", 0.5}, {"over", 3.0}}, 1.0, 2).ok());
  Png png(path);
  ASSERT_TRUE(png.ok());
  // Find each bar's row: the column just right of the bars' start holds its colour.
  int rows[3] = {-1, -1, -1};
  for (size_t c = 0; c < 3; ++c) {
    for (int y = 0; y < png.height() && rows[c] < 0; ++y) {
      if (png.LastColumnOf(y, c) > kChartWidth / 2 - 100) rows[c] = y + 5;
    }
    ASSERT_GE(rows[c], 0) << c;
  }
  const int whole = png.LastColumnOf(rows[0], 0), half = png.LastColumnOf(rows[1], 1);
  const int over = png.LastColumnOf(rows[2], 2);
  EXPECT_EQ(over, whole);  // drawn to the axis' end, not beyond
  int start = 0;
  while (start < kChartWidth && !png.Is(start, rows[0], 0)) ++start;
  EXPECT_NEAR(static_cast<double>(half - start) / (whole - start), 0.5, 0.02);
  std::filesystem::remove(path);
}

TEST(Charts, RefuseWhatTheyCannotDraw) {
  const std::string path = TempPng("bad");
  EXPECT_EQ(WriteLineChart(path, {}, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteLineChart(path, {}, {{"a", {1, 2}}, {"b", {1}}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteBarChart(path, {}, {}, 1, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteBarChart(path, {}, {{"a", 1}}, 0, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteBarChart("/nonexistent-dir/x.png", {}, {{"a", 1}}, 1, 0).code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace rapport::simulate
