#!/bin/sh
# Compose v2 (Go) for the benchmarks, installed nowhere: Debian's docker-compose package of the
# suite forky (2.40 as of this writing) is fetched with `apt-get download` against a sources list
# and package lists of its own, checked against Debian's archive keyring as apt checks any
# package, and unpacked under TOOLS (default bench/.tools, ignored by git). Prints the path of
# the docker-compose binary. Idempotent: a second run reuses what the first one unpacked.
#
# The binary runs on its own (`docker-compose up -d`) and as the docker CLI plugin
# (`DOCKER_CONFIG=TOOLS/docker-config docker compose up -d`): the docker CLI looks for plugins in
# $DOCKER_CONFIG/cli-plugins (https://docs.docker.com/engine/extend/cli_plugins/), where this
# script links it.
#
#   sh bench/get-compose-v2.sh            # → .../bench/.tools/compose-v2/usr/libexec/docker/cli-plugins/docker-compose
set -eu

here=$(cd "$(dirname "$0")" && pwd)
tools=${TOOLS:-$here/.tools}
suite=${COMPOSE_SUITE:-forky}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
root=$tools/compose-v2
binary=$root/usr/libexec/docker/cli-plugins/docker-compose
plugin_dir=$tools/docker-config/cli-plugins

if [ ! -x "$binary" ]; then
    [ -r "$keyring" ] || { echo "error: $keyring is missing (Debian: apt-get install debian-archive-keyring)" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/archives/partial" "$work/parts" "$work/preferences.d"
    echo "deb [signed-by=$keyring] $mirror $suite main" > "$work/sources.list"
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then  # apt downloads as _apt where it can
        chmod 755 "$work" && chown _apt "$work" "$work/lists/partial" "$work/archives/partial"
    fi
    # Everything apt reads or writes points into $work: the host's sources, lists, pins and
    # package cache stay as they are, and nothing is installed (apt-get download only fetches).
    set -- -o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts="$work/parts" \
        -o Dir::Etc::PreferencesParts="$work/preferences.d" -o Dir::State::Lists="$work/lists" \
        -o Dir::Cache="$work" -o Dir::Cache::Archives="$work/archives" -o Dir::Cache::pkgcache="" \
        -o Dir::Cache::srcpkgcache="" -o APT::Get::List-Cleanup=false
    apt-get "$@" -q update >&2
    (cd "$work" && apt-get "$@" -q download "docker-compose/$suite" >&2)
    deb=$(ls "$work"/docker-compose_*.deb)
    mkdir -p "$root.partial"
    dpkg-deb -x "$deb" "$root.partial"
    [ -x "$root.partial/usr/libexec/docker/cli-plugins/docker-compose" ] || {
        echo "error: $deb has no usr/libexec/docker/cli-plugins/docker-compose" >&2; exit 1; }
    rm -rf "$root"
    mv "$root.partial" "$root"  # whole or not at all: a later run never takes half an unpacking for done
fi
mkdir -p "$plugin_dir"
ln -sf "$binary" "$plugin_dir/docker-compose"
echo "$binary"
