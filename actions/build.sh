#!/usr/bin/env bash
# Build the sample WebAssembly actions: actions/src/*.c -> actions/wasm/<name>.wasm
#
# Each module is a WASI preview-1 command (has `_start`) compiled with the zig
# toolchain shipped by the `ziglang` Python package.  The built .wasm files are
# committed, so users do not need the toolchain; re-run this after editing src/.
#
# Python is taken from $PYTHON, else the repo's .venv/bin/python, else python3.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd -- "$here/.." && pwd)"
src="$here/src"
out="$here/wasm"

if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
    py="$repo/.venv/bin/python"
else
    py="$(command -v python3 || true)"
fi
if [[ -z "$py" ]] || ! "$py" -m ziglang version >/dev/null 2>&1; then
    echo "build.sh: need a Python with the 'ziglang' package (pip install ziglang); set \$PYTHON" >&2
    exit 1
fi

zigcc=("$py" -m ziglang cc -target wasm32-wasi)  # zig rejects the 'wasm32-wasip1' spelling
cflags=(-O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE)

# Optional linker flags, each used only if this zig accepts it (current zig accepts both):
#  - strip debug info and the name section (~1 MB -> tens of KB per module);
#  - a 1 MiB shadow stack instead of zig's 16 MiB default, so a module's initial
#    linear memory is ~1 MiB and tight memory limits measure the action, not the stack.
probe_dir="$(mktemp -d)"
trap 'rm -rf -- "$probe_dir"' EXIT
printf 'int main(void){return 0;}\n' >"$probe_dir/p.c"
accepts() { "${zigcc[@]}" -O2 "$@" -o "$probe_dir/p.wasm" "$probe_dir/p.c" >/dev/null 2>&1; }
ldflags=()
for flag in -s -Wl,--strip-all; do
    if accepts "$flag"; then ldflags+=("$flag"); break; fi
done
if accepts -Wl,-z,stack-size=1048576; then ldflags+=(-Wl,-z,stack-size=1048576); fi

mkdir -p "$out"
shopt -s nullglob
sources=("$src"/*.c)
if ((${#sources[@]} == 0)); then
    echo "build.sh: no sources in $src" >&2
    exit 1
fi
for c in "${sources[@]}"; do
    name="$(basename -- "$c" .c)"
    tmp="$out/.$name.wasm.tmp"
    "${zigcc[@]}" "${cflags[@]}" "${ldflags[@]}" -I"$src" -o "$tmp" "$c"
    chmod 0644 "$tmp"
    mv -f -- "$tmp" "$out/$name.wasm"
    printf '%-14s %7d bytes\n' "$name.wasm" "$(wc -c <"$out/$name.wasm")"
done
