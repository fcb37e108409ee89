#!/bin/sh
# mmdebstrap --extract-hook for nodejs18/rootfs/recipe: $1 is the unpacked root filesystem. The extract
# variant runs no maintainer scripts, so this does the parts of them the Node.js runtime needs.
set -eu
root="$1"

# update-ca-certificates (ca-certificates' postinst) concatenates the enabled certificates into the
# bundle OpenSSL reads; Debian's node uses OpenSSL's default store.
mkdir -p "$root/etc/ssl/certs"
cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"

# Users: root, and the unprivileged user the proxy runs as (base-passwd is not in the extract set).
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'action:x:1000:1000:action:/tmp:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' >"$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'action:x:1000:' 'nogroup:x:65534:' >"$root/etc/group"
mkdir -p "$root/root" "$root/action"

# Docker provides these per container; the host's copies would only make the tarball differ by host.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
# Nothing at run time reads documentation, translations or package caches.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*
