//! fdt-edit: set string properties in a flattened device tree and write it
//! back as version 17, as a boot loader editing a DTB with libfdt does
//! (`fdt_open_into` + `fdt_setprop_string`; Petitboot edits the tree it
//! hands to `kexec --dtb` that way).
//!
//!   fdt-edit IN OUT [/node/path/property=value ...]
//!
//! IN may be version 16: a pseries kernel's /sys/firmware/fdt is the blob
//! prom_init flattened (arch/powerpc/kernel/prom_init.c
//! flatten_device_tree: version 16, no size_dt_struct). The output is
//! version 17 (last compatible 16), its memory reservations and
//! boot_cpuid_phys kept, NOPs dropped. A property that is missing is added
//! to its node; a node that is missing is an error.
//!
//! Output (stable for the guest tests):
//!   FDT-EDIT in version=N size=N out version=17 size=N
//!   FDT-EDIT set /node/prop=<new> was=<old or "absent">
//! Exit 0 on success, 1 otherwise (with the reason on stderr).

use std::fmt;

// Devicetree Specification v0.4, 5.2 (header) and 5.4 (structure block).
const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
const HEADER_V17: usize = 40;

#[derive(Debug, PartialEq, Eq)]
enum Error {
    Header(&'static str),
    Version(u32),
    Truncated(&'static str),
    Token(u32, usize),
    Nesting,
    BadPath(String),
    NoNode(String),
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Header(what) => write!(f, "bad FDT header: {what}"),
            Error::Version(v) => write!(f, "FDT version {v}: only 16 and 17 are read"),
            Error::Truncated(what) => write!(f, "the {what} runs past the blob"),
            Error::Token(t, at) => write!(f, "unknown structure token {t:#x} at {at:#x}"),
            Error::Nesting => write!(f, "the structure block is not one tree under a root node"),
            Error::BadPath(p) => write!(f, "{p:?} is not /node/path/property=value"),
            Error::NoNode(p) => write!(f, "no node {p}"),
            Error::TooLarge => write!(f, "the output would not fit 32-bit offsets"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Begin(Vec<u8>),
    End,
    Prop { name: Vec<u8>, value: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tree {
    version: u32,
    boot_cpuid_phys: u32,
    reserved: Vec<(u64, u64)>,
    tokens: Vec<Token>,
}

fn be32(b: &[u8], at: usize, what: &'static str) -> Result<u32, Error> {
    let s = b.get(at..at.checked_add(4).ok_or(Error::Truncated(what))?).ok_or(Error::Truncated(what))?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize, what: &'static str) -> Result<u64, Error> {
    Ok((u64::from(be32(b, at, what)?) << 32)
        | u64::from(be32(b, at.checked_add(4).ok_or(Error::Truncated(what))?, what)?))
}

/// The NUL-terminated string at `at` in `b` (without the NUL).
fn cstr(b: &[u8], at: usize, what: &'static str) -> Result<Vec<u8>, Error> {
    let rest = b.get(at..).ok_or(Error::Truncated(what))?;
    let n = rest.iter().position(|&c| c == 0).ok_or(Error::Truncated(what))?;
    Ok(rest[..n].to_vec())
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

fn parse(blob: &[u8]) -> Result<Tree, Error> {
    if be32(blob, 0, "header")? != FDT_MAGIC {
        return Err(Error::Header("magic is not 0xd00dfeed"));
    }
    let total = be32(blob, 4, "header")? as usize;
    let blob = blob.get(..total).ok_or(Error::Header("totalsize is larger than the file"))?;
    let off_struct = be32(blob, 8, "header")? as usize;
    let off_strings = be32(blob, 12, "header")? as usize;
    let off_rsv = be32(blob, 16, "header")? as usize;
    let version = be32(blob, 20, "header")?;
    let last_comp = be32(blob, 24, "header")?;
    if !(16..=17).contains(&version) || last_comp > 17 {
        return Err(Error::Version(version));
    }
    let boot_cpuid_phys = be32(blob, 28, "header")?;
    let strings_len = be32(blob, 32, "header")? as usize;
    let strings_end = off_strings.checked_add(strings_len).ok_or(Error::Truncated("strings block"))?;
    let strings = blob.get(off_strings..strings_end).ok_or(Error::Truncated("strings block"))?;
    // Version 17 bounds the structure block; 16 ends it at FDT_END only.
    let struct_end = if version >= 17 {
        off_struct.checked_add(be32(blob, 36, "header")? as usize).ok_or(Error::Truncated("structure block"))?
    } else {
        total
    };
    let st = blob.get(..struct_end).ok_or(Error::Truncated("structure block"))?;

    let mut reserved = Vec::new();
    let mut at = off_rsv;
    loop {
        let (addr, size) = (be64(blob, at, "reservation block")?, be64(blob, at + 8, "reservation block")?);
        if addr == 0 && size == 0 {
            break;
        }
        reserved.push((addr, size));
        at = at.checked_add(16).ok_or(Error::Truncated("reservation block"))?;
    }

    let mut tokens = Vec::new();
    let mut depth = 0usize;
    let mut at = off_struct;
    loop {
        let tag = be32(st, at, "structure block")?;
        let body = at + 4;
        match tag {
            FDT_BEGIN_NODE => {
                let name = cstr(st, body, "node name")?;
                if depth == 0 && !tokens.is_empty() {
                    return Err(Error::Nesting);
                }
                depth += 1;
                at = align4(body + name.len() + 1).ok_or(Error::Truncated("node name"))?;
                tokens.push(Token::Begin(name));
            }
            FDT_END_NODE => {
                depth = depth.checked_sub(1).ok_or(Error::Nesting)?;
                tokens.push(Token::End);
                at = body;
            }
            FDT_PROP => {
                let len = be32(st, body, "property")? as usize;
                let name = cstr(strings, be32(st, body + 4, "property")? as usize, "property name")?;
                let v = body + 8;
                let value = st.get(v..v.checked_add(len).ok_or(Error::Truncated("property"))?);
                let value = value.ok_or(Error::Truncated("property value"))?.to_vec();
                if depth == 0 {
                    return Err(Error::Nesting);
                }
                at = align4(v + len).ok_or(Error::Truncated("property"))?;
                tokens.push(Token::Prop { name, value });
            }
            FDT_NOP => at = body,
            FDT_END => break,
            t => return Err(Error::Token(t, at)),
        }
    }
    if depth != 0 || tokens.is_empty() {
        return Err(Error::Nesting);
    }
    Ok(Tree { version, boot_cpuid_phys, reserved, tokens })
}

impl Tree {
    /// Index of the Begin token of the node at `path` ("/" is the root).
    fn node(&self, path: &str) -> Option<usize> {
        let want: Vec<&[u8]> = path.split('/').filter(|s| !s.is_empty()).map(str::as_bytes).collect();
        let mut stack: Vec<&[u8]> = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            match t {
                Token::Begin(name) => {
                    stack.push(name); // the root's name is empty
                    if stack[1..] == want[..] {
                        return Some(i);
                    }
                }
                Token::End => {
                    stack.pop();
                }
                Token::Prop { .. } => {}
            }
        }
        None
    }

    /// Set `prop` of the node at `node` to `value`; the old value, if any.
    fn set(&mut self, node: &str, prop: &[u8], value: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        let begin = self.node(node).ok_or_else(|| Error::NoNode(node.to_string()))?;
        let mut i = begin + 1;
        while let Some(Token::Prop { name, value: old }) = self.tokens.get_mut(i) {
            if name == prop {
                return Ok(Some(std::mem::replace(old, value)));
            }
            i += 1;
        }
        self.tokens.insert(i, Token::Prop { name: prop.to_vec(), value });
        Ok(None)
    }

    /// The blob, version 17: header, reservations, structure, strings.
    fn to_blob(&self) -> Result<Vec<u8>, Error> {
        let mut strings: Vec<u8> = Vec::new();
        let mut st: Vec<u8> = Vec::new();
        let mut string_at = |name: &[u8]| -> usize {
            let mut z = name.to_vec();
            z.push(0);
            if let Some(p) = strings.windows(z.len()).position(|w| w == z.as_slice()) {
                return p;
            }
            strings.extend_from_slice(&z);
            strings.len() - z.len()
        };
        let pad = |v: &mut Vec<u8>| v.resize(align4(v.len()).unwrap_or(v.len()), 0);
        for t in &self.tokens {
            match t {
                Token::Begin(name) => {
                    st.extend_from_slice(&FDT_BEGIN_NODE.to_be_bytes());
                    st.extend_from_slice(name);
                    st.push(0);
                    pad(&mut st);
                }
                Token::End => st.extend_from_slice(&FDT_END_NODE.to_be_bytes()),
                Token::Prop { name, value } => {
                    let off = u32::try_from(string_at(name)).map_err(|_| Error::TooLarge)?;
                    let len = u32::try_from(value.len()).map_err(|_| Error::TooLarge)?;
                    st.extend_from_slice(&FDT_PROP.to_be_bytes());
                    st.extend_from_slice(&len.to_be_bytes());
                    st.extend_from_slice(&off.to_be_bytes());
                    st.extend_from_slice(value);
                    pad(&mut st);
                }
            }
        }
        st.extend_from_slice(&FDT_END.to_be_bytes());
        let off_rsv = HEADER_V17;
        let off_struct = off_rsv + (self.reserved.len() + 1) * 16;
        let off_strings = off_struct + st.len();
        let total = off_strings + strings.len();
        let word = |v: usize| u32::try_from(v).map(u32::to_be_bytes).map_err(|_| Error::TooLarge);
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&FDT_MAGIC.to_be_bytes());
        for v in [total, off_struct, off_strings, off_rsv] {
            out.extend_from_slice(&word(v)?);
        }
        out.extend_from_slice(&17u32.to_be_bytes());
        out.extend_from_slice(&16u32.to_be_bytes());
        out.extend_from_slice(&self.boot_cpuid_phys.to_be_bytes());
        out.extend_from_slice(&word(strings.len())?);
        out.extend_from_slice(&word(st.len())?);
        for (a, s) in self.reserved.iter().chain(std::iter::once(&(0, 0))) {
            out.extend_from_slice(&a.to_be_bytes());
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&st);
        out.extend_from_slice(&strings);
        Ok(out)
    }
}

/// "/a/b/prop=value" -> ("/a/b", "prop", "value").
fn split_set(arg: &str) -> Result<(String, String, String), Error> {
    let bad = || Error::BadPath(arg.to_string());
    let (path, value) = arg.split_once('=').ok_or_else(bad)?;
    let (node, prop) = path.rsplit_once('/').ok_or_else(bad)?;
    if !path.starts_with('/') || prop.is_empty() {
        return Err(bad());
    }
    Ok((if node.is_empty() { "/".into() } else { node.into() }, prop.into(), value.into()))
}

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        None => "absent".into(),
        Some(b) => String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(b)).into_owned(),
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let [input, output, sets @ ..] = args else {
        return Err("usage: fdt-edit IN OUT [/node/path/property=value ...]".into());
    };
    let blob = std::fs::read(input).map_err(|e| format!("{input}: {e}"))?;
    let mut tree = parse(&blob).map_err(|e| format!("{input}: {e}"))?;
    let mut said = Vec::new();
    for s in sets {
        let (node, prop, value) = split_set(s).map_err(|e| e.to_string())?;
        let mut v = value.as_bytes().to_vec();
        v.push(0);
        let old = tree.set(&node, prop.as_bytes(), v).map_err(|e| format!("{input}: {e}"))?;
        said.push(format!("FDT-EDIT set {node}/{prop}={value} was={}", show(&old)));
    }
    let out = tree.to_blob().map_err(|e| e.to_string())?;
    std::fs::write(output, &out).map_err(|e| format!("{output}: {e}"))?;
    println!("FDT-EDIT in version={} size={} out version=17 size={}", tree.version, blob.len(), out.len());
    for l in said {
        println!("{l}");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("fdt-edit: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, value: &[u8]) -> Token {
        Token::Prop { name: name.as_bytes().to_vec(), value: value.to_vec() }
    }

    fn sample() -> Tree {
        Tree {
            version: 17,
            boot_cpuid_phys: 3,
            reserved: vec![(0x1000_0000, 0x2000)],
            tokens: vec![
                Token::Begin(vec![]),
                prop("#address-cells", &[0, 0, 0, 2]),
                Token::Begin(b"chosen".to_vec()),
                prop("stdout-path", b"/vdevice/vty@71000000\0"),
                prop("linux,stdout-path", b"/vdevice/vty@71000000\0"),
                Token::End,
                Token::Begin(b"vdevice".to_vec()),
                Token::Begin(b"vty@71000000".to_vec()),
                prop("reg", &[0x71, 0, 0, 0]),
                Token::End,
                Token::End,
                Token::End,
            ],
        }
    }

    /// As prom_init writes it: version 16, strings before the structure,
    /// no size_dt_struct, a NOP.
    fn as_v16(t: &Tree) -> Vec<u8> {
        let v17 = t.to_blob().unwrap();
        let off_struct = be32(&v17, 8, "").unwrap() as usize;
        let off_strings = be32(&v17, 12, "").unwrap() as usize;
        let strings = &v17[off_strings..];
        let mut st = FDT_NOP.to_be_bytes().to_vec();
        st.extend_from_slice(&v17[off_struct..off_strings]);
        let rsv = &v17[HEADER_V17..off_struct];
        let (o_rsv, o_str) = (HEADER_V17, HEADER_V17 + rsv.len());
        let o_st = align4(o_str + strings.len()).unwrap();
        let total = o_st + st.len();
        let mut out = Vec::new();
        for v in [FDT_MAGIC, total as u32, o_st as u32, o_str as u32, o_rsv as u32, 16, 16, t.boot_cpuid_phys] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&(strings.len() as u32).to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes()); // no size_dt_struct in version 16
        out.extend_from_slice(rsv);
        out.extend_from_slice(strings);
        out.resize(o_st, 0);
        out.extend_from_slice(&st);
        out
    }

    #[test]
    fn round_trip_keeps_the_tree() {
        let t = sample();
        assert_eq!(parse(&t.to_blob().unwrap()).unwrap(), t);
    }

    #[test]
    fn version_16_in_version_17_out_with_the_edit() {
        let t = sample();
        let mut got = parse(&as_v16(&t)).unwrap();
        assert_eq!(got.version, 16);
        assert_eq!(got.tokens, t.tokens, "the NOP is dropped, nothing else changes");
        let old = got.set("/chosen", b"linux,stdout-path", b"/vdevice/vty@71000010\0".to_vec()).unwrap();
        assert_eq!(old.as_deref(), Some(&b"/vdevice/vty@71000000\0"[..]));
        let out = got.to_blob().unwrap();
        assert_eq!(be32(&out, 20, "").unwrap(), 17);
        let back = parse(&out).unwrap();
        assert_eq!(back.reserved, t.reserved);
        assert_eq!(back.boot_cpuid_phys, 3);
        assert!(back.tokens.contains(&prop("linux,stdout-path", b"/vdevice/vty@71000010\0")));
        assert!(back.tokens.contains(&prop("stdout-path", b"/vdevice/vty@71000000\0")));
    }

    #[test]
    fn a_missing_property_is_added_to_its_node_a_missing_node_refused() {
        let mut t = sample();
        assert_eq!(t.set("/vdevice/vty@71000000", b"compatible", b"hvterm1\0".to_vec()).unwrap(), None);
        assert_eq!(t.tokens[9], prop("compatible", b"hvterm1\0"));
        assert_eq!(t.node("/vdevice/vty@71000000"), Some(7));
        assert_eq!(t.node("/"), Some(0));
        assert_eq!(t.set("/nope", b"x", vec![0]), Err(Error::NoNode("/nope".into())));
    }

    #[test]
    fn malformed_input_is_refused_not_a_panic() {
        let good = sample().to_blob().unwrap();
        for cut in 0..good.len() {
            let mut b = good[..cut].to_vec();
            if b.len() >= 8 {
                b[4..8].copy_from_slice(&(cut as u32).to_be_bytes());
            }
            assert!(parse(&b).is_err(), "truncated at {cut}");
        }
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&15u32.to_be_bytes());
        assert_eq!(parse(&bad), Err(Error::Version(15)));
        assert!(split_set("chosen/x=1").is_err());
        assert!(split_set("/chosen/=1").is_err());
        assert_eq!(split_set("/x=1").unwrap(), ("/".into(), "x".into(), "1".into()));
    }
}
