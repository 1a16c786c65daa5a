#!/usr/bin/env bash
# Builds the collection xen_lab.dom0 from this checkout (its working tree, as
# galaxy.yml's build_ignore leaves it) and installs it into the collections
# folder DEST, the way a repository of your own installs it: DEST then holds
# ansible_collections/xen_lab/dom0. community.general and ansible.posix are not
# fetched (--no-deps): the pinned `ansible` bundle ships them.
set -euo pipefail
dest=${1:?usage: install-collection.sh DEST}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
ansible-galaxy collection build --force --output-path "$build" "$root" >/dev/null
mkdir -p "$dest"
ANSIBLE_COLLECTIONS_PATH="$dest" ansible-galaxy collection install --offline --no-deps --force -p "$dest" "$build"/xen_lab-dom0-*.tar.gz >/dev/null
echo "xen_lab.dom0 $(sed -n 's/^version: //p' "$root/galaxy.yml") installed into $dest"
