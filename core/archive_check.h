// A check of a LibTorch archive (a zip of pickles and tensor records: checkpoint.pt, model.pt)
// before LibTorch reads it. LibTorch 1.13's reader allocates what the archive declares: a
// record's size from the zip directory, a string's length and a memo index from the pickle's
// opcodes. A crafted or damaged archive of 36 KB made it ask for 27 GB and reach 20 GB resident
// (found by fuzz/'s checkpoint target behind a forged checksum). This walks the zip directory
// and every pickle record, and refuses any declared size the archive's own bytes cannot back,
// so that what LibTorch then allocates stays within a small multiple of the file's size.
#pragma once

#include <string>
#include <string_view>

namespace gfn {

// "" when every size `archive` declares fits in it; else the first that does not ("record
// 'archive/data.pkl': a string of 4261412886 bytes at byte 212, 1033 bytes before its end").
// An archive that is not a zip at all passes (LibTorch's reader refuses it with its own
// message), as does a zip64 archive (one of more than 4 GB, or 65,535 records), whose sizes
// this does not read.
std::string torch_archive_problem(std::string_view archive);

}  // namespace gfn
