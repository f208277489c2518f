#!/bin/sh
# Installs the Debian packages that libtopic's build and tests need, and only
# those that are missing.  Prints nothing when everything is installed.
#
#   sh tools/deps.sh && make demo    # build and run the quick start
#   sh tools/deps.sh && make check   # build and run the test suite
#
# Runs apt-get as root, through sudo when the caller is not root.  Exits with
# a non-zero status if any package could not be installed.
#
# SPDX-License-Identifier: BSD-2-Clause

PACKAGES="build-essential pkg-config libxxhash-dev liblz4-dev libcmocka-dev mandoc python3 python3-pytest librdkafka-dev"

die() {
	echo "deps.sh: $*" >&2
	exit 1
}

command -v dpkg-query >/dev/null 2>&1 ||
	die "dpkg-query not found; this script supports Debian and its derivatives"

# Prints the packages of $PACKAGES that are not installed, separated by spaces.
missing_packages() {
	missing=
	for pkg in $PACKAGES; do
		# "install ok installed" or "hold ok installed" means present.
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) || status=
		case $status in
		*" ok installed") ;;
		*) missing="${missing:+$missing }$pkg" ;;
		esac
	done
	echo "$missing"
}

missing=$(missing_packages)
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	SUDO=
elif command -v sudo >/dev/null 2>&1; then
	SUDO=sudo
else
	die "missing packages: $missing; run this script as root or install sudo"
fi

echo "deps.sh: installing $missing" >&2
# A failed update (one unreachable mirror, say) need not stop the install: the
# package lists may already be good enough, and apt-get install says if not.
$SUDO apt-get update ||
	echo "deps.sh: apt-get update failed; trying to install anyway" >&2
# $missing is split into words on purpose: one argument per package.
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends $missing ||
	die "apt-get install failed for: $missing"

still=$(missing_packages)
[ -z "$still" ] || die "still missing after apt-get install: $still"
echo "deps.sh: done" >&2
