#include "core/archive_check.h"

#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace gfn {

namespace {

uint64_t le(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  return v;
}

// The sizes a pickle (protocol 0 to 5) declares: each length argument within the bytes left,
// each memo index below the pickle's size (a pickler numbers its memo entries from 0, one per
// PUT or MEMOIZE, each at least one byte). Stops at STOP or at an opcode it does not know,
// which LibTorch's unpickler then refuses on its own.
std::string pickle_problem(std::string_view p) {
  const uint64_t n = p.size();
  size_t at = 0;
  auto need = [&](uint64_t bytes) { return n - at >= bytes; };
  auto cut = [&](const char* what) { return fmt::format("{} at byte {} runs past the end of the record", what, at); };
  while (at < n) {
    const auto op = static_cast<unsigned char>(p[at++]);
    int length_bytes = 0;  // an argument of this many bytes that is a length of data following it
    int fixed = -1;        // an argument of this many bytes (a memo index when memo is true)
    bool memo = false;
    switch (op) {
      case '.': return "";  // STOP
      // no argument
      case '(': case '0': case '1': case '2': case '}': case 'a': case 'e': case 'b': case 'd': case ']': case 'l':
      case ')': case 't': case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 'N': case 'R': case 's':
      case 'u': case 0x81: case 0x92: case 'Q': case 0x8f: case 0x90: case 0x91: case 0x93: case 0x94: case 0x97:
        fixed = 0;
        break;
      case 0x80: case 'K': case 0x82: fixed = 1; break;  // PROTO, BININT1, EXT1
      case 'M': case 0x83: fixed = 2; break;               // BININT2, EXT2
      case 'J': case 0x84: fixed = 4; break;               // BININT, EXT4
      case 'G': case 0x95: fixed = 8; break;               // BINFLOAT, FRAME
      case 'h': case 'q': fixed = 1, memo = true; break;   // BINGET, BINPUT
      case 'j': case 'r': fixed = 4, memo = true; break;   // LONG_BINGET, LONG_BINPUT
      case 'C': case 'U': case 0x8c: case 0x8a: length_bytes = 1; break;  // short strings, LONG1
      case 'B': case 'T': case 'X': case 0x8b: length_bytes = 4; break;   // strings, LONG4
      case 0x8d: case 0x8e: case 0x96: length_bytes = 8; break;           // 8-byte strings, BYTEARRAY8
      // protocol 0: newline-terminated text (GLOBAL: two lines)
      case 'I': case 'L': case 'S': case 'V': case 'F': case 'p': case 'g': case 'P': case 'c': {
        for (int lines = op == 'c' ? 2 : 1; lines > 0; --lines) {
          const size_t end = p.find('\n', at);
          if (end == std::string_view::npos) return cut("a text argument");
          at = end + 1;
        }
        continue;
      }
      default: return "";  // not a pickle opcode: LibTorch refuses it
    }
    if (length_bytes > 0) {
      if (!need(static_cast<uint64_t>(length_bytes))) return cut("a length");
      const uint64_t length = le(p, at, length_bytes);
      at += static_cast<size_t>(length_bytes);
      if (!need(length))
        return fmt::format("a string of {} bytes at byte {}, {} bytes before its end", length, at, n - at);
      at += static_cast<size_t>(length);
    } else if (fixed > 0) {
      if (!need(static_cast<uint64_t>(fixed))) return cut("an argument");
      if (memo && le(p, at, fixed) >= n)
        return fmt::format("a memo index of {} at byte {} in a pickle of {} bytes", le(p, at, fixed), at, n);
      at += static_cast<size_t>(fixed);
    }
  }
  return "";
}

}  // namespace

std::string torch_archive_problem(std::string_view z) {
  const uint64_t size = z.size();
  // the end of central directory record: 22 bytes and a comment of up to 65,535
  constexpr size_t kEnd = 22;
  if (size < kEnd) return "";
  size_t eocd = std::string_view::npos;
  for (size_t at = size - kEnd + 1; at-- > 0 && size - at <= kEnd + 65535;)
    if (le(z, at, 4) == 0x06054b50) {
      eocd = at;
      break;
    }
  if (eocd == std::string_view::npos) return "";
  const uint64_t records = le(z, eocd + 10, 2), directory_size = le(z, eocd + 12, 4),
                 directory = le(z, eocd + 16, 4);
  if (records == 0xffff || directory_size == 0xffffffff || directory == 0xffffffff) return "";  // zip64
  if (directory > eocd || directory_size > eocd - directory)
    return fmt::format("its directory ({} bytes at byte {}) lies outside the file of {} bytes", directory_size,
                       directory, size);
  size_t at = static_cast<size_t>(directory);
  const size_t end = static_cast<size_t>(directory + directory_size);
  for (uint64_t r = 0; r < records; ++r) {
    if (end - at < 46 || le(z, at, 4) != 0x02014b50)
      return fmt::format("its directory holds {} records, not the {} it declares", r, records);
    const uint64_t method = le(z, at + 10, 2), stored = le(z, at + 20, 4), full = le(z, at + 24, 4);
    const size_t name_length = static_cast<size_t>(le(z, at + 28, 2));
    const size_t skip = 46 + name_length + static_cast<size_t>(le(z, at + 30, 2) + le(z, at + 32, 2));
    const uint64_t local = le(z, at + 42, 4);
    if (end - at < skip) return "its directory runs past its end";
    const std::string name(z.substr(at + 46, name_length));
    if (stored == 0xffffffff || full == 0xffffffff || local == 0xffffffff) return "";  // zip64
    // LibTorch writes its records uncompressed (method 0); a compressed one still cannot grow
    // past what inflate can make of its bytes (1032:1)
    if (stored > size || (method == 0 ? full != stored : full > 1032 * stored + 1024))
      return fmt::format("record '{}' declares {} bytes ({} stored) in a file of {}", name, full, stored, size);
    if (size < 30 || local > size - 30 || le(z, static_cast<size_t>(local), 4) != 0x04034b50)
      return fmt::format("record '{}' has no header at byte {}", name, local);
    const uint64_t data = local + 30 + le(z, static_cast<size_t>(local) + 26, 2) + le(z, static_cast<size_t>(local) + 28, 2);
    if (data > size || stored > size - data)
      return fmt::format("record '{}' ({} bytes at byte {}) runs past the end of the file of {} bytes", name, stored,
                         data, size);
    if (method == 0 && name.size() >= 4 && name.compare(name.size() - 4, 4, ".pkl") == 0) {
      const std::string problem = pickle_problem(z.substr(static_cast<size_t>(data), static_cast<size_t>(stored)));
      if (!problem.empty()) return fmt::format("record '{}': {}", name, problem);
    }
    at += skip;
  }
  return "";
}

}  // namespace gfn
