#!/usr/bin/env bash
# Writes the build context of the execution environment (execution-environment.yml)
# into DEST, ready for `podman build -t xen-lab-ee DEST` (or docker build). It
# builds the collection from this checkout's working tree, as galaxy.yml's
# build_ignore leaves it, into .cache/ee/xen_lab-dom0.tar.gz, where the EE
# definition takes it from; `ansible-builder create` needs no network. Then it
# checks that DEST holds what the build needs: a missing file is only a warning
# to ansible-builder.
set -euo pipefail
dest=${1:?usage: ee-context.sh DEST}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

ansible-galaxy collection build --force --output-path "$build" "$root" >/dev/null
mkdir -p "$root/.cache/ee"
mv "$build"/xen_lab-dom0-*.tar.gz "$root/.cache/ee/xen_lab-dom0.tar.gz"
ansible-builder create --file "$root/execution-environment.yml" --context "$dest" \
  --output-filename Containerfile >/dev/null

fail() { echo "ee-context.sh: $*" >&2; exit 1; }
for file in Containerfile _build/requirements.yml _build/requirements.txt \
            _build/collections/xen_lab-dom0.tar.gz _build/scripts/assemble _build/scripts/introspect.py; do
  test -s "$dest/$file" || fail "$dest/$file is missing or empty"
done
grep -q '/build/collections/xen_lab-dom0.tar.gz' "$dest/_build/requirements.yml" \
  || fail "the galaxy requirements do not name the collection's tarball"
grep -q 'ansible-galaxy collection install' "$dest/Containerfile" \
  || fail "the Containerfile installs no collection"
# The image runs the ansible-core and the bundle this checkout is tested with.
for package in ansible-core ansible; do
  pin=$(grep -x "$package==[0-9.]*" "$root/requirements.txt") || fail "requirements.txt pins no $package"
  grep -qx "$pin" "$dest/_build/requirements.txt" || fail "execution-environment.yml does not install $pin"
done
grep -q "^ARG ANSIBLE_INSTALL_REFS=\"$(grep -x 'ansible-core==[0-9.]*' "$root/requirements.txt") " "$dest/Containerfile" \
  || fail "the Containerfile's base stage does not install requirements.txt's ansible-core"
# What the image gets: the collection with its bindep.txt (ansible-builder
# installs those system packages), and none of the repository's development files.
contents=$(tar -tzf "$dest/_build/collections/xen_lab-dom0.tar.gz")
grep -qx 'bindep.txt' <<<"$contents" || fail "the collection's tarball has no bindep.txt"
if grep -E '^(tests|collections|\.venv|tools|examples)(/|$)|^requirements\.txt$' <<<"$contents"; then
  fail "the collection's tarball holds development files (above)"
fi
echo "execution environment build context in $dest"
