#!/bin/sh
# How qemu-img-info-bookworm.json was captured: qemu-img 7.2 (Debian 12's
# qemu-utils) on small images made here, one `qemu-img info --output=json`
# answer per kind of image a user may bring as os.image.
set -eu
dir=$(mktemp -d)
cd "$dir"
truncate -s 12M user.raw
printf 'data' | dd of=user.raw bs=1M seek=2 conv=notrunc status=none
qemu-img convert -q -f raw -O qcow2 user.raw user.qcow2
qemu-img create -q -f qcow2 -b user.raw -F raw overlay.qcow2
qemu-img create -q -f qcow2 -o data_file=external.raw external.qcow2 12M
qemu-img create -q -f vmdk user.vmdk 12M
{
    printf '{\n'
    for name in user.raw user.qcow2 overlay.qcow2 external.qcow2 user.vmdk; do
        [ "$name" = user.raw ] || printf ',\n'
        printf '"%s": ' "$name"
        qemu-img info --output=json "$name"
    done
    printf '}\n'
} | python3 -m json.tool --indent 4
rm -rf "$dir"
