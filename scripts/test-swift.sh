#!/usr/bin/env bash
# Swift check. No Swift toolchain runs on this machine kind, so this is a
# smoke test: generate the Swift bindings, compile-check their C header with
# gcc, and parse every Swift file (generated, thin layer, XCTest sources,
# Package.swift) with tree-sitter-swift. Ends with "swift: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
cargo build -q -p waxwing-ffi
cargo build -q -p waxwing-ffi --features cli --bin uniffi-bindgen
out=target/swift-gen; rm -rf "$out"
target/debug/uniffi-bindgen generate --library target/debug/libwaxwing_ffi.so --language swift \
  --no-format --config uniffi.toml --out-dir "$out" >/dev/null

passed=0; failed=0
for h in "$out"/*.h; do
  if gcc -fsyntax-only -Wno-pragma-once-outside-header -D_Nullable= -D_Nonnull= -x c "$h"; then passed=$((passed+1)); echo "PASS header $h"
  else failed=$((failed+1)); echo "FAIL header $h"; fi
done
result=$(mktemp)
"$TOOLS/venv/bin/python" - "$out"/*.swift ios/Package.swift ios/Sources/Waxwing/*.swift ios/Tests/WaxwingTests/*.swift <<'PY' | tee "$result" || true
import re, sys
import tree_sitter, tree_sitter_swift
parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
bad = 0
for path in sys.argv[1:]:
    src = open(path, encoding="utf-8").read()
    # Two constructs uniffi emits that the grammar wrongly rejects.
    src = re.sub(r"#if swift\(>=5\.8\)\s*@_documentation\(visibility: private\)\s*#endif",
                 lambda m: " " * len(m.group(0)), src)
    src = src.replace("{ () }", "{    }")
    tree = parser.parse(src.encode())
    if tree.root_node.has_error:
        bad += 1
        def first_error(n):
            if n.type == "ERROR" or n.is_missing: return n
            for c in n.children:
                e = first_error(c)
                if e: return e
        e = first_error(tree.root_node)
        print(f"FAIL swift syntax {path} near line {e.start_point[0] + 1 if e else '?'}")
    else:
        print(f"PASS swift syntax {path}")
print(f"SWIFT_RESULT {len(sys.argv) - 1 - bad} {bad}")
sys.exit(1 if bad else 0)
PY
read -r sp sf < <(sed -n 's/^SWIFT_RESULT //p' "$result"); rm -f "$result"
passed=$((passed + ${sp:-0})); failed=$((failed + ${sf:-1}))
echo "swift: $passed passed, $failed failed"
[ "$failed" = 0 ]
