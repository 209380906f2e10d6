# One INTERFACE target carries the language level, warnings and sanitizer flags for every
# in-tree target (plugins and fixtures included, so they share the worker's sanitizer runtime).
option(SHOAL_WERROR "Treat warnings as errors" OFF)
set(SHOAL_SANITIZER "" CACHE STRING "empty | address,undefined | thread")

add_library(shoal_options INTERFACE)
target_compile_features(shoal_options INTERFACE cxx_std_20)
target_compile_options(shoal_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wcast-align -Wconversion -Wsign-conversion -Wformat=2
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor>
  $<$<BOOL:${SHOAL_WERROR}>:-Werror>)
if(SHOAL_FUZZ)
  # Coverage feedback for the fuzzers from the code under test, not only the targets.
  target_compile_options(shoal_options INTERFACE -fsanitize=fuzzer-no-link)
endif()
if(SHOAL_SANITIZER)
  target_compile_options(shoal_options INTERFACE -fsanitize=${SHOAL_SANITIZER} -fno-omit-frame-pointer)
  target_link_options(shoal_options INTERFACE -fsanitize=${SHOAL_SANITIZER})
  # Line tables are all a sanitizer report needs; full -g doubled the object files and
  # the sanitizer stages' build time, which CI's 90 minutes cannot spare.
  target_compile_options(shoal_options INTERFACE -g1)
  if(SHOAL_SANITIZER MATCHES "address")
    # -O1, as AddressSanitizer's docs advise: a test file compiles in 34 s instead of 51 s
    # under ASan+UBSan at -O2, and that stage's build was 31 of CI's 67 minutes.
    target_compile_options(shoal_options INTERFACE -O1)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports maybe-uninitialized inside libstdc++ (std::regex, std::function)
    # once sanitizer instrumentation changes what it inlines: false positives in
    # headers we do not own, which -Werror would turn into a failed build.
    target_compile_options(shoal_options INTERFACE -Wno-maybe-uninitialized)
  endif()
  if(SHOAL_SANITIZER MATCHES "thread")
    # The fences order the sleep/wake handshake with peers in other processes, which
    # TSan cannot see anyway; data is handed over by release/acquire, which it checks.
    target_compile_options(shoal_options INTERFACE -Wno-tsan)
  endif()
endif()
