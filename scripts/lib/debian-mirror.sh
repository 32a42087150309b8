# Sourced by scripts/fetch-fixtures.sh and scripts/mk-systemd-image.sh: the
# Debian mirror and security URIs they fetch from, and the archive keyring.
# MIRROR / SECURITY: the first URI of the system's apt sources (deb822
# .sources or one-line .list) ending in /debian (resp. /debian-security),
# else deb.debian.org. Packages come through the scripts' own apt roots;
# the system's sources only name the mirror.
sys_uris() {
    { grep -hs '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources | sed 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
      grep -hs '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          | sed 's/\[[^]]*\]//' | awk '{print $2}'
    } | sed 's:/*$::'
}
MIRROR=$(sys_uris | grep -m1 '/debian$' || true)
SECURITY=$(sys_uris | grep -m1 '/debian-security$' || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
