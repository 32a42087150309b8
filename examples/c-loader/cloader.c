/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * c-loader: a second kexec loader, in C99 with nothing but libc, that boots
 * an arm64 Image through the rkexec purgatory. It uses only
 * include/kexec_purgatory.h (the purgatory's public ABI), the flat
 * purgatory image and kexec_load(2):
 *
 *   1. read the Image, the initrd, the running DTB and /proc/iomem;
 *   2. lay out kernel, initrd, DTB and purgatory in System RAM
 *      (Documentation/arch/arm64/booting.rst);
 *   3. rebuild the DTB with /chosen bootargs and linux,initrd-start/-end;
 *   4. hash every segment over its memsz (SHA-256, FIPS 180-4), fill the
 *      purgatory's parameter block (docs/abi.md) in a copy of the image;
 *   5. kexec_load(2) the four segments with the purgatory as entry, then
 *      reboot(LINUX_REBOOT_CMD_KEXEC) unless --load-only or --plan-only.
 *
 * Every input is checked before the system call; an error is one line
 * naming the file or field and the rule, and the exit status is 1 (2 for
 * a usage error). Only a build for aarch64 Linux contains the kexec_load
 * and reboot calls at all: any other build (the host test build) plans,
 * prints and dumps, and refuses anything but --plan-only.
 */
#define _DEFAULT_SOURCE /* syscall(), sync(), reboot() */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "fdt.h"
#include "kexec_purgatory.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* kexec_purgatory.h: "All fields are little-endian"; we copy the structs. */
#error "c-loader writes the purgatory ABI structs as they are in memory: little-endian hosts only"
#endif

/* The layout itself is checked by the header (rkx_layout_ok_*, C99 too). */

#if defined(__aarch64__) && defined(__linux__)
#define CLOADER_CAN_LOAD 1
#include <sys/reboot.h>
#include <sys/syscall.h>
#else
#define CLOADER_CAN_LOAD 0
#endif

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define PAGE (4 * KIB)

/* booting.rst §4: the Image sits text_offset bytes above a 2 MiB aligned base. */
#define KERNEL_ALIGN (2 * MIB)
/* booting.rst §2: "The device tree blob (dtb) ... must not exceed 2 megabytes". */
#define DTB_MAX (2 * MIB)
/* booting.rst §3: the initrd lies in a 1 GiB aligned window of up to 32 GiB
 * that also covers the kernel Image. The DTB and purgatory go there too. */
#define WINDOW (32 * GIB)
/* booting.rst §4 "Image header": magic "ARM\x64" at offset 56. */
#define ARM64_IMAGE_MAGIC 0x644d5241u
/* include/uapi/linux/kexec.h: KEXEC_ARCH_AARCH64 = EM_AARCH64 << 16,
 * KEXEC_SEGMENT_MAX = 16. include/uapi/linux/reboot.h: CMD_KEXEC. */
#define KEXEC_ARCH_AARCH64 (183ul << 16)
#define KEXEC_SEGMENT_MAX 16
#define LINUX_REBOOT_CMD_KEXEC 0x45584543
/* Largest input file read (the kernel Image is the big one). */
#define MAX_FILE (1 * GIB)

/* ---- errors ------------------------------------------------------------ */

static void die(const char *fmt, ...)
{
	va_list ap;
	fflush(stdout);
	fputs("c-loader: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("c-loader: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (c-loader --help)\n", stderr);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ---- little helpers ---------------------------------------------------- */

static uint64_t align_up(uint64_t v, uint64_t a, const char *what)
{
	if (v > UINT64_MAX - (a - 1))
		die("%s: %#llx rounded up to %#llx wraps the address space", what, (unsigned long long)v,
		    (unsigned long long)a);
	return (v + a - 1) & ~(a - 1);
}

static uint64_t align_down(uint64_t v, uint64_t a)
{
	return v & ~(a - 1);
}

static uint64_t add(uint64_t a, uint64_t b, const char *what)
{
	if (b > UINT64_MAX - a)
		die("%s: %#llx + %#llx wraps the address space", what, (unsigned long long)a, (unsigned long long)b);
	return a + b;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* The whole file; /proc and /sys files report no size, so read to EOF. */
static uint8_t *read_file(const char *path, size_t *len, const char *what)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s %s: cannot open: %s", what, path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			if (cap >= MAX_FILE)
				die("%s %s: larger than %llu MiB", what, path, (unsigned long long)(MAX_FILE / MIB));
			cap *= 2;
			uint8_t *p = realloc(buf, cap);
			if (!p)
				die("%s %s: out of memory", what, path);
			buf = p;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f))
				die("%s %s: read error: %s", what, path, strerror(errno));
			break;
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		die("--plan-dir: cannot write %s: %s", path, strerror(errno));
}

/* ---- SHA-256 (FIPS 180-4 §4.2.2, §5.1.1, §6.2) -------------------------- */

struct sha256 {
	uint32_t h[8];
	uint8_t block[64];
	size_t fill;
	uint64_t bytes;
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n)
{
	return x >> n | x << (32 - n);
}

static void sha256_compress(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64];
	for (int t = 0; t < 16; t++)
		w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 | (uint32_t)p[4 * t + 2] << 8 |
		       p[4 * t + 3];
	for (int t = 16; t < 64; t++) {
		uint32_t s0 = ror(w[t - 15], 7) ^ ror(w[t - 15], 18) ^ (w[t - 15] >> 3);
		uint32_t s1 = ror(w[t - 2], 17) ^ ror(w[t - 2], 19) ^ (w[t - 2] >> 10);
		w[t] = w[t - 16] + s0 + w[t - 7] + s1;
	}
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
	for (int t = 0; t < 64; t++) {
		uint32_t t1 = hh + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[t] + w[t];
		uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		hh = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t h0[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	memcpy(s->h, h0, sizeof(h0));
	s->fill = 0;
	s->bytes = 0;
}

static void sha256_update(struct sha256 *s, const uint8_t *p, size_t n)
{
	s->bytes += n;
	if (s->fill) {
		size_t take = 64 - s->fill < n ? 64 - s->fill : n;
		memcpy(s->block + s->fill, p, take);
		s->fill += take;
		p += take;
		n -= take;
		if (s->fill < 64)
			return;
		sha256_compress(s->h, s->block);
		s->fill = 0;
	}
	for (; n >= 64; p += 64, n -= 64)
		sha256_compress(s->h, p);
	memcpy(s->block, p, n);
	s->fill = n;
}

static void sha256_final(struct sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->bytes * 8;
	uint8_t pad[72] = { 0x80 };
	size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
	for (int i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(s, pad, padlen + 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

/* docs/abi.md: a segment's digest covers all `len` (memsz) bytes; the
 * bytes past the file data are the zeros kexec_load fills in. */
static void digest_memsz(const uint8_t *buf, size_t bufsz, uint64_t memsz, uint8_t out[32])
{
	static const uint8_t zeros[4096];
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, buf, bufsz);
	for (uint64_t left = memsz - bufsz; left;) {
		size_t n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
		sha256_update(&s, zeros, n);
		left -= n;
	}
	sha256_final(&s, out);
}

static void hex(char out[65], const uint8_t d[32])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

/* ---- inputs ------------------------------------------------------------ */

struct arm64_image {
	uint64_t text_offset, image_size, flags;
};

/* booting.rst §4 "Call the kernel image": the 64-byte Image header. */
static struct arm64_image parse_image(const char *path, const uint8_t *b, size_t len)
{
	struct arm64_image im;
	if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		die("--image %s: gzip-compressed; kexec_load needs the uncompressed Image (gunzip it)", path);
	if (len >= 8 && memcmp(b, "MZ", 2) == 0 && memcmp(b + 4, "zimg", 4) == 0)
		die("--image %s: an EFI zboot image; kexec_load needs the Image inside it", path);
	if (len < 64 || le32(b + 56) != ARM64_IMAGE_MAGIC)
		die("--image %s: no arm64 Image header (magic \"ARM\\x64\" at offset 56, booting.rst §4)", path);
	im.text_offset = le64(b + 8);
	im.image_size = le64(b + 16);
	im.flags = le64(b + 24);
	if (im.image_size == 0)
		die("--image %s: header image_size is 0 (a kernel before 3.17): its memory footprint is unknown", path);
	if (im.flags & 1)
		die("--image %s: header flags bit 0 says big-endian kernel; this loader boots little-endian ones",
		    path);
	if (im.text_offset % PAGE)
		die("--image %s: text_offset %#llx is not 4 KiB aligned (kexec_load segments are page aligned)", path,
		    (unsigned long long)im.text_offset);
	if (im.image_size < len)
		die("--image %s: header image_size %#llx is smaller than the file (%zu bytes)", path,
		    (unsigned long long)im.image_size, len);
	return im;
}

/* include/kexec_purgatory.h, docs/abi.md "Header". */
static struct rkx_image_header check_purgatory(const char *path, const uint8_t *b, size_t len)
{
	struct rkx_image_header h;
	if (len < sizeof(h))
		die("--purgatory %s: %zu bytes, smaller than the 96-byte rkx_image_header", path, len);
	memcpy(&h, b + RKX_HEADER_OFFSET, sizeof(h));
	if (memcmp(h.magic, RKX_IMAGE_MAGIC, 8) != 0)
		die("--purgatory %s: magic is not \"RKXPURG\\0\" (is this the flat image, not the ELF?)", path);
	if (h.abi_version != RKX_ABI_VERSION)
		die("--purgatory %s: abi_version %u, this loader knows %u", path, h.abi_version, RKX_ABI_VERSION);
	if (h.header_size < sizeof(h))
		die("--purgatory %s: header_size %u is smaller than 96", path, h.header_size);
	if (h.arch != RKX_ARCH_AARCH64)
		die("--purgatory %s: arch %u, an aarch64 image (arch %u) is needed", path, h.arch, RKX_ARCH_AARCH64);
	if (!(h.flags & RKX_IMAGE_FLAG_POSITION_INDEPENDENT))
		die("--purgatory %s: flags lack POSITION_INDEPENDENT; this loader places it anywhere", path);
	if (h.image_size != len)
		die("--purgatory %s: header image_size %llu but the file has %zu bytes", path,
		    (unsigned long long)h.image_size, len);
	if (h.mem_size < h.image_size)
		die("--purgatory %s: mem_size %llu is smaller than image_size", path, (unsigned long long)h.mem_size);
	if (h.entry_offset >= h.image_size)
		die("--purgatory %s: entry_offset %#llx lies outside the image", path,
		    (unsigned long long)h.entry_offset);
	if (h.params_size < sizeof(struct rkx_params) || h.params_offset > h.image_size ||
	    h.params_size > h.image_size - h.params_offset)
		die("--purgatory %s: params_offset %#llx / params_size %llu do not hold a %zu-byte rkx_params inside "
		    "the image",
		    path, (unsigned long long)h.params_offset, (unsigned long long)h.params_size,
		    sizeof(struct rkx_params));
	return h;
}

/* ---- free memory ------------------------------------------------------- */

struct range {
	uint64_t start, end; /* [start, end) */
};

struct freemap {
	struct range *r;
	size_t n, cap;
};

static void fm_add(struct freemap *m, uint64_t start, uint64_t end)
{
	if (end <= start)
		return;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct range *r = realloc(m->r, cap * sizeof(*r));
		if (!r)
			die("out of memory");
		m->r = r;
		m->cap = cap;
	}
	/* Keep sorted by start; callers add disjoint System RAM ranges. */
	size_t i = m->n;
	while (i > 0 && m->r[i - 1].start > start) {
		m->r[i] = m->r[i - 1];
		i--;
	}
	m->r[i] = (struct range){ start, end };
	m->n++;
}

static void fm_remove(struct freemap *m, uint64_t start, uint64_t end)
{
	struct freemap out = { NULL, 0, 0 };
	for (size_t i = 0; i < m->n; i++) {
		struct range r = m->r[i];
		if (end <= r.start || r.end <= start) {
			fm_add(&out, r.start, r.end);
			continue;
		}
		fm_add(&out, r.start, start > r.start ? start : r.start);
		fm_add(&out, end < r.end ? end : r.end, r.end);
	}
	free(m->r);
	*m = out;
}

/* Lowest `align`-aligned address a >= lo with [a, a + size) free and
 * a + size <= hi; removes it from the map. 0 when there is none. */
static uint64_t fm_take(struct freemap *m, uint64_t size, uint64_t align, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < m->n; i++) {
		uint64_t s = m->r[i].start > lo ? m->r[i].start : lo;
		if (s > UINT64_MAX - (align - 1))
			continue;
		uint64_t a = (s + align - 1) & ~(align - 1);
		uint64_t top = m->r[i].end < hi ? m->r[i].end : hi;
		if (a < top && size <= top - a) {
			fm_remove(m, a, a + size);
			return a;
		}
	}
	return 0;
}

static uint64_t fm_total(const struct freemap *m)
{
	uint64_t t = 0;
	for (size_t i = 0; i < m->n; i++)
		t += m->r[i].end - m->r[i].start;
	return t;
}

static int hexnum(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (n == 0 || n > 16)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* /proc/iomem (kernel/resource.c r_show: "%*s%0*llx-%0*llx : %s", two
 * spaces per nesting level): top-level "System RAM" ranges minus every
 * range nested inside them (the running kernel, firmware and memblock
 * reservations: arm64 lists those as children). Conservative: kexec_load
 * could reuse the running kernel's own pages, this loader never does. */
static struct freemap usable_ram(const char *path, const char *text, size_t len)
{
	struct freemap ram = { NULL, 0, 0 }, holes = { NULL, 0, 0 };
	int in_ram = 0, any_nonzero = 0;
	size_t lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - line) : len - pos;
		pos += l + 1;
		lineno++;
		if (l == 0)
			continue;
		size_t indent = 0;
		while (indent < l && line[indent] == ' ')
			indent++;
		const char *dash = memchr(line + indent, '-', l - indent);
		const char *colon = NULL;
		for (const char *p = line + indent; p + 3 <= line + l; p++)
			if (memcmp(p, " : ", 3) == 0) {
				colon = p;
				break;
			}
		uint64_t start, last;
		if (indent % 2 || !dash || !colon || dash > colon ||
		    hexnum(line + indent, (size_t)(dash - line - indent), &start) ||
		    hexnum(dash + 1, (size_t)(colon - dash - 1), &last) || last < start)
			die("%s line %zu: not \"start-end : name\" (hex, two spaces per level, kernel/resource.c)", path,
			    lineno);
		any_nonzero |= start != 0 || last != 0;
		const char *name = colon + 3;
		size_t name_len = (size_t)(line + l - name);
		uint64_t end = last == UINT64_MAX ? UINT64_MAX : last + 1;
		if (indent == 0) {
			in_ram = name_len == 10 && memcmp(name, "System RAM", 10) == 0;
			if (in_ram)
				fm_add(&ram, start, end);
		} else if (in_ram) {
			fm_add(&holes, start, end);
		}
	}
	if (!any_nonzero)
		die("%s: every address is 0: reading it needs CAP_SYS_ADMIN (run as root)", path);
	if (ram.n == 0)
		die("%s: no \"System RAM\" entry", path);
	for (size_t i = 0; i < holes.n; i++)
		fm_remove(&ram, holes.r[i].start, holes.r[i].end);
	free(holes.r);
	/* The purgatory refuses a segment at physical address 0 (docs/abi.md). */
	fm_remove(&ram, 0, PAGE);
	return ram;
}

/* ---- options ----------------------------------------------------------- */

struct options {
	const char *image, *initrd, *append, *purgatory, *dtb, *iomem, *plan_dir;
	const char *console; /* NULL: from the DTB */
	uint32_t on_failure;
	int corrupt;         /* -1: none */
	int load_only, plan_only;
};

static const char usage[] =
	"usage: c-loader --image IMAGE --purgatory FLAT [--initrd FILE] [--append CMDLINE]\n"
	"                [--dtb FILE] [--iomem FILE] [--console none|pl011@ADDR|8250@ADDR]\n"
	"                [--on-failure halt|reset] [--corrupt-after-digest SEG]\n"
	"                [--load-only | --plan-only [--plan-dir DIR]]\n"
	"\n"
	"Loads an arm64 Image, an initrd and the running DTB with kexec_load(2) through the\n"
	"rkexec purgatory (include/kexec_purgatory.h), then reboots into it (LINUX_REBOOT_CMD_KEXEC).\n"
	"  --image IMAGE         uncompressed arm64 Image (booting.rst header)\n"
	"  --purgatory FLAT      flat purgatory image (rkx_image_header at offset 0)\n"
	"  --initrd FILE         initramfs for the new kernel\n"
	"  --append CMDLINE      new /chosen/bootargs (default: keep the DTB's)\n"
	"  --dtb FILE            DTB to hand over (default /sys/firmware/fdt)\n"
	"  --iomem FILE          memory map (default /proc/iomem)\n"
	"  --console C           purgatory console (default: from /chosen/stdout-path)\n"
	"  --on-failure A        what the purgatory does when a check fails (default halt)\n"
	"  --corrupt-after-digest SEG\n"
	"                        negative control: flip a byte of parameter-block segment SEG\n"
	"                        (0 kernel, 1 initrd, then dtb) after its digest is computed\n"
	"  --load-only           kexec_load, do not reboot\n"
	"  --plan-only           print the plan; no system call (the only mode off aarch64)\n"
	"  --plan-dir DIR        with --plan-only: write each segment's bytes to DIR/segment-N.bin\n";

static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != 0)
		return NULL;
	if (*i + 1 >= argc)
		usage_error("%s needs a value", name);
	return argv[++*i];
}

static struct options parse_args(int argc, char **argv)
{
	struct options o = { NULL, NULL, NULL, NULL, "/sys/firmware/fdt", "/proc/iomem", NULL, NULL,
			     RKX_ON_FAILURE_HALT, -1, 0, 0 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			exit(0);
		} else if (strcmp(a, "--load-only") == 0) {
			o.load_only = 1;
		} else if (strcmp(a, "--plan-only") == 0) {
			o.plan_only = 1;
		} else if ((v = opt_value(argc, argv, &i, "--image"))) {
			o.image = v;
		} else if ((v = opt_value(argc, argv, &i, "--initrd"))) {
			o.initrd = v;
		} else if ((v = opt_value(argc, argv, &i, "--append"))) {
			o.append = v;
		} else if ((v = opt_value(argc, argv, &i, "--purgatory"))) {
			o.purgatory = v;
		} else if ((v = opt_value(argc, argv, &i, "--dtb"))) {
			o.dtb = v;
		} else if ((v = opt_value(argc, argv, &i, "--iomem"))) {
			o.iomem = v;
		} else if ((v = opt_value(argc, argv, &i, "--plan-dir"))) {
			o.plan_dir = v;
		} else if ((v = opt_value(argc, argv, &i, "--console"))) {
			o.console = v;
		} else if ((v = opt_value(argc, argv, &i, "--on-failure"))) {
			if (strcmp(v, "halt") == 0)
				o.on_failure = RKX_ON_FAILURE_HALT;
			else if (strcmp(v, "reset") == 0)
				o.on_failure = RKX_ON_FAILURE_RESET;
			else
				usage_error("--on-failure %s: expected halt or reset", v);
		} else if ((v = opt_value(argc, argv, &i, "--corrupt-after-digest"))) {
			uint64_t n;
			if (parse_u64(v, &n) || n >= RKX_MAX_SEGMENTS)
				usage_error("--corrupt-after-digest %s: expected a segment index below %u", v,
					    RKX_MAX_SEGMENTS);
			o.corrupt = (int)n;
		} else {
			usage_error("unknown argument %s", a);
		}
	}
	if (!o.image)
		usage_error("--image is required");
	if (!o.purgatory)
		usage_error("--purgatory is required");
	if (o.load_only && o.plan_only)
		usage_error("--load-only and --plan-only exclude each other");
	if (o.plan_dir && !o.plan_only)
		usage_error("--plan-dir needs --plan-only");
	if (!CLOADER_CAN_LOAD && !o.plan_only)
		usage_error("this build is not for aarch64 Linux: it never calls kexec_load or reboot; use --plan-only");
	return o;
}

/* --console: "none", "pl011@ADDR" or "8250@ADDR" (32-bit registers). */
static struct rkx_console parse_console(const char *s)
{
	struct rkx_console c = { RKX_CONSOLE_NONE, 0, 0 };
	uint64_t base;
	if (strcmp(s, "none") == 0)
		return c;
	if (strncmp(s, "pl011@", 6) == 0 && parse_u64(s + 6, &base) == 0 && base) {
		c.kind = RKX_CONSOLE_PL011;
	} else if (strncmp(s, "8250@", 5) == 0 && parse_u64(s + 5, &base) == 0 && base) {
		c.kind = RKX_CONSOLE_8250_MMIO32;
	} else {
		usage_error("--console %s: expected none, pl011@ADDR or 8250@ADDR (MMIO, 32-bit registers)", s);
		return c;
	}
	c.base = base;
	return c;
}

/* ---- the plan ---------------------------------------------------------- */

struct segment {
	const char *name;    /* kernel, initrd, dtb, purgatory */
	uint32_t kind;       /* RKX_KIND_*; the purgatory is not listed */
	uint8_t *buf;
	size_t bufsz;
	uint64_t mem, memsz;
	uint8_t sha256[32];
};

struct plan {
	struct segment seg[4];
	unsigned nr;         /* all segments, purgatory last */
	uint64_t entry, kernel_entry, dtb_addr;
	struct rkx_params params;
	uint64_t entry_offset;
};

static struct segment *place(struct plan *p, struct freemap *free_ram, const char *name, uint32_t kind, uint8_t *buf,
			     size_t bufsz, uint64_t memsz, uint64_t lo, uint64_t hi, const char *rule)
{
	struct segment *s = &p->seg[p->nr++];
	s->name = name;
	s->kind = kind;
	s->buf = buf;
	s->bufsz = bufsz;
	s->memsz = align_up(memsz, PAGE, name);
	s->mem = fm_take(free_ram, s->memsz, PAGE, lo, hi);
	if (!s->mem)
		die("no room for the %s (%llu bytes): %s", name, (unsigned long long)s->memsz, rule);
	return s;
}

/* The rules kernel/kexec_core.c sanity_check_segment_list() and the
 * purgatory's validate() apply, checked before the system call. */
static void check_plan(const struct plan *p)
{
	if (p->nr > KEXEC_SEGMENT_MAX)
		die("internal: %u segments, kexec_load takes at most %d", p->nr, KEXEC_SEGMENT_MAX);
	int entry_in = 0, kentry_in = 0, dtb_in = 0;
	for (unsigned i = 0; i < p->nr; i++) {
		const struct segment *s = &p->seg[i];
		if (s->mem % PAGE || s->memsz % PAGE || s->bufsz > s->memsz || s->mem == 0)
			die("internal: segment %u (%s) breaks the page/size rules", i, s->name);
		if (s->mem > UINT64_MAX - s->memsz)
			die("internal: segment %u (%s) wraps", i, s->name);
		for (unsigned j = 0; j < i; j++)
			if (s->mem < p->seg[j].mem + p->seg[j].memsz && p->seg[j].mem < s->mem + s->memsz)
				die("internal: segments %u and %u overlap", j, i);
		entry_in |= p->entry >= s->mem && p->entry - s->mem < s->memsz;
		kentry_in |= p->kernel_entry >= s->mem && p->kernel_entry - s->mem < s->memsz;
		dtb_in |= p->dtb_addr >= s->mem && p->dtb_addr - s->mem < s->memsz;
	}
	if (!entry_in || !kentry_in || !dtb_in)
		die("internal: an entry point or the DTB lies outside the segments");
}

static const char *console_name(uint32_t kind)
{
	switch (kind) {
	case RKX_CONSOLE_PL011:
		return "pl011";
	case RKX_CONSOLE_8250_MMIO32:
		return "8250-mmio32";
	default:
		return "none";
	}
}

static void print_plan(const struct plan *p)
{
	char h[65];
	for (unsigned i = 0; i < p->nr; i++) {
		const struct segment *s = &p->seg[i];
		printf("c-loader: segment %u kind=%s mem=%#llx memsz=%#llx bufsz=%#zx", i, s->name,
		       (unsigned long long)s->mem, (unsigned long long)s->memsz, s->bufsz);
		if (i + 1 < p->nr) {
			hex(h, s->sha256);
			printf(" sha256=%s\n", h);
		} else {
			printf(" (not in the parameter block: the purgatory does not hash itself)\n");
		}
	}
	const struct rkx_params *q = &p->params;
	printf("c-loader: params kernel_entry=%#llx boot_data=%#llx console=%s@%#llx psci_conduit=%u on_failure=%u "
	       "flags=%#x nr_segments=%u\n",
	       (unsigned long long)q->kernel_entry, (unsigned long long)q->boot_data, console_name(q->console.kind),
	       (unsigned long long)q->console.base, q->psci_conduit, q->on_failure, q->flags, q->nr_segments);
	printf("c-loader: kexec entry %#llx (purgatory at %#llx + entry_offset %#llx)\n", (unsigned long long)p->entry,
	       (unsigned long long)p->seg[p->nr - 1].mem, (unsigned long long)p->entry_offset);
}

#if CLOADER_CAN_LOAD
/* include/uapi/linux/kexec.h struct kexec_segment. */
struct kexec_segment_uapi {
	const void *buf;
	size_t bufsz;
	const void *mem;
	size_t memsz;
};

static void kexec_load_and_reboot(const struct plan *p, int reboot_after)
{
	struct kexec_segment_uapi ks[KEXEC_SEGMENT_MAX];
	for (unsigned i = 0; i < p->nr; i++) {
		ks[i].buf = p->seg[i].buf;
		ks[i].bufsz = p->seg[i].bufsz;
		ks[i].mem = (const void *)(uintptr_t)p->seg[i].mem;
		ks[i].memsz = (size_t)p->seg[i].memsz;
	}
	fflush(stdout);
	if (syscall(SYS_kexec_load, (unsigned long)p->entry, (unsigned long)p->nr, ks, KEXEC_ARCH_AARCH64) != 0) {
		int e = errno;
		die("kexec_load: %s%s", strerror(e),
		    e == EPERM ? " (needs CAP_SYS_BOOT; kexec_load_disabled or lockdown may forbid it)" :
		    e == EINVAL || e == EADDRNOTAVAIL ? " (the kernel refused a segment: see the plan above)" :
		    e == ENOSYS ? " (kernel built without CONFIG_KEXEC)" : "");
	}
	printf("c-loader: kexec_load: %u segments loaded, entry %#llx\n", p->nr, (unsigned long long)p->entry);
	if (!reboot_after) {
		printf("c-loader: --load-only: loaded; reboot(LINUX_REBOOT_CMD_KEXEC) executes it\n");
		return;
	}
	printf("c-loader: rebooting into the purgatory (reboot LINUX_REBOOT_CMD_KEXEC)\n");
	fflush(stdout);
	sync();
	reboot(LINUX_REBOOT_CMD_KEXEC);
	int e = errno;
	/* Still here: leave nothing loaded behind (nr_segments 0 unloads). */
	syscall(SYS_kexec_load, 0ul, 0ul, NULL, KEXEC_ARCH_AARCH64);
	die("reboot(LINUX_REBOOT_CMD_KEXEC): %s; the image was unloaded again", strerror(e));
}
#endif

int main(int argc, char **argv)
{
	struct options o = parse_args(argc, argv);
	struct plan p;
	memset(&p, 0, sizeof(p));

	/* Inputs. */
	size_t image_len, initrd_len = 0, dtb_len, purg_len, iomem_len;
	uint8_t *image = read_file(o.image, &image_len, "--image");
	struct arm64_image im = parse_image(o.image, image, image_len);
	uint8_t *initrd = NULL;
	if (o.initrd) {
		initrd = read_file(o.initrd, &initrd_len, "--initrd");
		if (initrd_len == 0)
			die("--initrd %s: empty file", o.initrd);
	}
	uint8_t *purg = read_file(o.purgatory, &purg_len, "--purgatory");
	struct rkx_image_header ph = check_purgatory(o.purgatory, purg, purg_len);
	uint8_t *dtb_in = read_file(o.dtb, &dtb_len, "--dtb");
	char err[400];
	struct fdt fdt;
	if (fdt_parse(&fdt, dtb_in, dtb_len, err, sizeof(err)))
		die("--dtb %s: %s", o.dtb, err);
	char *iomem = (char *)read_file(o.iomem, &iomem_len, "--iomem");
	struct freemap free_ram = usable_ram(o.iomem, iomem, iomem_len);
	struct fdt_rsv *rsv;
	size_t nrsv;
	if (fdt_rsvmap(&fdt, &rsv, &nrsv, err, sizeof(err)))
		die("--dtb %s: %s", o.dtb, err);
	for (size_t i = 0; i < nrsv; i++) /* devicetree spec §5.3: not for the OS to use */
		fm_remove(&free_ram, rsv[i].address, add(rsv[i].address, rsv[i].size, "/memreserve/ entry"));
	printf("c-loader: %s: text_offset %#llx, image_size %#llx, flags %#llx; %llu MiB of System RAM usable\n",
	       o.image, (unsigned long long)im.text_offset, (unsigned long long)im.image_size,
	       (unsigned long long)im.flags, (unsigned long long)(fm_total(&free_ram) / MIB));

	/* Kernel: the lowest 2 MiB aligned base with text_offset + image_size
	 * free above it (booting.rst §4; also "as close as possible to the
	 * base of DRAM" for kernels without header flags bit 3). */
	uint64_t span = align_up(add(im.text_offset, im.image_size, "--image text_offset + image_size"), PAGE, "kernel");
	uint64_t base = fm_take(&free_ram, span, KERNEL_ALIGN, 0, UINT64_MAX);
	if (!base)
		die("no room for the kernel (%llu bytes): needs a 2 MiB aligned base with text_offset + image_size "
		    "free (booting.rst §4)",
		    (unsigned long long)span);
	struct segment *k = &p.seg[p.nr++];
	k->name = "kernel";
	k->kind = RKX_KIND_KERNEL;
	k->buf = image;
	k->bufsz = image_len;
	k->mem = base + im.text_offset;
	k->memsz = align_up(im.image_size, PAGE, "kernel");
	p.kernel_entry = k->mem; /* booting.rst §4: jump to the first instruction of the Image */

	/* Initrd, DTB, purgatory: lowest fit in the kernel's window. */
	uint64_t lo = align_down(base, GIB);
	uint64_t hi = lo > UINT64_MAX - WINDOW ? UINT64_MAX : lo + WINDOW;
	char rule[160];
	snprintf(rule, sizeof(rule), "must lie in %#llx-%#llx, the 1 GiB aligned 32 GiB window of the kernel (booting.rst §3)",
		 (unsigned long long)lo, (unsigned long long)hi);
	struct fdt_chosen_edit edit = { o.append, 0, 0, 0 };
	if (initrd) {
		struct segment *s = place(&p, &free_ram, "initrd", RKX_KIND_INITRD, initrd, initrd_len, initrd_len, lo, hi,
					  rule);
		edit.has_initrd = 1;
		edit.initrd_start = s->mem;
		edit.initrd_end = s->mem + initrd_len;
	}
	uint8_t *dtb;
	size_t dtb_out_len;
	if (fdt_rebuild_chosen(&fdt, &edit, &dtb, &dtb_out_len, err, sizeof(err)))
		die("--dtb %s: %s", o.dtb, err);
	if (dtb_out_len > DTB_MAX)
		die("--dtb %s: the DTB to hand over is %zu bytes; booting.rst §2 allows at most 2 MiB", o.dtb,
		    dtb_out_len);
	struct segment *d = place(&p, &free_ram, "dtb", RKX_KIND_DTB, dtb, dtb_out_len, dtb_out_len, lo, hi, rule);
	p.dtb_addr = d->mem; /* page aligned: booting.rst §2's 8-byte alignment holds */

	/* Purgatory: any 4 KiB aligned RAM (RKX_IMAGE_LOAD_ALIGN); prefer the window. */
	uint64_t purg_memsz = align_up(ph.mem_size, RKX_IMAGE_LOAD_ALIGN, "purgatory mem_size");
	uint64_t purg_mem = fm_take(&free_ram, purg_memsz, RKX_IMAGE_LOAD_ALIGN, lo, hi);
	if (!purg_mem)
		purg_mem = fm_take(&free_ram, purg_memsz, RKX_IMAGE_LOAD_ALIGN, 0, UINT64_MAX);
	if (!purg_mem)
		die("no room for the purgatory (%llu bytes of 4 KiB aligned RAM)", (unsigned long long)purg_memsz);
	p.entry_offset = ph.entry_offset;
	p.entry = purg_mem + ph.entry_offset;

	/* Digests over memsz, then the parameter block (docs/abi.md). */
	struct rkx_params *q = &p.params;
	q->magic = RKX_PARAMS_MAGIC;
	q->version = RKX_PARAMS_VERSION;
	q->size = sizeof(*q);
	q->flags = 0; /* no seed placeholders in this DTB, boot CPU left as is */
	q->kernel_entry = p.kernel_entry;
	q->boot_data = p.dtb_addr;
	q->on_failure = o.on_failure;
	const char *method = fdt_psci_method(&fdt);
	q->psci_conduit = method && strcmp(method, "hvc") == 0 ? RKX_PSCI_HVC :
			  method && strcmp(method, "smc") == 0 ? RKX_PSCI_SMC : RKX_PSCI_NONE;
	if (o.on_failure == RKX_ON_FAILURE_RESET && q->psci_conduit == RKX_PSCI_NONE)
		die("--on-failure reset: --dtb %s has no /psci/method hvc or smc, so the purgatory could not reset",
		    o.dtb);
	if (o.console) {
		q->console = parse_console(o.console);
	} else {
		struct fdt_uart u;
		fdt_stdout_uart(&fdt, &u);
		if (u.kind == FDT_UART_NONE) {
			printf("c-loader: no purgatory console: %s (give --console)\n", u.why);
		} else {
			q->console.kind = u.kind == FDT_UART_PL011 ? RKX_CONSOLE_PL011 : RKX_CONSOLE_8250_MMIO32;
			q->console.base = u.base;
		}
	}
	q->nr_segments = p.nr;
	for (unsigned i = 0; i < p.nr; i++) {
		struct segment *s = &p.seg[i];
		digest_memsz(s->buf, s->bufsz, s->memsz, s->sha256);
		q->segments[i].mem = s->mem;
		q->segments[i].len = s->memsz;
		memcpy(q->segments[i].sha256, s->sha256, 32);
		q->segments[i].kind = s->kind;
		q->segments[i].flags = 0;
	}
	uint8_t *purg_copy = xmalloc(purg_len);
	memcpy(purg_copy, purg, purg_len);
	memcpy(purg_copy + ph.params_offset, q, sizeof(*q));
	struct segment *ps = &p.seg[p.nr++];
	ps->name = "purgatory";
	ps->kind = RKX_KIND_OTHER;
	ps->buf = purg_copy;
	ps->bufsz = purg_len;
	ps->mem = purg_mem;
	ps->memsz = purg_memsz;
	check_plan(&p);
	if (o.corrupt >= 0 && (unsigned)o.corrupt >= q->nr_segments)
		die("--corrupt-after-digest %d: the parameter block lists %u segments (0..%u)", o.corrupt, q->nr_segments,
		    q->nr_segments - 1);
	if (o.append)
		printf("c-loader: bootargs \"%s\"\n", o.append);
	print_plan(&p);

	/* The negative control: the digest above no longer matches. */
	if (o.corrupt >= 0) {
		struct segment *s = &p.seg[o.corrupt];
		size_t at = s->bufsz / 2;
		s->buf[at] ^= 0x01;
		printf("c-loader: --corrupt-after-digest: flipped bit 0 of byte %#zx of segment %d (%s) after its "
		       "digest\n",
		       at, o.corrupt, s->name);
	}

	if (o.plan_only) {
		if (o.plan_dir) {
			if (mkdir(o.plan_dir, 0755) != 0 && errno != EEXIST)
				die("--plan-dir %s: %s", o.plan_dir, strerror(errno));
			for (unsigned i = 0; i < p.nr; i++) {
				char path[4096];
				snprintf(path, sizeof(path), "%s/segment-%u.bin", o.plan_dir, i);
				write_file(path, p.seg[i].buf, p.seg[i].bufsz);
			}
		}
		printf("c-loader: --plan-only: nothing loaded\n");
		return 0;
	}
#if CLOADER_CAN_LOAD
	kexec_load_and_reboot(&p, !o.load_only);
#endif
	return 0;
}
