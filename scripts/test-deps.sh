#!/bin/sh
# Installs the programs the test suite runs as real peers. Only what is missing is installed,
# so a second run costs nothing.
set -eu

# Debian package : a program it provides (checked before installing).
want="
util-linux:unshare
iproute2:ip
pacman-package-manager:vercmp
makepkg:makepkg
fakeroot:fakeroot
libarchive-tools:bsdtar
zstd:zstd
xz-utils:xz
bzip2:bzip2
gzip:gzip
tar:tar
libcap2-bin:setcap
python3:python3
time:/usr/bin/time
gnupg:gpg
gpgv:gpgv
sq:sq
archlinux-keyring:/usr/share/keyrings/archlinux.gpg
nginx:/usr/sbin/nginx
openssl:openssl
gnupg:gpg-agent
curl:curl
pacman-package-manager:repo-add
bc:bc
linux-headers-amd64:/usr/src/linux-kbuild-6.1/scripts/mod/modpost
gcc:gcc
make:make
kmod:depmod
dkms:dkms
cpio:cpio
lz4:lz4
e2fsprogs:mkfs.ext4
e2fsprogs:chattr
busybox-static:/bin/busybox
groff-base:groff
zsh:zsh
fish:fish
arch-install-scripts:arch-chroot
dosfstools:mkfs.vfat
exfatprogs:mkfs.exfat
fdisk:sfdisk
binutils:strip
cryptsetup:cryptsetup
qemu-system-x86:qemu-system-x86_64
openssh-client:ssh-keygen
initramfs-tools:mkinitramfs
"

missing=""
for pair in $want; do
    pkg=${pair%%:*}
    prog=${pair#*:}
    command -v "$prog" >/dev/null 2>&1 || missing="$missing $pkg"
done
# An installed Debian kernel (modules in /lib/modules), for images made by the real mkinitramfs.
dpkg -s linux-image-amd64 >/dev/null 2>&1 || missing="$missing linux-image-amd64"

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "test-deps: missing:$missing (install them as root with apt-get)" >&2
        exit 1
    fi
    echo "test-deps: installing$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
