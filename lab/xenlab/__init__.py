"""The QEMU lab harness: Debian VMs that stand in for bare-metal dom0 hosts."""
