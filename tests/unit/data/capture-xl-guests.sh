#!/bin/bash
# How xl-list-l-trixie-guests.json and xl-list-trixie-guests.txt were
# captured: run as root in the `make lab` dom0. Two throwaway PV guests boot
# dom0's own kernel with no disk (they stop in the initramfs), so `xl list -l`
# shows real guest domains. PVH cannot start on that dom0: trixie's Xen has no
# shadow paging and the lab CPU (qemu64,+svm) has no NPT.
set -eux
mkdir -p /tmp/cap
cat > /tmp/cap/web1.cfg <<'CFG'
name = "web1"
type = "pv"
kernel = "/vmlinuz"
ramdisk = "/initrd.img"
extra = "console=hvc0"
memory = 256
vcpus = 1
vif = [ "mac=00:16:3e:12:34:01, bridge=xenbr0" ]
on_crash = "preserve"
CFG
cat > /tmp/cap/db1.cfg <<'CFG'
name = "db1"
type = "pv"
kernel = "/vmlinuz"
ramdisk = "/initrd.img"
extra = "console=hvc0"
memory = 320
maxmem = 384
vcpus = 2
vif = [ "mac=00:16:3e:12:34:02, bridge=xenbr0" ]
on_crash = "preserve"
CFG
xl create /tmp/cap/web1.cfg </dev/null
xl create /tmp/cap/db1.cfg </dev/null
sleep 20
xl list > /tmp/cap/xl-list.txt
xl list -l > /tmp/cap/xl-list-l.json
xl destroy db1 </dev/null
xl destroy web1 </dev/null
