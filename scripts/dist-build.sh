#!/usr/bin/env bash
# Builds the shipped library: `cargo build --profile dist --lib --features dist` (debug and
# trace logging compiled out) plus SQLite without what the store never uses. Arguments are passed to cargo (for example `--target aarch64-apple-ios`);
# with CARGO_NDK=1 the build goes through `cargo ndk` (arguments are then cargo-ndk's, before
# `build`).
#
#   scripts/dist-build.sh [cargo args...]
#   CARGO_NDK=1 scripts/dist-build.sh --platform 26 -t arm64-v8a -o jniLibs
#
# The output is target/[<triple>/]dist/libcrewsafe.{so,a,dylib}, stripped (uniffi's metadata
# stays: its macros export it); generate bindings from a `release` build of the same sources.
#
# SQLite (libsqlite3-sys "bundled") is compiled with full-text search, R-tree, dbstat,
# soundex, statistics-driven planning (STAT4; the store never runs ANALYZE), column metadata,
# extension loading, shared cache, progress callbacks and memory statistics: the store uses
# none of them (JSON stays: `json_each` filters record pages). These are all options SQLite
# documents as safe to remove from the amalgamation. Also off: the checks for misuse of the C
# API (only rusqlite calls it), the expression depth limit (the store runs only its own SQL)
# and LIKE on BLOBs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LIBSQLITE3_FLAGS="-USQLITE_ENABLE_FTS3 -USQLITE_ENABLE_FTS3_PARENTHESIS \
-USQLITE_ENABLE_FTS5 -USQLITE_ENABLE_RTREE -USQLITE_ENABLE_DBSTAT_VTAB -USQLITE_SOUNDEX \
-USQLITE_ENABLE_STAT4 -USQLITE_ENABLE_COLUMN_METADATA -USQLITE_ENABLE_LOAD_EXTENSION \
-DSQLITE_OMIT_LOAD_EXTENSION -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_SHARED_CACHE \
-DSQLITE_OMIT_PROGRESS_CALLBACK -DSQLITE_DEFAULT_MEMSTATUS=0 \
-USQLITE_ENABLE_API_ARMOR -DSQLITE_MAX_EXPR_DEPTH=0 -DSQLITE_LIKE_DOESNT_MATCH_BLOBS"

# No unwind tables for the C code (SQLite, ring's C): nothing unwinds through it (the store
# registers no SQL functions, hooks or collations that call back into Rust). Rust code keeps
# its tables: a panic must unwind to the FFI boundary.
export CFLAGS="${CFLAGS:-} -fno-asynchronous-unwind-tables -fno-unwind-tables"

# Source paths of dependencies (kept in panic messages) are cut to `deps/<crate>/...`: the
# library does not carry the build machine's home directory, and is 16 KiB smaller.
for src in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
  [ -d "$src" ] && export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=${src%/}=deps"
done

if [ "${CARGO_NDK:-0}" = 1 ]; then
  exec cargo ndk "$@" build --profile dist --lib --features dist
fi
# A host build on Linux: relative relocations packed (RELR, glibc 2.36+), as Android builds
# pack theirs (build-native.sh): 250 KiB of .rela.dyn become a few KiB. Passed to the final
# link only, so the dependencies' artifacts are the same with or without it.
case "$(uname -s)-$*" in
  Linux-|Linux---locked|Linux---offline)
    exec cargo rustc --profile dist --lib --features dist "$@" -- -C link-arg=-Wl,-z,pack-relative-relocs ;;
esac
exec cargo build --profile dist --lib --features dist "$@"
