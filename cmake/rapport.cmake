# Helpers so each module's CMakeLists.txt reads as a list of its parts.

# rapport_library(NAME SRCS a.cc b.cc DEPS x y)
function(rapport_library name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SRCS})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# rapport_test(NAME SRCS a_test.cc DEPS x y): a GoogleTest binary registered with ctest.
function(rapport_test name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 30 PROPERTIES LABELS unit)
endfunction()

# rapport_benchmark(NAME SRCS a_benchmark.cc DEPS x y): Google Benchmark, never run by ctest.
function(rapport_benchmark name)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SRCS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark benchmark::benchmark_main)
endfunction()

# rapport_node_test(NAME FILE path.test.mjs LABELS l TIMEOUT s): a node:test file that drives
# the real server binary (passed in RAPPORT_BIN).
function(rapport_node_test name)
  cmake_parse_arguments(ARG "" "FILE;TIMEOUT" "LABELS" ${ARGN})
  add_test(NAME ${name}
           COMMAND node --test --test-reporter=spec ${ARG_FILE}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES
    LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "RAPPORT_BIN=$<TARGET_FILE:rapport>")
endfunction()
include(GoogleTest)
