// Fault injection for the crash tests: with the environment variable GFN_FAULT_KILL set to
// "<point>:<n>", the process kills itself with SIGKILL the n-th time (n >= 1) it passes the
// fault point named <point>, so that a test can stop a run at a moment it chooses exactly (a
// signal sent from outside lands wherever the run happens to be). Points:
//   iteration            the end of an iteration (its log row buffered, before its checkpoint)
//   eval                 inside an evaluation, after its metrics are buffered, before model.pt
//   log.flush            inside a log flush: the /train rows written, the other datasets not yet
//   write:<file name>    inside an atomic file write (core/file_io.h): half of the temporary
//                        file written, e.g. write:checkpoint.pt, write:model.pt
// Without the variable a fault point costs one load and a branch.
#pragma once

namespace gfn {

void fault_point(const char* point);

}  // namespace gfn
