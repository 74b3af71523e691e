// Command-line flags of the benchmarks: "--key value" pairs and --help.
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
#include <string>

namespace gfn::bench {

// Calls set(key, value) for each "--key value" pair; set returns false for a key it does not
// know. Returns the exit code when the program should stop (0 after --help, 2 on a missing value
// or an unknown key, with the usage on stderr), nullopt to go on.
inline std::optional<int> parse_flags(int argc, char** argv, const char* program, const char* help,
                                      const std::function<bool(const std::string&, const char*)>& set) {
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::printf("%s", help);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s: %s needs a value\n%s", program, argv[i], help);
      return 2;
    }
    if (!set(k, argv[i + 1])) {
      std::fprintf(stderr, "%s: unknown argument '%s'\n%s", program, argv[i], help);
      return 2;
    }
  }
  return std::nullopt;
}

}  // namespace gfn::bench
