/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * The flattened devicetree as the C loader needs it: a checked index of the
 * running DTB's nodes and properties, the few lookups the loader makes
 * (/chosen/stdout-path to a UART base, /psci/method), and a rebuild of the
 * blob with new /chosen properties. Devicetree Specification v0.4, ch. 5
 * ("Flattened Devicetree (DTB) Format"); all blob fields are big-endian.
 */
#ifndef CLOADER_FDT_H
#define CLOADER_FDT_H

#include <stddef.h>
#include <stdint.h>

/* One node: its name (unit address included), depth and parent. */
struct fdt_node {
	const char *name;
	size_t parent;      /* index into fdt.nodes; the root is its own parent */
	unsigned depth;     /* root = 0 */
};

/* One property: owner node, name (in the strings block), value. */
struct fdt_prop {
	size_t node;
	const char *name;
	const uint8_t *value;
	uint32_t len;
};

/* A parsed blob. `blob` is borrowed: it must outlive the index. */
struct fdt {
	const uint8_t *blob;
	size_t size;
	uint32_t off_struct, size_struct;
	uint32_t off_strings, size_strings;
	uint32_t off_rsvmap;
	uint32_t boot_cpuid_phys;
	struct fdt_node *nodes;
	size_t nr_nodes;
	struct fdt_prop *props;
	size_t nr_props;
};

/* A /memreserve/ entry (spec §5.3). */
struct fdt_rsv {
	uint64_t address;
	uint64_t size;
};

/* Functions returning int give 0 on success, -1 on error with a one-line
 * reason (no file name, no newline) in err[errlen]. */

/* Check the header (§5.2) and every token of the structure block (§5.4);
 * build the node/property index. */
int fdt_parse(struct fdt *f, const uint8_t *blob, size_t size, char *err, size_t errlen);
void fdt_free(struct fdt *f);

/* Node at an absolute path ("/", "/chosen", "/pl011@9000000"); a component
 * without '@' also matches a unique "name@unit" (§2.2.3). (size_t)-1 if
 * absent or ambiguous. */
size_t fdt_path(const struct fdt *f, const char *path);
/* Property `name` of `node`, or NULL. */
const struct fdt_prop *fdt_prop(const struct fdt *f, size_t node, const char *name);
/* A string property's value if it is NUL-terminated, else NULL. */
const char *fdt_prop_string(const struct fdt *f, size_t node, const char *name);

/* The memory reservation block (§5.3): *out is malloc'd, *n entries. */
int fdt_rsvmap(const struct fdt *f, struct fdt_rsv **out, size_t *n, char *err, size_t errlen);

/* What /chosen/stdout-path names, resolved to a CPU physical address. */
enum fdt_uart_kind { FDT_UART_NONE, FDT_UART_PL011, FDT_UART_8250_MMIO32 };
struct fdt_uart {
	enum fdt_uart_kind kind;
	uint64_t base;
	char why[320];      /* for FDT_UART_NONE: why not */
	char node[128];     /* the node's path as stdout-path (or its alias) gave it */
};
/* Never fails: an absent, unresolvable or unsupported console is reported
 * as FDT_UART_NONE with the reason in `why`. */
void fdt_stdout_uart(const struct fdt *f, struct fdt_uart *out);

/* /psci/method: "hvc" or "smc", NULL if there is no PSCI node or method. */
const char *fdt_psci_method(const struct fdt *f);

/* The /chosen edit the loader makes. Every property named in `drop` is
 * removed from /chosen; then `bootargs` (if not NULL) and, when has_initrd,
 * linux,initrd-start/-end (64-bit, Documentation/devicetree/bindings/
 * chosen.txt) are added. /chosen is created if the blob has none. */
struct fdt_chosen_edit {
	const char *bootargs;
	int has_initrd;
	uint64_t initrd_start, initrd_end;  /* end is exclusive, as chosen.txt says */
};

/* Rebuild the blob with the edit applied: header, reservation block,
 * structure block and strings block are written anew (version 17,
 * last_comp_version 16). *out is malloc'd, *out_len its size. */
int fdt_rebuild_chosen(const struct fdt *f, const struct fdt_chosen_edit *edit, uint8_t **out, size_t *out_len,
		       char *err, size_t errlen);

#endif /* CLOADER_FDT_H */
