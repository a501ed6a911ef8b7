# Sourced by the Kotlin scripts: builds the library, generates the Kotlin
# bindings and compiles them with the thin layer into $KT_OUT/waxwing.jar.
# Sets KOTLINC, KT_LIB, KT_OUT, KT_CP, LIB_DIR.
TOOLS="${WAXWING_TOOLS:-$PWD/target/tools}"
KOTLIN_HOME="$TOOLS/kotlin/node_modules/kotlin-compiler"
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
KT_LIB="$KOTLIN_HOME/lib"
KT_OUT="$PWD/target/kotlin"
LIB_DIR="$PWD/target/debug"
export JAVA_OPTS="-Xmx1g -XX:TieredStopAtLevel=1 -XX:+UseParallelGC"
mkdir -p "$KT_OUT"

cargo build -q -p waxwing-ffi
cargo build -q -p waxwing-ffi --features cli --bin uniffi-bindgen
rm -rf "$KT_OUT/gen"
target/debug/uniffi-bindgen generate --library "$LIB_DIR/libwaxwing_ffi.so" --language kotlin \
  --no-format --config uniffi.toml --out-dir "$KT_OUT/gen" >/dev/null

KT_CP="/usr/share/java/jna.jar:$KT_LIB/kotlinx-coroutines-core-jvm.jar:$KT_LIB/kotlin-stdlib.jar"
# Recompile only when the generated code or the thin layer changed.
hash=$(cat "$KT_OUT/gen/im/waxwing/"*.kt android/src/main/kotlin/im/waxwing/*.kt | sha256sum | cut -c1-16)
if [ ! -f "$KT_OUT/waxwing-$hash.jar" ]; then
  rm -f "$KT_OUT"/waxwing-*.jar
  "$KOTLINC" -nowarn "$KT_OUT/gen/im/waxwing/"*.kt android/src/main/kotlin/im/waxwing/*.kt \
    -cp "$KT_CP" -d "$KT_OUT/waxwing-$hash.jar" 2>&1 | grep -v '^warning' || true
fi
[ -f "$KT_OUT/waxwing-$hash.jar" ] || { echo "kotlin: bindings did not compile" >&2; return 1; }
WAXWING_JAR="$KT_OUT/waxwing-$hash.jar"
