#!/usr/bin/env python3
"""Build a gzip'd newc cpio initramfs without root and without cpio(1).

CLI:
    scripts/mk-initramfs.py -o out.cpio.gz --busybox cache/arm64/busybox \\
        (--init-file init.sh | --init 'echo hi; poweroff -f') \\
        [--init-path /init] [--add SRC:DEST ...] [--add-tree DIR:DEST ...]

Library (the file name has a dash, so load it by path):
    spec = importlib.util.spec_from_file_location("mk_initramfs", PATH)
    mk = importlib.util.module_from_spec(spec); spec.loader.exec_module(mk)
    mk.build("out.cpio.gz", init="...", busybox="...", adds=["SRC:DEST"])

The archive always contains /dev, /proc, /sys, /tmp, /bin, /sbin and
/dev/console (so the kernel has a console before devtmpfs is mounted).
With a busybox, it is /bin/busybox plus symlinks for the common applets.
The init (a shell script; a "#!/bin/sh" line is prepended if it lacks one)
becomes /init with mode 0755. File modes of --add/--add-tree sources are
kept; owners are always root (uid/gid 0). Symlinks in trees are stored as
symlinks. Files are streamed, so a 30+ MB kernel Image is fine.
"""
import argparse
import gzip
import os
import stat
import sys

# Applets linked in /bin besides /bin/busybox. Init may still run
# `busybox --install -s` for the rest.
APPLETS = ("sh ash mount umount cat echo sleep poweroff reboot halt ls mkdir "
           "dmesg grep sed awk cut tr head tail uname date sync mknod ln rm cp "
           "mv chmod ps kill true false test [ printf env switch_root").split()


class Newc:
    """Streaming writer for the SVR4 "newc" cpio format (magic 070701)."""

    def __init__(self, fileobj):
        self.f = fileobj
        self.ino = 721  # arbitrary start; only needs to be unique per entry
        self.seen = set()

    def _pad(self, n):
        self.f.write(b"\0" * ((4 - n % 4) % 4))

    def _header(self, name, mode, size, nlink=1, rdevmajor=0, rdevminor=0, mtime=0):
        name_b = name.encode() + b"\0"
        self.ino += 1
        fields = (self.ino, mode, 0, 0, nlink, mtime, size, 0, 0,
                  rdevmajor, rdevminor, len(name_b), 0)
        hdr = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.f.write(hdr + name_b)
        self._pad(len(hdr) + len(name_b))

    def _name(self, dest):
        name = os.path.normpath("/" + dest).lstrip("/")
        if not name or name == ".":
            raise ValueError(f"bad archive path {dest!r}")
        return name

    def _parents(self, name):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def dir(self, dest, mode=0o755):
        name = self._name(dest)
        if name in self.seen:
            return
        self._parents(name)
        self.seen.add(name)
        self._header(name, stat.S_IFDIR | mode, 0, nlink=2)

    def data(self, dest, payload, mode=0o644):
        name = self._name(dest)
        self._parents(name)
        self.seen.add(name)
        self._header(name, stat.S_IFREG | mode, len(payload))
        self.f.write(payload)
        self._pad(len(payload))

    def file(self, dest, src, mode=None):
        st = os.stat(src)  # follows symlinks: --add stores the target's content
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{src}: not a regular file")
        name = self._name(dest)
        self._parents(name)
        self.seen.add(name)
        perm = stat.S_IMODE(st.st_mode) if mode is None else mode
        self._header(name, stat.S_IFREG | perm, st.st_size)
        left = st.st_size
        with open(src, "rb") as f:
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise IOError(f"{src}: file shrank while archiving")
                self.f.write(chunk)
                left -= len(chunk)
        self._pad(st.st_size)

    def symlink(self, dest, target):
        name = self._name(dest)
        self._parents(name)
        self.seen.add(name)
        t = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(t))
        self.f.write(t)
        self._pad(len(t))

    def node(self, dest, kind, major, minor, mode=0o600):
        name = self._name(dest)
        self._parents(name)
        self.seen.add(name)
        self._header(name, kind | mode, 0, rdevmajor=major, rdevminor=minor)

    def tree(self, src_dir, dest):
        if not os.path.isdir(src_dir):
            raise ValueError(f"{src_dir}: not a directory")
        dest = dest.rstrip("/")
        if dest:  # "" = the archive root, which needs no entry
            self.dir(dest, stat.S_IMODE(os.stat(src_dir).st_mode))
        for root, dirs, files in os.walk(src_dir):
            dirs.sort()
            rel = os.path.relpath(root, src_dir)
            base = dest if rel == "." else f"{dest}/{rel}"
            for d in list(dirs):
                p = os.path.join(root, d)
                if os.path.islink(p):  # don't descend; store as symlink
                    self.symlink(f"{base}/{d}", os.readlink(p))
                    dirs.remove(d)
                else:
                    self.dir(f"{base}/{d}", stat.S_IMODE(os.stat(p).st_mode))
            for fn in sorted(files):
                p = os.path.join(root, fn)
                if os.path.islink(p):
                    self.symlink(f"{base}/{fn}", os.readlink(p))
                else:
                    self.file(f"{base}/{fn}", p)

    def close(self):
        self._header("TRAILER!!!", 0, 0, nlink=1)
        # The kernel reads the archive in 512-byte blocks; pad like cpio(1).
        self.f.write(b"\0" * (-self.f.tell() % 512))


class _Counting:
    """File wrapper that counts bytes (GzipFile.tell() is fine, but be explicit)."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def write(self, b):
        self.n += len(b)
        self.f.write(b)

    def tell(self):
        return self.n


def _split(spec, what):
    if ":" not in spec:
        raise ValueError(f"{what} wants SRC:DEST, got {spec!r}")
    src, dest = spec.rsplit(":", 1)
    if not os.path.exists(src):
        raise FileNotFoundError(f"{what} {spec!r}: {src} does not exist")
    return src, dest


def build(out, init, busybox=None, adds=(), trees=(), init_path="/init",
          compresslevel=1):
    """Write a gzip'd newc initramfs to `out`.

    init: the init script's text (str/bytes). adds: iterable of (src, dest)
    files or "SRC:DEST" strings; trees: the same for directories.
    compresslevel 1 keeps building a 30 MB archive quick; the kernel's
    gunzip speed barely depends on the level.
    """
    if isinstance(init, str):
        init = init.encode()
    if not init.startswith(b"#!"):
        init = b"#!/bin/sh\n" + init
    if not init.endswith(b"\n"):
        init += b"\n"
    adds = [_split(a, "--add") if isinstance(a, str) else a for a in adds]
    trees = [_split(t, "--add-tree") if isinstance(t, str) else t for t in trees]
    for src, _ in adds:
        if not os.path.isfile(src):
            raise FileNotFoundError(f"--add source {src} is not a file")
    if busybox and not os.path.isfile(busybox):
        raise FileNotFoundError(f"busybox binary {busybox} not found")
    tmp = out + ".tmp"
    with open(tmp, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as gz:
        w = Newc(_Counting(gz))
        for d in ("dev", "proc", "sys", "tmp", "run", "bin", "sbin", "mnt", "root"):
            w.dir(d)
        w.node("dev/console", stat.S_IFCHR, 5, 1)
        w.node("dev/null", stat.S_IFCHR, 1, 3, 0o666)
        if busybox:
            w.file("bin/busybox", busybox, 0o755)
            for a in APPLETS:
                w.symlink(f"bin/{a}", "busybox")
        for src, dest in trees:
            w.tree(src, dest)
        for src, dest in adds:
            w.file(dest, src)
        w.data(init_path, init, 0o755)
        w.close()
    os.replace(tmp, out)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="output .cpio.gz")
    ap.add_argument("--busybox", help="static busybox binary -> /bin/busybox")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--init-file", help="init script file")
    g.add_argument("--init", help="init script text")
    ap.add_argument("--init-path", default="/init", help="where init goes (default /init)")
    ap.add_argument("--add", action="append", default=[], metavar="SRC:DEST",
                    help="add a file (mode kept); repeatable")
    ap.add_argument("--add-tree", action="append", default=[], metavar="DIR:DEST",
                    help="add a directory tree; repeatable")
    ap.add_argument("-l", "--level", type=int, default=1, help="gzip level (default 1)")
    a = ap.parse_args(argv)
    try:
        init = open(a.init_file, "rb").read() if a.init_file else a.init
        build(a.output, init, a.busybox, a.add, a.add_tree, a.init_path, a.level)
    except (OSError, ValueError) as e:
        sys.exit(f"mk-initramfs: error: {e}")
    print(f"mk-initramfs: wrote {a.output} ({os.path.getsize(a.output)} bytes)")


if __name__ == "__main__":
    main()
