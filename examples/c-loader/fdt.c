/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Flattened devicetree reading and the /chosen rebuild (see fdt.h).
 * Devicetree Specification v0.4: §5.2 header, §5.3 memory reservation
 * block, §5.4 structure block, §5.5 strings block, §2.3.5/§2.3.8 ranges and
 * #address-cells/#size-cells, §3.3 aliases, §3.6 /chosen.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include "fdt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* §5.4.1 tokens. */
#define FDT_BEGIN_NODE 0x1u
#define FDT_END_NODE   0x2u
#define FDT_PROP       0x3u
#define FDT_NOP        0x4u
#define FDT_END        0x9u

#define FDT_MAGIC      0xd00dfeedu
#define FDT_HEADER     40u
#define FDT_MAX_DEPTH  64u
#define NONE           ((size_t)-1)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t align4(uint32_t v)
{
	return (v + 3u) & ~3u;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* [off, off + len) lies inside [0, total)? */
static int fits(uint64_t off, uint64_t len, uint64_t total)
{
	return off <= total && len <= total - off;
}

static int push_node(struct fdt *f, size_t *cap, struct fdt_node n)
{
	if (f->nr_nodes == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct fdt_node *p = realloc(f->nodes, c * sizeof(*p));
		if (!p)
			return -1;
		f->nodes = p;
		*cap = c;
	}
	f->nodes[f->nr_nodes++] = n;
	return 0;
}

static int push_prop(struct fdt *f, size_t *cap, struct fdt_prop p)
{
	if (f->nr_props == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct fdt_prop *q = realloc(f->props, c * sizeof(*q));
		if (!q)
			return -1;
		f->props = q;
		*cap = c;
	}
	f->props[f->nr_props++] = p;
	return 0;
}

int fdt_parse(struct fdt *f, const uint8_t *blob, size_t size, char *err, size_t errlen)
{
	memset(f, 0, sizeof(*f));
	f->blob = blob;
	if (size < FDT_HEADER || be32(blob) != FDT_MAGIC)
		return fail(err, errlen, "not a flattened devicetree (magic is not 0xd00dfeed, devicetree spec §5.2)");
	uint32_t total = be32(blob + 4);
	f->off_struct = be32(blob + 8);
	f->off_strings = be32(blob + 12);
	f->off_rsvmap = be32(blob + 16);
	uint32_t version = be32(blob + 20), last_comp = be32(blob + 24);
	f->boot_cpuid_phys = be32(blob + 28);
	f->size_strings = be32(blob + 32);
	f->size_struct = be32(blob + 36);
	if (total < FDT_HEADER || total > size)
		return fail(err, errlen, "header totalsize %u does not fit the %zu-byte file (§5.2)", total, size);
	f->size = total;
	/* size_dt_struct exists from version 17; 16 is the last layout we read. */
	if (version < 17 || last_comp > 16)
		return fail(err, errlen, "version %u / last_comp_version %u: this loader reads version 17 blobs (§5.2)",
			    version, last_comp);
	if (f->off_struct % 4 || !fits(f->off_struct, f->size_struct, total) || f->off_struct < FDT_HEADER)
		return fail(err, errlen, "structure block (off_dt_struct %#x, size %#x) is misaligned or outside totalsize (§5.4)",
			    f->off_struct, f->size_struct);
	if (!fits(f->off_strings, f->size_strings, total) || f->off_strings < FDT_HEADER)
		return fail(err, errlen, "strings block (off_dt_strings %#x, size %#x) is outside totalsize (§5.5)",
			    f->off_strings, f->size_strings);
	if (f->off_rsvmap % 8 || !fits(f->off_rsvmap, 16, total) || f->off_rsvmap < FDT_HEADER)
		return fail(err, errlen, "memory reservation block (off_mem_rsvmap %#x) is misaligned or outside totalsize (§5.3)",
			    f->off_rsvmap);

	const uint8_t *s = blob + f->off_struct;
	const char *strings = (const char *)blob + f->off_strings;
	uint32_t n = f->size_struct, pos = 0;
	size_t node_cap = 0, prop_cap = 0, cur = NONE;
	unsigned depth = 0;
	int root_done = 0;
	for (;;) {
		if (n - pos < 4)
			return fail(err, errlen, "structure block ends at %#x without FDT_END (§5.4.1)", pos);
		uint32_t tok = be32(s + pos);
		uint32_t at = pos;
		pos += 4;
		if (tok == FDT_NOP)
			continue;
		if (tok == FDT_END) {
			if (!root_done)
				return fail(err, errlen, "FDT_END at %#x inside an open node (§5.4.1)", at);
			break;
		}
		if (root_done)
			return fail(err, errlen, "token %#x at %#x after the root node closed (§5.4.2)", tok, at);
		if (tok == FDT_BEGIN_NODE) {
			const char *name = (const char *)s + pos;
			const void *nul = memchr(name, 0, n - pos);
			if (!nul)
				return fail(err, errlen, "node name at %#x is not NUL-terminated (§5.4.1)", pos);
			uint32_t len = (uint32_t)((const char *)nul - name);
			if (cur == NONE && len != 0)
				return fail(err, errlen, "the first node is \"%s\", not the root (§5.4.2)", name);
			if (depth >= FDT_MAX_DEPTH)
				return fail(err, errlen, "nodes nest deeper than %u levels", FDT_MAX_DEPTH);
			if (len + 1 > n - pos)
				return fail(err, errlen, "node name at %#x runs past the structure block", pos);
			pos += align4(len + 1);
			if (pos > n)
				return fail(err, errlen, "node name padding at %#x runs past the structure block", at);
			struct fdt_node nd = { name, cur == NONE ? 0 : cur, depth };
			if (push_node(f, &node_cap, nd))
				return fail(err, errlen, "out of memory");
			cur = f->nr_nodes - 1;
			depth++;
		} else if (tok == FDT_END_NODE) {
			if (cur == NONE)
				return fail(err, errlen, "FDT_END_NODE at %#x outside any node (§5.4.1)", at);
			depth--;
			if (depth == 0)
				root_done = 1;
			cur = f->nodes[cur].parent;
		} else if (tok == FDT_PROP) {
			if (cur == NONE)
				return fail(err, errlen, "FDT_PROP at %#x outside any node (§5.4.1)", at);
			if (n - pos < 8)
				return fail(err, errlen, "FDT_PROP at %#x is truncated", at);
			uint32_t len = be32(s + pos), nameoff = be32(s + pos + 4);
			pos += 8;
			if (len > n - pos || align4(len) > n - pos)
				return fail(err, errlen, "property at %#x: value of %u bytes runs past the structure block", at, len);
			if (nameoff >= f->size_strings ||
			    !memchr(strings + nameoff, 0, f->size_strings - nameoff))
				return fail(err, errlen, "property at %#x: nameoff %#x is not a string in the strings block (§5.5)",
					    at, nameoff);
			struct fdt_prop p = { cur, strings + nameoff, s + pos, len };
			if (push_prop(f, &prop_cap, p))
				return fail(err, errlen, "out of memory");
			pos += align4(len);
		} else {
			return fail(err, errlen, "unknown token %#x at structure offset %#x (§5.4.1)", tok, at);
		}
	}
	if (f->nr_nodes == 0)
		return fail(err, errlen, "no root node (§5.4.2)");
	return 0;
}

void fdt_free(struct fdt *f)
{
	free(f->nodes);
	free(f->props);
	f->nodes = NULL;
	f->props = NULL;
}

static size_t child(const struct fdt *f, size_t parent, const char *comp, size_t comp_len)
{
	size_t exact = NONE, loose = NONE, loose_count = 0;
	int has_unit = memchr(comp, '@', comp_len) != NULL;
	for (size_t i = 1; i < f->nr_nodes; i++) {
		if (f->nodes[i].parent != parent)
			continue;
		const char *name = f->nodes[i].name;
		if (strlen(name) == comp_len && memcmp(name, comp, comp_len) == 0) {
			exact = i;
			break;
		}
		/* §2.2.3: the unit address may be omitted if the name is unique. */
		if (!has_unit && strncmp(name, comp, comp_len) == 0 && name[comp_len] == '@') {
			loose = i;
			loose_count++;
		}
	}
	if (exact != NONE)
		return exact;
	return loose_count == 1 ? loose : NONE;
}

size_t fdt_path(const struct fdt *f, const char *path)
{
	if (path[0] != '/')
		return NONE;
	size_t cur = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		cur = child(f, cur, p, len);
		if (cur == NONE)
			return NONE;
		p += len;
	}
	return cur;
}

const struct fdt_prop *fdt_prop(const struct fdt *f, size_t node, const char *name)
{
	if (node == NONE)
		return NULL;
	for (size_t i = 0; i < f->nr_props; i++)
		if (f->props[i].node == node && strcmp(f->props[i].name, name) == 0)
			return &f->props[i];
	return NULL;
}

const char *fdt_prop_string(const struct fdt *f, size_t node, const char *name)
{
	const struct fdt_prop *p = fdt_prop(f, node, name);
	if (!p || p->len == 0 || p->value[p->len - 1] != 0)
		return NULL;
	return (const char *)p->value;
}

int fdt_rsvmap(const struct fdt *f, struct fdt_rsv **out, size_t *n, char *err, size_t errlen)
{
	*out = NULL;
	*n = 0;
	size_t cap = 0;
	for (uint64_t off = f->off_rsvmap;; off += 16) {
		if (!fits(off, 16, f->size)) {
			free(*out);
			return fail(err, errlen, "memory reservation block has no terminating entry (§5.3)");
		}
		const uint8_t *e = f->blob + off;
		uint64_t addr = (uint64_t)be32(e) << 32 | be32(e + 4);
		uint64_t size = (uint64_t)be32(e + 8) << 32 | be32(e + 12);
		if (addr == 0 && size == 0)
			return 0;
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			struct fdt_rsv *p = realloc(*out, cap * sizeof(*p));
			if (!p) {
				free(*out);
				return fail(err, errlen, "out of memory");
			}
			*out = p;
		}
		(*out)[(*n)++] = (struct fdt_rsv){ addr, size };
	}
}

/* A #address-cells / #size-cells value of `node`, or `dflt` (§2.3.5). */
static uint32_t cells(const struct fdt *f, size_t node, const char *name, uint32_t dflt)
{
	const struct fdt_prop *p = fdt_prop(f, node, name);
	return p && p->len == 4 ? be32(p->value) : dflt;
}

static uint64_t read_cells(const uint8_t *p, uint32_t n)
{
	uint64_t v = 0;
	for (uint32_t i = 0; i < n; i++)
		v = v << 32 | be32(p + 4 * i);
	return v;
}

/* The CPU physical address of the first `reg` entry of `node`: the unit
 * address translated through every ancestor's `ranges` (§2.3.8). */
static int reg_base(const struct fdt *f, size_t node, uint64_t *out, char *why, size_t whylen)
{
	size_t bus = f->nodes[node].parent;
	uint32_t ac = cells(f, bus, "#address-cells", 2), sc = cells(f, bus, "#size-cells", 1);
	const struct fdt_prop *reg = fdt_prop(f, node, "reg");
	if (ac < 1 || ac > 2 || sc > 2)
		return fail(why, whylen, "#address-cells %u / #size-cells %u of its parent are not supported", ac, sc);
	if (!reg || reg->len < 4 * (ac + sc))
		return fail(why, whylen, "no reg entry (%u address + %u size cells)", ac, sc);
	uint64_t addr = read_cells(reg->value, ac);
	while (bus != 0) {
		size_t up = f->nodes[bus].parent;
		const struct fdt_prop *r = fdt_prop(f, bus, "ranges");
		if (!r)
			return fail(why, whylen, "parent node %s has no ranges: not memory-mapped", f->nodes[bus].name);
		if (r->len != 0) {
			uint32_t cac = cells(f, bus, "#address-cells", 2), pac = cells(f, up, "#address-cells", 2);
			uint32_t csc = cells(f, bus, "#size-cells", 1);
			if (cac < 1 || cac > 2 || pac < 1 || pac > 2 || csc > 2)
				return fail(why, whylen, "ranges of %s: cell counts %u/%u/%u not supported", f->nodes[bus].name,
					    cac, pac, csc);
			uint32_t entry = 4 * (cac + pac + csc);
			int found = 0;
			for (uint32_t o = 0; o + entry <= r->len; o += entry) {
				uint64_t c = read_cells(r->value + o, cac);
				uint64_t p = read_cells(r->value + o + 4 * cac, pac);
				uint64_t sz = read_cells(r->value + o + 4 * (cac + pac), csc);
				if (addr >= c && addr - c < sz) {
					addr = p + (addr - c);
					found = 1;
					break;
				}
			}
			if (!found)
				return fail(why, whylen, "address %#llx is outside the ranges of %s", (unsigned long long)addr,
					    f->nodes[bus].name);
		}
		bus = up;
	}
	*out = addr;
	return 0;
}

/* Does the stringlist property `compatible` of `node` hold `want`? */
static int compatible(const struct fdt *f, size_t node, const char *want)
{
	const struct fdt_prop *p = fdt_prop(f, node, "compatible");
	if (!p)
		return 0;
	for (uint32_t o = 0; o < p->len;) {
		const char *s = (const char *)p->value + o;
		size_t l = strnlen(s, p->len - o);
		if (l == strlen(want) && memcmp(s, want, l) == 0)
			return 1;
		o += (uint32_t)l + 1;
	}
	return 0;
}

void fdt_stdout_uart(const struct fdt *f, struct fdt_uart *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = FDT_UART_NONE;
	size_t chosen = fdt_path(f, "/chosen");
	const char *sp = fdt_prop_string(f, chosen, "stdout-path");
	if (!sp)
		sp = fdt_prop_string(f, chosen, "linux,stdout-path");
	if (!sp) {
		snprintf(out->why, sizeof(out->why), "the DTB has no /chosen/stdout-path");
		return;
	}
	/* §3.6: a ':' ends the path; what follows are UART options. */
	char path[sizeof(out->node)];
	size_t len = strcspn(sp, ":");
	if (len >= sizeof(path)) {
		snprintf(out->why, sizeof(out->why), "/chosen/stdout-path is too long");
		return;
	}
	memcpy(path, sp, len);
	path[len] = 0;
	snprintf(out->node, sizeof(out->node), "%s", path);
	const char *resolved = path;
	if (path[0] != '/') {
		/* §3.3: a path not starting with '/' is an alias. */
		resolved = fdt_prop_string(f, fdt_path(f, "/aliases"), path);
		if (!resolved) {
			snprintf(out->why, sizeof(out->why), "stdout-path alias \"%.100s\" is not in /aliases", path);
			return;
		}
	}
	size_t node = fdt_path(f, resolved);
	if (node == NONE) {
		snprintf(out->why, sizeof(out->why), "stdout-path node %.100s is not in the DTB", resolved);
		return;
	}
	enum fdt_uart_kind kind = FDT_UART_NONE;
	if (compatible(f, node, "arm,pl011")) {
		kind = FDT_UART_PL011;
	} else if (compatible(f, node, "ns16550a") || compatible(f, node, "ns16550") ||
		   compatible(f, node, "snps,dw-apb-uart")) {
		/* bindings/serial/8250.yaml: reg-shift/reg-io-width default 0/1. */
		uint32_t shift = cells(f, node, "reg-shift", 0), width = cells(f, node, "reg-io-width", 1);
		if (shift != 2 || width != 4) {
			snprintf(out->why, sizeof(out->why),
				 "%.100s: 8250 with reg-shift %u, reg-io-width %u (the purgatory drives 32-bit registers only)",
				 resolved, shift, width);
			return;
		}
		kind = FDT_UART_8250_MMIO32;
	} else {
		snprintf(out->why, sizeof(out->why), "%.100s is neither arm,pl011 nor an ns16550-compatible UART", resolved);
		return;
	}
	char why[200];
	if (reg_base(f, node, &out->base, why, sizeof(why))) {
		snprintf(out->why, sizeof(out->why), "%.100s: %.199s", resolved, why);
		return;
	}
	out->kind = kind;
}

const char *fdt_psci_method(const struct fdt *f)
{
	return fdt_prop_string(f, fdt_path(f, "/psci"), "method");
}

/* ---- /chosen rebuild --------------------------------------------------- */

/* Properties every rebuild removes from /chosen: the initrd of the running
 * kernel is gone, and a capture kernel's limits must not reach a normal
 * kernel (bindings/chosen.txt: linux,elfcorehdr, linux,usable-memory-range). */
static const char *const always_dropped[] = {
	"linux,initrd-start",
	"linux,initrd-end",
	"linux,elfcorehdr",
	"linux,usable-memory-range",
};

struct out_buf {
	uint8_t *p;
	size_t len, cap;
};

static int ob_put(struct out_buf *b, const void *data, size_t len)
{
	if (len > b->cap - b->len)
		return -1;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

static int ob_token(struct out_buf *b, uint32_t tok)
{
	uint8_t t[4];
	put_be32(t, tok);
	return ob_put(b, t, 4);
}

static int ob_prop(struct out_buf *b, uint32_t nameoff, const void *value, uint32_t len)
{
	uint8_t h[8];
	static const uint8_t pad[4];
	put_be32(h, len);
	put_be32(h + 4, nameoff);
	if (ob_token(b, FDT_PROP) || ob_put(b, h, 8) || ob_put(b, value, len))
		return -1;
	return ob_put(b, pad, align4(len) - len);
}

/* Offset of `name` in the strings block, appending it if it is absent. */
static int string_off(struct out_buf *strings, const char *name, uint32_t *off)
{
	size_t l = strlen(name) + 1;
	for (size_t o = 0; o + l <= strings->len; o++) {
		if (memcmp(strings->p + o, name, l) == 0) {
			*off = (uint32_t)o;
			return 0;
		}
	}
	*off = (uint32_t)strings->len;
	return ob_put(strings, name, l);
}

static int dropped(const struct fdt_chosen_edit *e, const char *name)
{
	for (size_t i = 0; i < sizeof(always_dropped) / sizeof(always_dropped[0]); i++)
		if (strcmp(name, always_dropped[i]) == 0)
			return 1;
	return e->bootargs && strcmp(name, "bootargs") == 0;
}

static int emit_new_props(struct out_buf *st, const struct fdt_chosen_edit *e, const uint32_t off[3])
{
	if (e->bootargs && ob_prop(st, off[0], e->bootargs, (uint32_t)strlen(e->bootargs) + 1))
		return -1;
	if (e->has_initrd) {
		uint8_t v[8];
		put_be64(v, e->initrd_start);
		if (ob_prop(st, off[1], v, 8))
			return -1;
		put_be64(v, e->initrd_end);
		if (ob_prop(st, off[2], v, 8))
			return -1;
	}
	return 0;
}

int fdt_rebuild_chosen(const struct fdt *f, const struct fdt_chosen_edit *e, uint8_t **out, size_t *out_len,
		       char *err, size_t errlen)
{
	*out = NULL;
	*out_len = 0;
	size_t bootargs_len = e->bootargs ? strlen(e->bootargs) : 0;
	if (bootargs_len > 1u << 20)
		return fail(err, errlen, "bootargs of %zu bytes is unreasonably long", bootargs_len);
	struct fdt_rsv *rsv;
	size_t nrsv;
	if (fdt_rsvmap(f, &rsv, &nrsv, err, errlen))
		return -1;
	/* Generous bounds: the old blocks, three new properties, a new node. */
	struct out_buf st = { NULL, 0, (size_t)f->size_struct + bootargs_len + 128 };
	struct out_buf str = { NULL, 0, (size_t)f->size_strings + 64 };
	st.p = malloc(st.cap);
	str.p = malloc(str.cap);
	if (!st.p || !str.p)
		goto oom;
	if (ob_put(&str, f->blob + f->off_strings, f->size_strings))
		goto oom;
	uint32_t off[3];
	if (string_off(&str, "bootargs", &off[0]) || string_off(&str, "linux,initrd-start", &off[1]) ||
	    string_off(&str, "linux,initrd-end", &off[2]))
		goto oom;

	/* Second walk of a structure block fdt_parse() validated: node i is
	 * the i-th FDT_BEGIN_NODE, property j the j-th FDT_PROP. */
	const uint8_t *s = f->blob + f->off_struct;
	uint32_t pos = 0;
	size_t next_node = 0, next_prop = 0, cur = NONE;
	size_t chosen = fdt_path(f, "/chosen");
	for (;;) {
		uint32_t tok = be32(s + pos), at = pos;
		pos += 4;
		if (tok == FDT_NOP)
			continue;
		if (tok == FDT_END)
			break;
		if (tok == FDT_BEGIN_NODE) {
			cur = next_node++;
			uint32_t len = (uint32_t)strlen((const char *)s + pos);
			pos += align4(len + 1);
			if (ob_put(&st, s + at, pos - at))
				goto oom;
			if (cur == chosen && emit_new_props(&st, e, off))
				goto oom;
		} else if (tok == FDT_END_NODE) {
			if (cur == 0 && chosen == NONE) {
				/* No /chosen: add one as the root's last child. */
				static const uint8_t name[4] = { 'c', 'h', 'o', 's' };
				static const uint8_t tail[4] = { 'e', 'n', 0, 0 };
				if (ob_token(&st, FDT_BEGIN_NODE) || ob_put(&st, name, 4) || ob_put(&st, tail, 4) ||
				    emit_new_props(&st, e, off) || ob_token(&st, FDT_END_NODE))
					goto oom;
			}
			if (ob_token(&st, FDT_END_NODE))
				goto oom;
			cur = f->nodes[cur].parent;
		} else { /* FDT_PROP */
			const struct fdt_prop *p = &f->props[next_prop++];
			uint32_t len = be32(s + pos);
			pos += 8 + align4(len);
			if (p->node == chosen && dropped(e, p->name))
				continue;
			if (ob_put(&st, s + at, pos - at))
				goto oom;
		}
	}
	if (ob_token(&st, FDT_END))
		goto oom;

	/* Layout: header, reservation block (8-aligned), structure, strings. */
	size_t rsv_len = (nrsv + 1) * 16;
	size_t total = FDT_HEADER + rsv_len + st.len + str.len;
	if (total > UINT32_MAX) {
		fail(err, errlen, "rebuilt DTB would be %zu bytes, more than totalsize can say", total);
		goto out;
	}
	uint8_t *b = calloc(1, total);
	if (!b)
		goto oom;
	uint32_t off_rsv = FDT_HEADER, off_struct = (uint32_t)(FDT_HEADER + rsv_len);
	uint32_t off_strings = off_struct + (uint32_t)st.len;
	uint32_t hdr[10] = { FDT_MAGIC, (uint32_t)total, off_struct, off_strings, off_rsv, 17, 16,
			     f->boot_cpuid_phys, (uint32_t)str.len, (uint32_t)st.len };
	for (int i = 0; i < 10; i++)
		put_be32(b + 4 * i, hdr[i]);
	for (size_t i = 0; i < nrsv; i++) {
		put_be64(b + off_rsv + 16 * i, rsv[i].address);
		put_be64(b + off_rsv + 16 * i + 8, rsv[i].size);
	}
	memcpy(b + off_struct, st.p, st.len);
	memcpy(b + off_strings, str.p, str.len);
	*out = b;
	*out_len = total;
	free(st.p);
	free(str.p);
	free(rsv);
	return 0;
oom:
	fail(err, errlen, "out of memory rebuilding the DTB");
out:
	free(st.p);
	free(str.p);
	free(rsv);
	return -1;
}
