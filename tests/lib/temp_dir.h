// A fresh temporary directory for one test, removed afterwards.
#ifndef RAPPORT_TESTS_LIB_TEMP_DIR_H_
#define RAPPORT_TESTS_LIB_TEMP_DIR_H_

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace rapport::testing {

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("rapport_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace rapport::testing

#endif  // RAPPORT_TESTS_LIB_TEMP_DIR_H_
