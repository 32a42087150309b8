#!/usr/bin/env python3
"""The one QEMU helper of the guest tier: boot a kernel + initramfs, read
its serial console with timestamps, and talk QMP to the running machine.

Every serial-console line is stamped with the host monotonic clock (seconds
since QEMU was spawned) at the moment its FIRST byte arrived, so a line's
stamp is when the guest started printing it.

Library:
    from qemu_kexec import Qemu, Qmp, run, handoff_time, interval
    with Qemu(kernel, initrd, append="console=ttyAMA0 ...", qmp=True) as q:
        q.wait_for(r"READY", timeout=120)
        with q.qmp_client() as m:          # QMP over a private unix socket
            m.command("query-status")
        q.wait_for(r"KERNEL2-INIT-OK", timeout=120)
    q.lines  # [Line(t, text), ...]
    handoff_time(q.lines)

    # a second console: a QEMU device on a chardev this module reads
    with Qemu(..., consoles=(("vty2", "spapr-vty,reg=0x71000010"),)) as q:
        q.wait_for(r"KERNEL2-INIT-OK", timeout=120, console="vty2")
    q.console("vty2").lines

CLI:
    tests/guest/qemu_kexec.py --kernel Image --initrd x.cpio.gz \\
        [--append ...] [--until REGEX] [--timeout 300] [--cpu cortex-a72]

Everything that loads or executes a kernel must run inside the guest: this
module only ever starts QEMU.
"""
import argparse
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

DEFAULT_APPEND = "console=ttyAMA0 nokaslr"

# A line that can only come from a freshly booting kernel. With `earlycon`
# this is printed right at kernel entry; without it the first line only
# appears when the PL011 console registers (a few hundred ms later in TCG).
KERNEL_BOOT_RE = re.compile(r"Booting Linux on physical CPU|^\[\s*0\.000000\]")


@dataclass
class Line:
    t: float  # host seconds since QEMU spawn, at the line's first byte
    text: str

    def __str__(self):
        return f"[{self.t:9.3f}] {self.text}"


class QemuError(RuntimeError):
    pass


class Console:
    """One console's lines, read from a file descriptor by a thread and
    stamped with seconds since `t0` (see the module docstring)."""

    def __init__(self, name, echo=False, log_path=None):
        self.name = name
        self.echo = echo
        self.log = open(log_path, "w") if log_path else None
        self.lines = []
        self.t0 = None
        self._cv = threading.Condition()
        self._eof = False
        self._stop = threading.Event()
        self._reader = None

    def start(self, fd, t0, writer_gone=None):
        """Read fd from now on. writer_gone: fd never sees EOF (a FIFO held
        open read-write) and this console owns it; reading ends once
        writer_gone() is true (QEMU exited) and nothing is left to read."""
        self.t0 = t0
        self._reader = threading.Thread(target=self._read, args=(fd, writer_gone), daemon=True)
        self._reader.start()

    def _read(self, fd, writer_gone):
        buf, t_first = b"", None  # partial line and when its first byte came
        while True:
            if writer_gone and not select.select([fd], [], [], 0.1)[0]:
                if writer_gone() or self._stop.is_set():  # drained, and nothing more can come
                    break
                continue
            chunk = os.read(fd, 65536)
            now = time.monotonic() - self.t0
            if not chunk:
                break
            start = 0
            while start < len(chunk):
                if t_first is None:
                    t_first = now
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    buf += chunk[start:]
                    break
                self._emit(t_first, buf + chunk[start:nl])
                buf, t_first, start = b"", None, nl + 1
        if buf:
            self._emit(t_first, buf)
        if writer_gone:
            os.close(fd)
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def _emit(self, t, raw):
        text = raw.decode("utf-8", "replace").rstrip("\r")
        # -nographic output carries terminal escapes (e.g. line-wrap toggles).
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "")
        line = Line(t, text)
        if self.echo:
            print(line if self.name is None else f"{self.name}: {line}", flush=True)
        if self.log:
            self.log.write(f"{line}\n")
            self.log.flush()
        with self._cv:
            self.lines.append(line)
            self._cv.notify_all()

    def close(self):
        """After QEMU exited: let the reader drain, close the log."""
        self._stop.set()
        if self._reader:
            self._reader.join(timeout=5)
        if self.log:
            self.log.close()
            self.log = None

    def wait_index(self, regex, timeout, start_index=0, exited=lambda: None):
        """Index of the first line at or after start_index matching regex.
        Raises QemuError on timeout, or once the console ended (exited()
        gives QEMU's exit status for the message)."""
        pat = re.compile(regex)
        deadline = time.monotonic() + timeout
        i = start_index
        where = "" if self.name is None else f" on {self.name}"
        with self._cv:
            while True:
                while i < len(self.lines):
                    if pat.search(self.lines[i].text):
                        return i
                    i += 1
                if self._eof:
                    raise QemuError(f"QEMU exited (rc={exited()}) before /{regex}/ appeared{where}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QemuError(f"timeout after {timeout}s waiting for /{regex}/{where}")
                self._cv.wait(left)


class Qemu:
    """One QEMU process whose serial console (stdio) is read line by line.

    memory and smp are QEMU's own -m / -smp values ("1G,slots=4,maxmem=4G",
    "1,maxcpus=2" or plain numbers). qmp=True adds a QMP server on a private
    unix socket (see qmp_client()). consoles: ((name, device), ...) more
    consoles, each a QEMU device (e.g. "spapr-vty,reg=0x71000010") on a
    chardev of that id, a pipe this module reads like stdio (console(name);
    its log beside log_path, console-<name>.log). reboot=True lets a guest
    reboot restart the machine (QEMU loads -kernel/-initrd again) instead of
    ending QEMU."""

    def __init__(self, kernel, initrd=None, append=DEFAULT_APPEND, *,
                 machine="virt", virtualization=False, cpu="cortex-a72",
                 memory=2048, smp=1, accel="tcg", extra_args=(),
                 qemu="qemu-system-aarch64", echo=False, log_path=None, qmp=False, consoles=(), reboot=False):
        for p in (kernel, initrd):
            if p and not os.path.isfile(p):
                raise FileNotFoundError(f"qemu_kexec: {p} not found (run scripts/fetch-fixtures.sh?)")
        m = machine + (",virtualization=on" if virtualization else "")
        self.argv = [qemu, "-M", m, "-cpu", cpu, "-m", str(memory),
                     "-smp", str(smp), "-accel", accel, "-nographic",
                     *([] if reboot else ["-no-reboot"]), "-kernel", kernel]
        if initrd:
            self.argv += ["-initrd", initrd]
        self.argv += ["-append", append, *extra_args]
        self._tmp = tempfile.mkdtemp(prefix="qemu-kexec-") if qmp or consoles else None
        self.qmp_path = None
        if qmp:
            self.qmp_path = os.path.join(self._tmp, "qmp.sock")
            self.argv += ["-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        self.main = Console(None, echo, log_path)
        self.consoles = {}
        self._pipes = {}
        for name, device in consoles:
            # -chardev pipe,path=P: QEMU writes P.out, reads P.in, both opened
            # read-write (chardev/char-pipe.c), so what the guest prints
            # before the reader opens P.out waits in the FIFO.
            base = os.path.join(self._tmp, name)
            for end in (".in", ".out"):
                os.mkfifo(base + end)
            self._pipes[name] = base + ".out"
            log = os.path.join(os.path.dirname(log_path), f"console-{name}.log") if log_path else None
            self.consoles[name] = Console(name, echo, log)
            self.argv += ["-chardev", f"pipe,id={name},path={base}", "-device", f"{device},chardev={name}"]
        self.proc = None
        self.t0 = None

    @property
    def lines(self):
        """The main (stdio) console's lines."""
        return self.main.lines

    def console(self, name=None):
        """A console by name (None: the main one)."""
        return self.main if name is None else self.consoles[name]

    # -- process control ------------------------------------------------------
    def start(self):
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError as e:
            raise QemuError(f"cannot start {self.argv[0]}: {e}") from e
        self.main.start(self.proc.stdout.fileno(), self.t0)
        for name, c in self.consoles.items():
            # O_RDWR: the open does not wait for QEMU, and EOF never comes
            # from the FIFO itself; the reader ends when kill() closes it.
            c.start(os.open(self._pipes[name], os.O_RDWR), self.t0, lambda: self.proc.poll() is not None)
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()
        self.main.close()
        for c in self.consoles.values():
            c.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def qmp_client(self, timeout=30):
        """A connected Qmp client (the machine must have been made with qmp=True)."""
        if not self.qmp_path:
            raise QemuError("this QEMU has no QMP socket (Qemu(..., qmp=True))")
        return Qmp(self.qmp_path, timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()

    # -- waiting ----------------------------------------------------------------
    def wait_for(self, regex, timeout, start_index=0, console=None):
        """Block until a line at index >= start_index of a console (None:
        the main one) matches `regex`.

        Returns the Line. Raises QemuError on timeout or if QEMU exits first.
        """
        return self.console(console).lines[self.wait_index(regex, timeout, start_index, console)]

    def wait_index(self, regex, timeout, start_index=0, console=None):
        """As wait_for, but returns the matching line's index in the console's lines."""
        return self.console(console).wait_index(regex, timeout, start_index, lambda: self.proc.poll())

    def wait_exit(self, timeout):
        """Wait for QEMU to exit by itself (guest poweroff); returns its rc."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise QemuError(f"QEMU still running after {timeout}s") from None

    def transcript(self):
        return "\n".join(str(l) for l in self.lines)


class QmpError(RuntimeError):
    pass


class Qmp:
    """Minimal QMP client (stdlib only): greeting, qmp_capabilities, then one
    command at a time; events arriving in between are kept in .events."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"cannot connect to QMP socket {path}: {e}") from None
                time.sleep(0.2)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        greeting = self._recv()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting {greeting}")
        self.command("qmp_capabilities")

    def _recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, name, **args):
        """Run one QMP command; returns its "return" value, raises QmpError on "error"."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._recv()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise QmpError(f"{name}: {r['error'].get('class')}: {r['error'].get('desc')}")
            if "return" in r:
                return r["return"]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(kernel, initrd, append=DEFAULT_APPEND, until=None, timeout=300, **kw):
    """Boot, wait for `until` (or for QEMU to exit), kill QEMU, return lines.

    Raises QemuError (with the transcript tail attached) on timeout.
    """
    q = Qemu(kernel, initrd, append, **kw)
    with q:
        try:
            if until:
                q.wait_for(until, timeout)
            else:
                q.wait_exit(timeout)
        except QemuError as e:
            tail = "\n".join(str(l) for l in q.lines[-40:])
            raise QemuError(f"{e}\n--- last console lines ---\n{tail}") from None
    return q.lines


# -- analysis -------------------------------------------------------------------
def find(lines, regex, start=0):
    """Index of the first line at or after `start` matching regex, or None."""
    pat = re.compile(regex)
    for i in range(start, len(lines)):
        if pat.search(lines[i].text):
            return i
    return None


def interval(lines, start_re, end_re):
    """Host seconds from the first `start_re` line to the next `end_re` line."""
    a = find(lines, start_re)
    if a is None:
        raise ValueError(f"no line matches /{start_re}/")
    b = find(lines, end_re, a + 1)
    if b is None:
        raise ValueError(f"no line matches /{end_re}/ after /{start_re}/")
    return lines[b].t - lines[a].t


def handoff_time(lines, marker=r"KEXEC-EXEC-START", boot_re=KERNEL_BOOT_RE):
    """Seconds from the marker line (printed by init right before `kexec -e`)
    to the first line after it that looks like a kernel boot line."""
    return interval(lines, marker, boot_re.pattern if hasattr(boot_re, "pattern") else boot_re)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Boot a kernel in QEMU and print a timestamped console transcript.")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd")
    ap.add_argument("--append", default=DEFAULT_APPEND)
    ap.add_argument("--machine", default="virt")
    ap.add_argument("--virtualization", action="store_true", help="-M virt,virtualization=on (EL2)")
    ap.add_argument("--cpu", default="cortex-a72")
    ap.add_argument("-m", "--memory", type=int, default=2048)
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("--until", help="stop (kill QEMU) when a line matches this regex")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--handoff", action="store_true", help="also print the kexec hand-off time")
    ap.add_argument("--log", help="also write the transcript here")
    a = ap.parse_args(argv)
    q = Qemu(a.kernel, a.initrd, a.append, machine=a.machine, virtualization=a.virtualization,
             cpu=a.cpu, memory=a.memory, smp=a.smp, echo=True, log_path=a.log)
    rc = 0
    with q:
        try:
            if a.until:
                q.wait_for(a.until, a.timeout)
            else:
                q.wait_exit(a.timeout)
        except QemuError as e:
            print(f"qemu_kexec: {e}", file=sys.stderr)
            rc = 1
    if a.handoff:
        try:
            print(f"hand-off: {handoff_time(q.lines):.3f} s")
        except ValueError as e:
            print(f"qemu_kexec: hand-off: {e}", file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
