//! argv scanned the way kexec-tools' getopt_long(3) calls scan it (glibc
//! posix/getopt.c semantics, which kexec/kexec.c main() relies on):
//! permutation (options and the kernel path in any order), `--` ends the
//! options, `--name=value` and `--name value` (the next word is the value
//! even when it starts with `-`), `--name=` is an empty value, unambiguous
//! prefixes of long names (an exact name wins; two names of one option are
//! not ambiguous), clustered short flags (`-su`), a short option's value
//! from the rest of its cluster (`-tbzImage`) or the next word, and
//! POSIXLY_CORRECT stopping at the first non-option.
//!
//! Options are kept in argv order, because kexec-tools' actions depend on
//! it (`-e -f` is not `-f -e`, kexec/kexec.c main()).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use loader_host::escape;

use clap::CommandFactory;

use crate::args::Args;
use crate::kexec_tools::{Build, BUILDS};

/// One option as getopt knows it.
#[derive(Debug, Clone)]
struct OptSpec {
    /// The clap id (the `Args` field name).
    id: String,
    /// Every long name (the option's own first, then its aliases).
    longs: Vec<String>,
    short: Option<char>,
    takes_value: bool,
}

/// The option table, built from the clap definition, and the kexec-tools
/// build whose table a prefix is resolved against first.
#[derive(Debug, Clone)]
pub struct Table {
    opts: Vec<OptSpec>,
    /// The build's long options in its table order (all builds' when the
    /// machine has none), so that rkexec's own and other architectures'
    /// options never make a prefix ambiguous that this build accepts.
    first: Vec<&'static str>,
}

impl Table {
    /// The table for the machine rkexec runs on (kexec_tools::Build::running).
    pub fn from_clap() -> Table {
        Table::for_build(Build::running())
    }

    /// The table kexec-tools' `build` (None: every build alike) scans with.
    pub fn for_build(build: Option<&Build>) -> Table {
        let cmd = Args::command();
        let opts = cmd
            .get_arguments()
            .filter(|a| !a.is_positional())
            .map(|a| {
                let mut longs: Vec<String> = a.get_long().map(str::to_string).into_iter().collect();
                longs.extend(a.get_all_aliases().unwrap_or_default().into_iter().map(str::to_string));
                OptSpec {
                    id: a.get_id().to_string(),
                    longs,
                    short: a.get_short(),
                    takes_value: a.get_action().takes_values(),
                }
            })
            .collect();
        let first = match build {
            Some(b) => b.long.to_vec(),
            None => {
                let mut all: Vec<&'static str> = Vec::new();
                for n in BUILDS.iter().flat_map(|b| b.long.iter()) {
                    if !all.contains(n) {
                        all.push(n);
                    }
                }
                all
            }
        };
        Table { opts, first }
    }

    fn by_short(&self, c: char) -> Option<&OptSpec> {
        self.opts.iter().find(|o| o.short == Some(c))
    }

    /// The canonical long name of clap id `id`.
    pub fn long_of(&self, id: &str) -> Option<&str> {
        self.opts.iter().find(|o| o.id == id).and_then(|o| o.longs.first()).map(String::as_str)
    }

    /// Every long name and its option, for prefix resolution.
    fn names(&self) -> impl Iterator<Item = (&str, &OptSpec)> {
        self.opts.iter().flat_map(|o| o.longs.iter().map(move |l| (l.as_str(), o)))
    }

    /// Resolve `--name` (glibc getopt_long: exact match, else the options
    /// whose names start with `name`; several names of one option count
    /// once). The running kexec-tools build's names are tried first, as
    /// its getopt_long sees only them (kexec/kexec.c main(): `--a` is
    /// --append on arm64, ambiguous on x86_64), then rkexec's own and the
    /// other builds'.
    fn resolve_long(&self, name: &str) -> Result<&OptSpec, GetoptError> {
        if let Some((_, o)) = self.names().find(|(l, _)| *l == name) {
            return Ok(o);
        }
        for tier in [true, false] {
            let mut hits: Vec<(&str, &OptSpec)> =
                self.names().filter(|(l, _)| self.first.contains(l) == tier && l.starts_with(name)).collect();
            let mut ids: Vec<&str> = hits.iter().map(|(_, o)| o.id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            match ids.len() {
                0 => continue,
                1 => return Ok(hits[0].1),
                _ => {
                    // glibc lists them in table order: the build's order.
                    hits.sort_by_key(|(l, _)| (self.first.iter().position(|k| k == l), *l));
                    return Err(GetoptError::Ambiguous {
                        name: name.to_string(),
                        candidates: hits.iter().map(|(l, _)| l.to_string()).collect(),
                    });
                }
            }
        }
        Err(GetoptError::Unrecognized(format!("--{name}")))
    }
}

/// One option occurrence, in argv order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The clap id (`Args` field).
    pub id: String,
    /// Bytes as given (a file name, a command line).
    pub value: Option<OsString>,
    /// A long option's argv word as written (`--dt=x`, `--dtb`), for
    /// glibc's messages about it; None for a short one.
    pub word: Option<OsString>,
}

/// argv after getopt: options in order, then the non-option words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    pub opts: Vec<Opt>,
    pub operands: Vec<OsString>,
}

/// getopt's complaints, worded as glibc words them (kexec-tools lets
/// getopt print them, then prints its usage and exits 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetoptError {
    Unrecognized(String),
    InvalidShort(char),
    Ambiguous {
        name: String,
        candidates: Vec<String>,
    },
    LongNeedsValue(String),
    ShortNeedsValue(char),
    LongTakesNoValue(String),
    /// `-?`: kexec-tools' short string has '?', which its main() treats as
    /// an error (usage, exit 1) without a message.
    QuestionMark,
}

impl fmt::Display for GetoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unrecognized(o) => write!(f, "unrecognized option '{o}'"),
            Self::InvalidShort(c) => write!(f, "invalid option -- '{c}'"),
            Self::Ambiguous { name, candidates } => {
                write!(f, "option '--{name}' is ambiguous; possibilities:")?;
                for c in candidates {
                    write!(f, " '--{c}'")?;
                }
                Ok(())
            }
            Self::LongNeedsValue(n) => write!(f, "option '--{n}' requires an argument"),
            Self::ShortNeedsValue(c) => write!(f, "option requires an argument -- '{c}'"),
            Self::LongTakesNoValue(n) => write!(f, "option '--{n}' doesn't allow an argument"),
            Self::QuestionMark => write!(f, "-?"),
        }
    }
}

/// Scan `argv` (without `argv[0]`). On an error, the options before it come
/// back too: kexec-tools acts on each option as getopt returns it, so a
/// `--help` before the bad option still wins. The words are bytes, as
/// glibc's getopt reads C strings: option names are ASCII, and values and
/// operands (file names, the command line) stay exactly as given.
pub fn scan(table: &Table, argv: &[OsString], posixly_correct: bool) -> Result<Scanned, (Scanned, GetoptError)> {
    let mut out = Scanned::default();
    match scan_into(table, argv, posixly_correct, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => Err((out, e)),
    }
}

fn os(b: &[u8]) -> OsString {
    OsStr::from_bytes(b).to_os_string()
}

fn scan_into(table: &Table, argv: &[OsString], posixly_correct: bool, out: &mut Scanned) -> Result<(), GetoptError> {
    let mut i = 0;
    while i < argv.len() {
        let word = &argv[i];
        let w = word.as_bytes();
        i += 1;
        if w == b"--" {
            out.operands.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(body) = w.strip_prefix(b"--") {
            let (name, inline) = match body.iter().position(|&b| b == b'=') {
                Some(at) => (&body[..at], Some(os(&body[at + 1..]))),
                None => (body, None),
            };
            // Every option name is ASCII: a name that is not UTF-8 names none.
            let Ok(name) = std::str::from_utf8(name) else {
                return Err(GetoptError::Unrecognized(format!("--{}", escape::bytes(name))));
            };
            let spec = table.resolve_long(name)?;
            let shown = spec.longs.iter().find(|l| l.starts_with(name)).cloned().unwrap_or_else(|| name.to_string());
            let value = match (spec.takes_value, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => {
                    let v = argv.get(i).cloned().ok_or(GetoptError::LongNeedsValue(shown))?;
                    i += 1;
                    Some(v)
                }
                (false, Some(_)) => return Err(GetoptError::LongTakesNoValue(shown)),
                (false, None) => None,
            };
            out.opts.push(Opt { id: spec.id.clone(), value, word: Some(word.clone()) });
            continue;
        }
        if w.len() > 1 && w[0] == b'-' {
            // glibc scans a cluster byte by byte; a byte that is not ASCII
            // is no option letter.
            let mut k = 1;
            while k < w.len() {
                let b = w[k];
                k += 1;
                let c = if b.is_ascii() { char::from(b) } else { char::REPLACEMENT_CHARACTER };
                if c == '?' {
                    return Err(GetoptError::QuestionMark);
                }
                let spec = table.by_short(c).ok_or(GetoptError::InvalidShort(c))?;
                if spec.takes_value {
                    let value = if k < w.len() {
                        os(&w[k..])
                    } else {
                        let v = argv.get(i).cloned().ok_or(GetoptError::ShortNeedsValue(c))?;
                        i += 1;
                        v
                    };
                    out.opts.push(Opt { id: spec.id.clone(), value: Some(value), word: None });
                    break;
                }
                out.opts.push(Opt { id: spec.id.clone(), value: None, word: None });
            }
            continue;
        }
        // A non-option word ("-" alone is one too).
        out.operands.push(word.clone());
        if posixly_correct {
            out.operands.extend(argv[i..].iter().cloned());
            break;
        }
    }
    Ok(())
}

/// The canonical argv clap parses: `--long[=value]` per option in order,
/// then `--` and the operands (values and operands byte for byte).
pub fn canonical(table: &Table, scanned: &Scanned) -> Vec<OsString> {
    let mut v = vec![OsString::from("rkexec")];
    for o in &scanned.opts {
        let long = table.long_of(&o.id).unwrap_or(&o.id);
        let mut word = OsString::from(format!("--{long}"));
        if let Some(val) = &o.value {
            word.push("=");
            word.push(val);
        }
        v.push(word);
    }
    v.push("--".into());
    v.extend(scanned.operands.iter().cloned());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86() -> Table {
        Table::for_build(Build::for_arch("x86_64"))
    }

    fn scan_with(t: &Table, words: &[&str]) -> Result<Scanned, GetoptError> {
        let argv: Vec<OsString> = words.iter().map(OsString::from).collect();
        scan(t, &argv, false).map_err(|(_, e)| e)
    }

    fn s(words: &[&str]) -> Result<Scanned, GetoptError> {
        scan_with(&x86(), words)
    }

    fn ids(sc: &Scanned) -> Vec<(String, Option<String>)> {
        sc.opts.iter().map(|o| (o.id.clone(), o.value.as_ref().map(|v| v.to_str().unwrap().to_string()))).collect()
    }

    fn o(id: &str, v: Option<&str>) -> (String, Option<String>) {
        (id.to_string(), v.map(str::to_string))
    }

    #[test]
    fn permutation_and_both_value_forms() {
        let sc = s(&["K", "--append", "-x a", "--initrd=I", "-l"]).unwrap();
        assert_eq!(sc.operands, ["K"]);
        assert_eq!(ids(&sc), [o("append", Some("-x a")), o("initrd", Some("I")), o("load", None)]);
    }

    #[test]
    fn prefixes_exact_names_and_ambiguity() {
        assert_eq!(ids(&s(&["--vers"]).unwrap()), [o("version", None)]);
        assert_eq!(ids(&s(&["--comm=x"]).unwrap()), [o("append", Some("x"))], "--command-line is --append");
        assert_eq!(ids(&s(&["--app=x"]).unwrap()), [o("append", Some("x"))]);
        assert_eq!(ids(&s(&["--load"]).unwrap()), [o("load", None)], "an exact name beats longer ones");
        assert_eq!(ids(&s(&["--deb"]).unwrap()), [o("debug", None)], "rkexec's --debug-hash-excluded does not count");
        assert_eq!(ids(&s(&["--dry"]).unwrap()), [o("dry_run", None)], "rkexec's own options have prefixes too");
        let e = s(&["--load-p"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option '--load-p' is ambiguous; possibilities: '--load-preserve-context' '--load-panic'"
        );
        assert_eq!(s(&["--bogus"]).unwrap_err().to_string(), "unrecognized option '--bogus'");
    }

    /// issue 21 item 7: kexec-tools' arm64 build (kexec/arch/arm64/include/
    /// arch/options.h) has one option for each of these prefixes; the x86
    /// options rkexec also accepts must not make them ambiguous there.
    #[test]
    fn prefixes_resolve_against_the_running_builds_table() {
        let arm64 = Table::for_build(Build::for_arch("arm64"));
        for (prefix, id) in [
            ("--a", "append"),
            ("--c", "append"),
            ("--co", "append"),
            ("--en", "entry"),
            ("--ent", "entry"),
            ("--entr", "entry"),
            ("--p", "print_ckr_size"),
            ("--reuse-", "reuse_cmdline"),
            ("--se", "serial"),
            ("--ser", "serial"),
            ("--seri", "serial"),
            ("--seria", "serial"),
        ] {
            let word =
                if id == "append" || id == "entry" || id == "serial" { format!("{prefix}=1") } else { prefix.into() };
            let sc = scan_with(&arm64, &[word.as_str()]).unwrap_or_else(|e| panic!("{prefix} on arm64: {e}"));
            assert_eq!(sc.opts[0].id, id, "{prefix} on arm64");
            // The x86_64 build has two candidates for each.
            assert!(
                matches!(s(&[word.as_str()]), Err(GetoptError::Ambiguous { .. })),
                "{prefix} is ambiguous in kexec-tools' x86_64 table"
            );
        }
        // Options of the x86 build still work on arm64 by their full names
        // and unambiguous prefixes (rkexec accepts every build's options).
        assert_eq!(scan_with(&arm64, &["--console-s"]).unwrap().opts[0].id, "console_serial");
        // arm64's own ambiguity is kexec-tools' too, in its table order.
        assert_eq!(
            scan_with(&arm64, &["--d"]).unwrap_err().to_string(),
            "option '--d' is ambiguous; possibilities: '--debug' '--dtb'"
        );
    }

    #[test]
    fn short_clusters_values_and_errors() {
        assert_eq!(ids(&s(&["-su"]).unwrap()), [o("kexec_file_syscall", None), o("unload", None)]);
        assert_eq!(ids(&s(&["-ltbzImage", "K"]).unwrap()), [o("load", None), o("kernel_type", Some("bzImage"))]);
        assert_eq!(ids(&s(&["-t", "-x"]).unwrap()), [o("kernel_type", Some("-x"))]);
        assert_eq!(s(&["-t"]).unwrap_err().to_string(), "option requires an argument -- 't'");
        assert_eq!(s(&["-z"]).unwrap_err().to_string(), "invalid option -- 'z'");
        assert_eq!(s(&["-?"]).unwrap_err(), GetoptError::QuestionMark);
    }

    #[test]
    fn value_rules() {
        assert_eq!(ids(&s(&["--mem-min", "-h"]).unwrap()), [o("mem_min", Some("-h"))], "the next word, even -h");
        assert_eq!(ids(&s(&["--append="]).unwrap()), [o("append", Some(""))]);
        assert_eq!(s(&["--status=1"]).unwrap_err().to_string(), "option '--status' doesn't allow an argument");
        assert_eq!(s(&["--initrd"]).unwrap_err().to_string(), "option '--initrd' requires an argument");
    }

    #[test]
    fn double_dash_and_posixly_correct() {
        let sc = s(&["-l", "--", "-weird-name", "--append=x"]).unwrap();
        assert_eq!(sc.operands, ["-weird-name", "--append=x"]);
        let argv: Vec<OsString> = ["K", "-l"].iter().map(OsString::from).collect();
        let sc = scan(&x86(), &argv, true).unwrap();
        assert_eq!(sc.operands, ["K", "-l"]);
        assert!(sc.opts.is_empty());
    }

    #[test]
    fn every_kexec_tools_option_is_in_the_table() {
        let t = x86();
        for b in BUILDS {
            for name in b.long {
                assert!(t.names().any(|(l, _)| l == *name), "--{name} of the {} build missing", b.dir);
            }
        }
        for c in crate::kexec_tools::SHORT.chars().filter(|c| *c != ':' && *c != '?') {
            assert!(t.by_short(c).is_some(), "-{c} missing");
        }
    }

    /// issue 21 item 3: values and operands are bytes, kept exactly
    /// (glibc's getopt and kexec-tools take C strings).
    #[test]
    fn bytes_that_are_not_utf8_pass_through() {
        let t = x86();
        let argv: Vec<OsString> = [&b"/boot/k\xff"[..], b"--append=a=\xfe\n", b"--initrd", b"i\x80", b"-tx\xc3"]
            .iter()
            .map(|w| os(w))
            .collect();
        let sc = scan(&t, &argv, false).unwrap();
        assert_eq!(sc.operands, [os(b"/boot/k\xff")]);
        let vals: Vec<_> = sc.opts.iter().map(|o| (o.id.as_str(), o.value.clone().unwrap())).collect();
        assert_eq!(vals, [("append", os(b"a=\xfe\n")), ("initrd", os(b"i\x80")), ("kernel_type", os(b"x\xc3"))]);
        assert_eq!(
            canonical(&t, &sc),
            [
                os(b"rkexec"),
                os(b"--append=a=\xfe\n"),
                os(b"--initrd=i\x80"),
                os(b"--type=x\xc3"),
                os(b"--"),
                os(b"/boot/k\xff")
            ]
        );
        // A long name that is not UTF-8 is no option, printed escaped.
        let e = scan(&t, &[os(b"--app\xffend")], false).unwrap_err().1;
        assert_eq!(e.to_string(), "unrecognized option '--app\\xffend'");
        assert_eq!(scan(&t, &[os(b"-\xff")], false).unwrap_err().1, GetoptError::InvalidShort('\u{fffd}'));
    }

    #[test]
    fn canonical_form_round_trips_values() {
        let t = x86();
        let sc = s(&["K", "--command-line", "-a b", "-s", "-s"]).unwrap();
        assert_eq!(
            canonical(&t, &sc),
            ["rkexec", "--append=-a b", "--kexec-file-syscall", "--kexec-file-syscall", "--", "K"]
        );
    }
}
