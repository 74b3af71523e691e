// The `gfn` command line: every command over the built-in kinds (apps/cli.h).
#include "apps/cli.h"

int main(int argc, char** argv) { return gfn::cli_main(argc, argv, gfn::Registry::builtin()); }
