#!/usr/bin/env bash
# Rewrites the README's table of every config key (between <!-- keys:begin --> and
# <!-- keys:end -->) from `gfn keys --markdown`, which derives it from the options tables.
#   scripts/update_readme_keys.sh [GFN_BINARY]      (default build/bin/gfn)
set -euo pipefail
cd "$(dirname "$0")/.."
gfn=${1:-build/bin/gfn}
tables=$("$gfn" keys --markdown)
TABLES="$tables" /usr/bin/env python3 - <<'PY'
import os
path = "README.md"
text = open(path, encoding="utf-8").read()
begin, end = "<!-- keys:begin -->\n", "<!-- keys:end -->"
a, b = text.index(begin) + len(begin), text.index(end)
open(path, "w", encoding="utf-8").write(text[:a] + os.environ["TABLES"].rstrip("\n") + "\n" + text[b:])
PY
echo "README.md: key tables rewritten from $gfn keys --markdown"
