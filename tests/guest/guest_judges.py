"""Judges: a cell passes only on what the kernels and the purgatory printed.

A judge reads the console transcript of one QEMU run in steps; each step
either records facts in `info` (and a few words for the PASS line in
`bits`) or raises Fail with the reason. The facts it checks come from the
contracts (guest_contracts): the purgatory's line templates, the loader's
plan, the -S exit-status rule, and from what the kernels themselves report
(guest_arch: boot line, exception level, version...).
"""
import dataclasses
import re

import guest_contracts as gc


class Fail(Exception):
    """A judge step's verdict: the cell fails for this reason."""


@dataclasses.dataclass
class Verdict:
    ok: bool
    reason: str
    info: dict
    bits: list  # words for the PASS line


class Transcript:
    """Console lines (qemu_kexec.Line) with index-based search."""

    def __init__(self, lines):
        self.lines = lines
        self.T = [l.text for l in lines]

    def find(self, regex, start=0, end=None):
        """Index of the first line in [start, end) matching regex, or None."""
        pat = re.compile(regex)
        for i in range(max(0, start), len(self.T) if end is None else min(end, len(self.T))):
            if pat.search(self.T[i]):
                return i
        return None

    def need(self, regex, why, start=0, end=None):
        i = self.find(regex, start, end)
        if i is None:
            raise Fail(why)
        return i

    def t(self, i):
        return self.lines[i].t

    def text(self, i):
        return self.T[i].strip()


def run_judge(steps):
    """Run `steps(info, bits)`; turn a Fail into a failed Verdict."""
    info, bits = {}, []
    try:
        steps(info, bits)
    except Fail as e:
        return Verdict(False, str(e), info, bits)
    except gc.ContractError as e:
        return Verdict(False, f"contract: {e}", info, bits)
    return Verdict(True, "", info, bits)

# ---------------------------------------------------------------------------
# kernel 1: load and status
# ---------------------------------------------------------------------------


def load_step(tr, info, bits, end=None, what="load"):
    """KEXEC-LOAD-DONE: rc and the in-guest duration; KEXEC-LOAD-FAILED fails."""
    i_ld = tr.find(r"^KEXEC-LOAD-DONE ", 0, end)
    if i_ld is not None:
        m = re.search(r"rc=(\d+) ns=(-?\d+)", tr.T[i_ld])
        if m:
            info["load_rc"], info["load_guest_s"] = int(m.group(1)), int(m.group(2)) / 1e9
        i_ls = tr.find(r"^KEXEC-LOAD-START", 0, i_ld)
        if i_ls is not None:
            info["load_host_s"] = tr.t(i_ld) - tr.t(i_ls)
    if tr.find(r"^KEXEC-LOAD-FAILED", 0, end) is not None:
        raise Fail(f"{what} failed ({tr.text(i_ld) if i_ld is not None else 'no LOAD-DONE line'})")
    if i_ld is None:
        raise Fail(f"kernel 1 never finished the {what}")
    if "load_guest_s" in info:
        bits.append(f"{what} {info['load_guest_s']:.2f} s")


def status_step(tr, info, bits, loader, end=None):
    """The -S answers before (not loaded) and after (loaded) the load."""
    if not loader.has_status:
        return
    for when, loaded in (("before", False), ("after", True), ("other", False)):
        i = tr.find(rf"^KEXEC-STATUS when={when} ", 0, end)
        if i is None:
            raise Fail(f"no -S answer {when} the load" if when != "other" else
                       "no -S answer about the other image (crash for -l, normal for -p) after the load")
        m = re.match(r"KEXEC-STATUS when=\w+ rc=(\d+) out=\[(.*)\]$", tr.T[i].strip())
        if not m:
            raise Fail(f"unreadable status line: {tr.text(i)}")
        rc, out = int(m.group(1)), m.group(2)
        want_rc, silent = gc.status_expected(loader, loaded)
        state = "loaded" if loaded else "not loaded"
        asked = f"-S {when} the load" if when != "other" else "-S about the other image after the load"
        if rc != want_rc:
            raise Fail(f"{asked} (kernel {state}) exited {rc}, the {gc.status_contract(loader)} "
                       f"contract says {want_rc} (it printed {out!r})")
        if silent and out:
            raise Fail(f"{asked} printed {out!r}; the {gc.status_contract(loader)} contract says silent")
        info[f"status_{when}"] = rc
    bits.append(f"-S {info['status_before']}->{info['status_after']}")

# ---------------------------------------------------------------------------
# the purgatory
# ---------------------------------------------------------------------------


def purgatory_step(tr, info, bits, lo, hi, plan, ours=True, must=(), must_not=(), checks=True):
    """Our purgatory's lines between lo and hi (the jump and kernel 2's first
    line): each segment line in order, then `verified`; their numbers must
    agree with each other and with the plan; `must` ((template key,
    ((placeholder, value), ...)), ...) lines must be there, `must_not` keys not.
    ours=False: a path that does not run our purgatory (kexec_file_load,
    kexec-tools) must print none of it. checks=False (`rkexec -i`): the
    purgatory must say it skipped verification, list every non-excluded
    segment as not hashed and hash 0 bytes; checks=True: it must not."""
    P = gc.purgatory_lines()
    said = P.said(tr.T[lo:hi])
    i_ref = tr.find(re.escape(P.templates["refused"]), lo, hi)
    if i_ref is not None:
        raise Fail(f"purgatory refused: {tr.text(i_ref)}")
    if not ours:
        if said:
            raise Fail(f"our purgatory ran on a path that must not use it: {said[0]}")
        return
    i_v = tr.find(P.pattern("verified"), lo, hi)
    if i_v is None:
        raise Fail("no purgatory 'verified' line before the next kernel's first line"
                   + (f" (purgatory said: {said[-1]})" if said else " (no purgatory output)"))
    v = P.match("verified", tr.T[i_v])
    info["purgatory"] = {"segments": v["segments"], "bytes": v["bytes"], "engine": v["engine"], "us": v["us"]}
    info["purgatory_line"] = tr.text(i_v)
    i_skip = tr.find(re.escape(P.templates["skipped"]), lo, i_v)
    if checks != (i_skip is None):
        raise Fail("the purgatory " + ("skipped verification though the load did not ask for -i" if checks
                                       else "did not say it skipped verification for a load with -i"))
    segs = []
    hashed_key = "segment_ok" if checks else "not_hashed"
    for i in range(lo, i_v):
        for key in ("segment_ok", "excluded_ok", "not_hashed"):
            m = P.match(key, tr.T[i])
            if m:
                if key not in (hashed_key, "excluded_ok"):
                    raise Fail(f"the purgatory printed {tr.text(i)} for a load {'without' if checks else 'with'} -i")
                segs.append(dict(m, excluded=key == "excluded_ok"))
    info["purgatory_segments"] = segs
    if [s["index"] for s in segs] != list(range(v["segments"])):
        raise Fail(f"purgatory verified {v['segments']} segments but listed {[s['index'] for s in segs]}")
    hashed = sum(s["len"] for s in segs if not s["excluded"]) if checks else 0
    if hashed != v["bytes"]:
        raise Fail(f"purgatory's segment lines add up to {hashed} bytes hashed, its summary says {v['bytes']}")
    if plan.segments is not None:
        if len(plan.segments) != v["segments"]:
            raise Fail(f"the plan has {len(plan.segments)} segments for the purgatory, it verified {v['segments']}")
        for s, p in zip(segs, plan.segments):
            want = (p["kind"], int(p["start"]), int(p["digest_len"]), bool(p["excluded"]))
            got = (s["kind"], s["mem"], s["len"], s["excluded"])
            if got != want:
                raise Fail(f"purgatory segment {s['index']} is {got}, the plan says {want} "
                           "(kind, start, digest_len, excluded)")
    if checks and plan.hashed is not None and v["bytes"] != plan.hashed:
        raise Fail(f"purgatory hashed {v['bytes']} bytes, the plan's non-excluded digest_len sum is {plan.hashed}")
    if checks and v["bytes"] < plan.min_hashed:
        raise Fail(f"purgatory hashed only {v['bytes']} bytes, less than the kernel payload + initrd "
                   f"({plan.min_hashed}): {tr.text(i_v)}")
    for key, values in must:
        hits = [m for m in (P.match(key, t) for t in tr.T[lo:hi]) if m is not None]
        if not any(all(m.get(k) == val for k, val in values) for m in hits):
            raise Fail(f"no purgatory '{key}' line with {dict(values)} (its '{key}' lines: {hits or 'none'})")
    for key in must_not:
        i = tr.find(P.pattern(key), lo, hi)
        if i is not None:
            raise Fail(f"the purgatory printed {tr.text(i)}")
    bits.append(f"purgatory {v['segments']} seg {v['bytes'] / 1e6:.1f} MB {v['engine']} {v['us']} us")
    return i_v

# ---------------------------------------------------------------------------
# the kernels
# ---------------------------------------------------------------------------


def boot_index(tr, arch, after, why):
    """Index of the next kernel's first line after `after`."""
    return tr.need(arch.boot_re, why, after + 1)


def init_index(tr, word, i_boot, who):
    """Index of the `word ...` line the new kernel's init prints, or Fail
    with what stopped it (its panic)."""
    i_ok = tr.find(rf"^{word} ", i_boot + 1)
    if i_ok is None:
        i_p = tr.find(r"Kernel panic", i_boot)
        raise Fail(f"{who} panicked: {tr.text(i_p)}" if i_p is not None
                   else f"{who} booted but its init never printed {word}")
    return i_ok


def kernels_step(tr, info, bits, arch, mode, k1, k2, who="kernel 2"):
    """Both kernels report the mode's facts (EL, VHE, KVM...) and the same
    version. k1, k2: (start, end) index ranges of each kernel's lines."""
    f1 = arch.kernel_facts(tr.T[k1[0]:k1[1]])
    f2 = arch.kernel_facts(tr.T[k2[0]:k2[1]])
    info["k1_facts"], info["k2_facts"] = f1, f2
    for name, want in mode.expected().items():
        if f1.get(name) != want:
            raise Fail(f"kernel 1 reports {name}={f1.get(name)!r}, mode {mode.name} expects {want!r}")
        if f2.get(name) != want:
            raise Fail(f"{who} reports {name}={f2.get(name)!r}, mode {mode.name} expects {want!r}")
    if f1["version"] is None or f1["version"] != f2["version"]:
        raise Fail(f"{who} is {f2['version']}, kernel 1 is {f1['version']} (expected the same build)")
    shown = [f"{k}={v}" for k, v in f1.items() if k != "version" and v is not None]
    bits.append(f"{f1['version']}" + (f" {' '.join(shown)}" if shown else "") + f" -> {who} same")


def cmdline_step(tr, info, i_ok, marker, plan, who="kernel 2", lacks=()):
    """The command line the new kernel's init read from /proc/cmdline: the
    marker, the plan's cmdline (after a prefix the kernel may add), none of
    the `lacks` words."""
    text = tr.T[i_ok]
    words = text.split("cmdline:", 1)[1].split() if "cmdline:" in text else []
    info["k2_cmdline"] = " ".join(words)
    if f"MARKER={marker}" not in words:
        raise Fail(f"{who}'s cmdline lacks MARKER={marker}: {' '.join(words)!r}")
    if plan.cmdline is not None:
        want = plan.cmdline.split()
        got = words[1:] if plan.cmdline_prefix and words[:1] and re.fullmatch(plan.cmdline_prefix, words[0]) \
            else words
        if got != want:
            raise Fail(f"{who}'s /proc/cmdline is {' '.join(words)!r}, the plan's cmdline is {plan.cmdline!r}")
    bad = [w for w in words if w.startswith(tuple(lacks))] if lacks else []
    if bad:
        raise Fail(f"{who}'s /proc/cmdline still has {' '.join(bad)}")


def expect_step(tr, bits, expect):
    """A cell's own ((regex, why), ...) facts: each must be in the transcript."""
    for rx, why in expect:
        tr.need(rx, why)
    if expect:
        bits.append(f"{len(expect)} cell fact(s) seen")

# ---------------------------------------------------------------------------
# crash dumps
# ---------------------------------------------------------------------------


def vmcore_step(tr, info, bits, i_ok, k1_release):
    """vmcore-check's view of /proc/vmcore in the capture kernel."""
    if tr.find(r"^KDUMP-NO-VMCORE", i_ok) is not None:
        raise Fail("the capture kernel has no /proc/vmcore")
    i_done = tr.need(r"^KDUMP-DONE$", "the capture init never printed KDUMP-DONE", i_ok)
    vm = [t.strip() for t in tr.T[i_ok:i_done] if t.startswith("VMCORE ")]
    info["vmcore"] = vm
    err = next((t for t in vm if t.startswith("VMCORE error")), None)
    i_rc = tr.find(r"^KDUMP-VMCORE-CHECK rc=", i_ok, i_done)
    rc = tr.T[i_rc].split("rc=", 1)[1].strip() if i_rc is not None else None
    if err or rc != "0":
        raise Fail(f"vmcore-check failed (rc={rc}): {err or (vm[-1] if vm else 'no output')}")
    facts, covers = {}, {}
    for t in vm:
        m = re.match(r"VMCORE load-covers (0x[0-9a-f]+) (yes|no)$", t)
        if m:
            covers[int(m.group(1), 16)] = m.group(2) == "yes"
            continue
        for k, v in re.findall(r"(\w+)=(\S+)", t):
            facts.setdefault(k, v)
    try:
        pt_note, pt_load = int(facts["pt_note"]), int(facts["pt_load"])
        prstatus, vmcoreinfo = int(facts["prstatus"]), int(facts["vmcoreinfo"])
    except (KeyError, ValueError):
        raise Fail(f"vmcore-check output incomplete: {vm}") from None
    info.update(vmcore_facts=facts, covers=covers, prstatus=prstatus, pt_load=pt_load)
    if pt_note != 1:
        raise Fail(f"/proc/vmcore has {pt_note} PT_NOTE headers, expected 1 (merged)")
    if vmcoreinfo != 1:
        raise Fail(f"the merged PT_NOTE holds {vmcoreinfo} VMCOREINFO notes, expected 1")
    if prstatus < 1:
        raise Fail("the merged PT_NOTE holds no NT_PRSTATUS note")
    if facts.get("OSRELEASE") != k1_release:
        raise Fail(f"vmcoreinfo OSRELEASE={facts.get('OSRELEASE')!r}, kernel 1 is {k1_release!r}")
    load0 = next((m for m in (re.match(r"VMCORE load0 paddr=(0x[0-9a-f]+) read=(\d+) ok nonzero=(\d+)$", t)
                              for t in vm) if m), None)
    if load0 is None:
        raise Fail("no 'VMCORE load0 ... ok' line")
    info["load0"] = dict(paddr=int(load0.group(1), 16), read=int(load0.group(2)), nonzero=int(load0.group(3)))
    bits.append(f"vmcore pt_note={pt_note} pt_load={pt_load} prstatus={prstatus} vmcoreinfo={vmcoreinfo} "
                f"OSRELEASE={facts['OSRELEASE']}")
    return facts, covers
