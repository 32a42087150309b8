//! The `fdt` crate 0.2.0-alpha3 against the purgatory's needs
//! (docs/fdt-crate-evaluation.md): what it does with the blobs that made
//! 0.1.5 panic, the minimized findings of the `fdt_crate` fuzz target (each
//! still panics, at the site named), and where a well-formed blob reads
//! differently from `kexec_purgatory::fdt`, our walker.
//!
//! Run: `cd fuzz && RKEXEC_PREBUILT_BARE_METAL=1 cargo +nightly test --test
//! fdt_crate` (after `cargo build -p loader-host --lib`, as scripts/fuzz.sh).
//! The sites are those of a build with overflow checks (debug, and the fuzz
//! build); a release build wraps instead, where noted.

use std::cell::RefCell;
use std::panic::{catch_unwind, UnwindSafe};
use std::sync::Once;

use fdt_alpha::Fdt;
use kexec_purgatory::fdt::{self as ours, FdtError};
use rkexec_fuzz::fdt_crate::{known, walk_both};

thread_local!(static SITE: RefCell<Option<String>> = const { RefCell::new(None) });

/// Where `f` panicked: `src/FILE:LINE` inside the crate (or the caller's
/// file when the crate's `#[track_caller]` points there), and the message.
fn panic_site(f: impl FnOnce() + UnwindSafe) -> Option<(String, String)> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let file = info.location().map(|l| {
                let f = l.file();
                let f = f.rsplit_once("fdt-0.2.0-alpha3/").map_or(f, |(_, rest)| rest);
                format!("{f}:{}", l.line())
            });
            let p = info.payload();
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            SITE.with(|s| *s.borrow_mut() = Some(format!("{}\n{}", file.unwrap_or_default(), msg.unwrap_or_default())));
        }))
    });
    SITE.with(|s| *s.borrow_mut() = None);
    catch_unwind(f).err()?;
    let site = SITE.with(|s| s.borrow_mut().take()).expect("the hook saw the panic");
    let (file, msg) = site.split_once('\n').expect("two lines");
    Some((file.to_string(), msg.to_string()))
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The blob as the aligned parser takes it (zero-padded to whole words).
fn words(blob: &[u8]) -> Vec<u32> {
    blob.chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_ne_bytes(w)
        })
        .collect()
}

/// Header (§5.2), empty reservation map at 40, the structure block
/// `words` at 56, the strings block after it.
fn with_struct(words: &[u32], strings: &[u8]) -> Vec<u8> {
    let mut s: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    let off_strings = 56 + s.len();
    let total = off_strings + strings.len();
    let mut b = Vec::new();
    for v in [0xd00d_feed, total as u32, 56, off_strings as u32, 40, 17, 16, 0, strings.len() as u32, s.len() as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&[0; 16]);
    b.append(&mut s);
    b.extend_from_slice(strings);
    b
}

/// fdt 0.1.5's panics (docs/upstream/fdt-0.1.5-panics.md; the same hex
/// as purgatory::fdt::tests::what_panics_the_fdt_crate_is_refused_or_read).
/// In 0.2.0-alpha3's no-panic mode (`new_unaligned_fallible`/`new_fallible`)
/// none panics through the whole walk; its panic mode (`new_unaligned`, the
/// API 0.1.5 had) unwraps the parse error of five, by design.
#[test]
fn the_blobs_that_panicked_0_1_5_do_not_panic_the_no_panic_mode() {
    const HEAD: &str = "d00dfeed";
    // (0.1.5's site, rest of the hex, our verdict, 0.2.0-alpha3's panic mode panics)
    let cases: [(&str, &str, Result<(), FdtError>, bool); 12] = [
        ("control", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300000004000000000000000100000002000000096100", Ok(()), false),
        ("lib.rs:413", "0000005a00000038000000580000002800000011000000100000000000000002000010200000000000000000000000000000000000000001000000000000000300000004000000000000000100000002000000096100", Err(FdtError::Blocks), false),
        ("lib.rs:409", "0000005a00000038000000580000002800000011000000100000000000001002000000200000000000000000000000000000000000000001000000000000000300000004000000000000000100000002000000096100", Err(FdtError::Blocks), false),
        ("lib.rs:401 nameoff", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300000004000000640000000000000002000000096100", Err(FdtError::PropName), false),
        ("lib.rs:401 no NUL", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300000004000000000000000000000002000000096162", Err(FdtError::PropName), false),
        ("lib.rs:405", "0000005a0000003800000058000000280000001100000010000000000000000200000020000000000000000000000000000000000000000100000000000000030000000400000000000000000000000200000009ff00", Ok(()), false),
        ("node.rs:508", "0000005a00000038000000580000002800000011000000100000000000000002000000200000000000000000000000000000000000000001000000000000000300001000000000000000000000000002000000096100", Err(FdtError::PropValue), true),
        ("node.rs:505", "00000046000000380000004400000028000000110000001000000000000000020000000c000000000000000000000000000000000000000100000000000000036100", Err(FdtError::Truncated), true),
        ("node.rs:426 no NUL", "000000400000003800000040000000280000001100000010000000000000000000000008000000000000000000000000000000000000000161626364", Err(FdtError::NodeName), true),
        ("node.rs:426 not UTF-8", "00000054000000380000005400000028000000110000001000000000000000000000001c00000000000000000000000000000000000000010000000000000001ff000000000000020000000200000009", Ok(()), false),
        ("node.rs:408/448", "0000004c000000380000004c000000280000001100000010000000000000000000000014000000000000000000000000000000000000000200000001000000000000000200000009", Err(FdtError::Nesting), true),
        ("node.rs:472", "0000004c000000380000004c000000280000001100000010000000000000000000000014000000000000000000000000000000000000000100000000000000016300000000000009", Err(FdtError::Nesting), true),
    ];
    for (site, rest, verdict, panic_mode_panics) in cases {
        let blob = hex(&format!("{HEAD}{rest}"));
        assert_eq!(ours::check(&blob), verdict, "{site}");
        assert_eq!(panic_site(|| drop(walk_both(&blob))), None, "{site}: the no-panic mode panicked");
        let panic_mode = panic_site(|| {
            if let Ok(fdt) = Fdt::new_unaligned(&blob) {
                for (_, n) in fdt.root().all_nodes() {
                    n.properties().iter().for_each(drop);
                    n.children().iter().for_each(drop);
                }
            }
        });
        assert_eq!(panic_mode.is_some(), panic_mode_panics, "{site}: panic mode {panic_mode:?}");
        if let Some((_, msg)) = panic_mode {
            assert!(msg.starts_with("called `Result::unwrap()` on an `Err` value: ParseError"), "{site}: {msg}");
        }
    }
    // 0.1.5's node.rs:433 (64 levels): no panic; see all_nodes_ends_silently_below_depth_15.
    assert_eq!(panic_site(|| drop(walk_both(&nested(64, &[])))), None);
}

/// Root, then nodes named "a" down to `depth` (the root is depth 1), then
/// the siblings `after` of the outermost "a" (name, kaslr-seed byte).
fn nested(depth: usize, after: &[(&str, u8)]) -> Vec<u8> {
    let mut w = vec![1, 0];
    for _ in 1..depth {
        w.extend([1, 0x6100_0000]);
    }
    w.extend(std::iter::repeat_n(2, depth - 1));
    let strings = b"kaslr-seed\0";
    for (name, seed) in after {
        w.push(1);
        let mut n = name.as_bytes().to_vec();
        n.resize((n.len() + 4) & !3, 0);
        w.extend(n.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())));
        w.extend([3, 8, 0, u32::from_ne_bytes([*seed; 4]), u32::from_ne_bytes([*seed; 4]), 2]);
    }
    w.extend([2, 9]);
    with_struct(&w, strings)
}

/// Finding 1 (fuzz: 15 executions into the campaign): `Fdt::new_unaligned`
/// and `Fdt::new`, hence their no-panic forms, add `off_dt_strings +
/// size_dt_strings` and `off_dt_struct + size_dt_struct` as `u32`. A header
/// alone (40 bytes) is enough. With overflow checks both panic on the sum;
/// without (release), the unaligned one slices at the wrapped offset and
/// panics there, the aligned one (`.get`) refuses the blob. Our header
/// check refuses these blobs (`Blocks`): behind it the crate never sees
/// them.
#[test]
fn finding_1_header_offset_plus_size_overflows() {
    // (offset word, size word, unaligned site, aligned site, release unaligned site)
    let cases = [
        (3, 8, "src/lib.rs:230", "src/lib.rs:272", "src/lib.rs:236"),
        (2, 9, "src/lib.rs:231", "src/lib.rs:273", "src/lib.rs:237"),
    ];
    for (off, size, unaligned, aligned, unaligned_wrapped) in cases {
        let mut h = [0xd00d_feed, 40, 40, 40, 40, 17, 16, 0, 0, 0];
        h[off] = u32::MAX;
        h[size] = 1;
        let blob: Vec<u8> = h.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert!(known::header_sum_overflows(&blob));
        assert_eq!(ours::header(&blob).err(), Some(FdtError::Blocks));
        let w = words(&blob);
        let unaligned_site = panic_site(|| drop(Fdt::new_unaligned_fallible(&blob)));
        let aligned_site = panic_site(|| drop(Fdt::new_fallible(&w)));
        if cfg!(debug_assertions) {
            let overflow = "attempt to add with overflow".to_string();
            assert_eq!(unaligned_site, Some((unaligned.to_string(), overflow.clone())));
            assert_eq!(aligned_site, Some((aligned.to_string(), overflow)));
        } else {
            let out_of_range = "range start index 4294967295 out of range for slice of length 40".to_string();
            assert_eq!(unaligned_site, Some((unaligned_wrapped.to_string(), out_of_range)));
            assert_eq!(aligned_site, None);
        }
    }
    // The fuzzer's own reproducer after `cargo fuzz tmin` (37 bytes: short
    // of a header for the unaligned parser, whole once padded).
    let tmin = hex("d00dfeed00a600858585858585858585858585850000000100000000858585858500000000");
    assert!(known::header_sum_overflows(&[tmin.as_slice(), &[0; 3]].concat()));
    let w = words(&tmin);
    let site = panic_site(|| drop(Fdt::new_fallible(&w))).map(|s| s.0);
    assert_eq!(site, cfg!(debug_assertions).then(|| "src/lib.rs:272".to_string()));
}

/// Finding 2 (a timeout of the campaign, 7555 bytes: the QEMU virt seed
/// mutated): when `parse_node` fails on a child, `NodeChildren::advance`
/// (nodes.rs:609-616) returns the error without moving on, so the
/// iterator yields that `Err` forever; `Cpus::iter` and the topology's
/// iterators are built on it. A caller that skips errors (`.flatten()`,
/// `.filter_map(Result::ok)`) never returns: in the purgatory, a hang. The
/// smallest case: an FDT_END token inside a child (`parse_node`:
/// `InvalidTokenValue`). Our walker refuses it (`Nesting`).
#[test]
fn finding_2_children_repeat_their_error_forever() {
    use fdt_alpha::nodes::AsNode;
    // root { a { FDT_END }; }; FDT_END
    let blob = with_struct(&[1, 0, 1, 0x6100_0000, 9, 2, 2, 9], b"");
    assert_eq!(ours::check(&blob), Err(FdtError::Nesting));
    let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
    let root = fdt.root().unwrap();
    let children = root.as_node().children().unwrap();
    let errors = children.iter().take(10_000).filter(|c| c.is_err()).count();
    assert_eq!(errors, 10_000, "the iterator moved past its error");
}

/// Finding 4 (a timeout of the campaign, 498 bytes: the /chosen seed
/// with its first property token turned into FDT_END): when a node's next
/// token is neither a property nor a node boundary, `NodeProperties::advance`
/// (nodes.rs:464-471) returns `UnexpectedToken` without moving on, so the
/// properties iterator yields it forever, and the crate's own
/// `Chosen::bootargs` (chosen.rs:32: `.into_iter().flatten()`) never
/// returns. Our walker refuses the blob (`Nesting`).
#[test]
fn finding_4_bootargs_never_returns() {
    // root { chosen { FDT_END }; }; FDT_END
    let blob = with_struct(&[1, 0, 1, u32::from_be_bytes(*b"chos"), u32::from_be_bytes(*b"en\0\0"), 9, 2, 2, 9], b"");
    assert_eq!(ours::check(&blob), Err(FdtError::Nesting));
    let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
    let root = fdt.root().unwrap();
    let node = root.find_node("/chosen").unwrap().unwrap();
    let errors = node.properties().unwrap().iter().take(10_000).filter(|p| p.is_err()).count();
    assert_eq!(errors, 10_000, "the iterator moved past its error");
    assert!(!known::properties_read_cleanly(node, 10_000));
    // `bootargs` spins; the thread is left to it until the test binary exits.
    let (done, finished) = std::sync::mpsc::channel();
    let owned = blob.clone();
    std::thread::spawn(move || {
        let fdt = Fdt::new_unaligned_fallible(&owned).unwrap();
        let _ = fdt.root().unwrap().chosen().unwrap().bootargs();
        let _ = done.send(());
    });
    let waited = finished.recv_timeout(std::time::Duration::from_secs(2));
    assert_eq!(waited, Err(std::sync::mpsc::RecvTimeoutError::Timeout), "bootargs returned");
}

/// Finding 3 (fuzz, 150 k executions into the hunt; `cargo fuzz tmin`
/// left 825 of its 828 bytes, this is the same shape by hand): a structure
/// block of one FDT_BEGIN_NODE. `Parser::parse_root`, where `Fdt::root` and
/// every lookup start, takes `byte_data.len() - 4` of the 0 bytes after
/// it (release: wraps, and `.get` refuses the block). Our walker refuses it
/// (`NodeName`: the root's name is missing).
#[test]
fn finding_3_root_token_alone_underflows() {
    let blob = with_struct(&[1], b"");
    assert_eq!(ours::check(&blob), Err(FdtError::NodeName));
    let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
    assert!(known::root_token_ends_the_block(fdt.structs_block()));
    let site = panic_site(|| {
        let _ = fdt.root();
    });
    let expected = ("src/parsing.rs:344".to_string(), "attempt to subtract with overflow".to_string());
    assert_eq!(site, cfg!(debug_assertions).then_some(expected.clone()));
    let w = words(&blob);
    let fdt = Fdt::new_fallible(&w).unwrap();
    assert_eq!(
        panic_site(|| {
            let _ = fdt.root();
        }),
        cfg!(debug_assertions).then_some(expected)
    );
    // NOPs first, or a stray byte after the token: the same.
    for words in [&[4, 4, 1][..], &[1, 0x0100_0000]] {
        let mut blob = with_struct(words, b"");
        if words.len() == 2 {
            // size_dt_struct 5: the token and one byte
            blob[36..40].copy_from_slice(&5u32.to_be_bytes());
        }
        let fdt = Fdt::new_unaligned_fallible(&blob).unwrap();
        assert!(known::root_token_ends_the_block(fdt.structs_block()));
        assert_eq!(
            panic_site(|| {
                let _ = fdt.root();
            })
            .is_some(),
            cfg!(debug_assertions),
            "{words:x?}"
        );
    }
}

/// Not a panic: `Root::all_nodes` keeps 16 parents and ends the iteration
/// (`None`, no error) at the first node 16 deep. Everything after it is
/// invisible, /chosen included, to `find_node` and `Root::chosen` too.
/// Our walker reads the tree (Linux unflattens 64 levels).
#[test]
fn all_nodes_ends_silently_below_depth_15() {
    let blob = nested(17, &[("chosen", 0x11)]);
    assert_eq!(ours::check(&blob), Ok(()));
    let (chosen, [seed]) = ours::chosen_props(&blob, ["kaslr-seed"]).unwrap();
    assert!(chosen && seed.is_some());
    let seen = walk_both(&blob);
    assert_eq!(seen.nodes.len(), 15, "{:?}", seen.nodes);
    assert!(!seen.nodes_error);
    assert!(!seen.chosen && seen.seeds == [None, None]);
    // Up to 15 levels the same tree reads whole.
    let seen = walk_both(&nested(16, &[("chosen", 0x11)]));
    assert!(seen.chosen && seen.seeds[0].is_some());
}

/// Not a panic: `find_node("/chosen")` (and so `Root::chosen`) takes the
/// first node named "chosen" at depth 1 *or deeper*: /a/chosen before
/// /chosen wins. Linux (libfdt's fdt_path_offset) and our walker take
/// /chosen: the purgatory would refresh seeds the kernel never reads.
#[test]
fn find_node_takes_a_deeper_chosen_first() {
    let mut w = vec![1, 0, 1, 0x6100_0000];
    // /a/chosen { kaslr-seed = 0x11.. }, then /chosen { kaslr-seed = 0x22.. }
    for (seed, close_a) in [(0x11u8, true), (0x22, false)] {
        w.extend([1, u32::from_be_bytes(*b"chos"), u32::from_be_bytes(*b"en\0\0")]);
        w.extend([3, 8, 0, u32::from_ne_bytes([seed; 4]), u32::from_ne_bytes([seed; 4]), 2]);
        if close_a {
            w.push(2);
        }
    }
    w.extend([2, 9]);
    let blob = with_struct(&w, b"kaslr-seed\0");
    assert_eq!(ours::check(&blob), Ok(()));
    let (_, [ours_seed]) = ours::chosen_props(&blob, ["kaslr-seed"]).unwrap();
    let ours_seed = ours_seed.unwrap();
    assert_eq!(ours_seed.bytes(&blob), Some(&[0x22; 8][..]));
    let seen = walk_both(&blob);
    let (off, len) = seen.seeds[0].unwrap();
    assert_eq!(&blob[off..off + len], &[0x11; 8]);
}

/// Not a panic: the header rules the crate does not check (`Fdt::new*`
/// checks the magic and that the blocks and `totalsize` fit the slice):
/// version, last_comp_version, alignment, blocks overlapping the header,
/// the memory reservation block (it has no API for it at all).
#[test]
fn header_rules_the_crate_leaves_out() {
    let good = with_struct(&[1, 0, 2, 9], b"");
    assert_eq!(ours::check(&good), Ok(()));
    let set = |i: usize, v: u32| {
        let mut b = good.clone();
        b[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
        b
    };
    let rsv_unterminated = {
        let mut b = good.clone();
        b[40..56].fill(1);
        b
    };
    for (blob, ours_says) in [
        (set(5, 1), FdtError::Version),
        (set(6, 99), FdtError::Version),
        (set(2, 0), FdtError::Blocks),  // structure block over the header
        (set(4, 44), FdtError::Blocks), // reservation map misaligned
        (rsv_unterminated, FdtError::ReservationMap),
    ] {
        assert_eq!(ours::check(&blob), Err(ours_says));
        assert!(Fdt::new_unaligned_fallible(&blob).is_ok(), "{ours_says:?}");
    }
}

/// How the crate reads a blob our walker accepts, next to our reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Reading {
    /// `Fdt::new*` or `Fdt::root` refused it.
    Refused,
    /// The same nodes, depth-first, at the same depths.
    SameTree,
    /// Our nodes up to the first one 16 deep (`all_nodes`' limit), then none.
    Truncated,
    /// A node name that is not UTF-8 (ours compares bytes).
    NameNotUtf8,
    /// Anything else.
    OtherTree,
}

/// The crate's reading of `blob` against ours: the tree, and whether the
/// /chosen seeds (`kaslr-seed`, `rng-seed`) are the same bytes.
fn compare(blob: &[u8]) -> Option<(Reading, bool)> {
    ours::check(blob).ok()?;
    // Ours: every node below the root, depth-first, with the crate's depth
    // numbering (the root's children are 1), names as the crate prints them.
    let mut nodes = Vec::new();
    for t in ours::Walker::new(blob).ok()? {
        if let Ok(ours::Token::BeginNode { name, depth }) = t {
            if depth >= 2 {
                nodes.push((depth - 1, String::from_utf8(name.to_vec()).ok()));
            }
        }
    }
    let (_, [k, r]) = ours::chosen_props(blob, ["kaslr-seed", "rng-seed"]).ok()?;
    let ours_seeds = [k, r].map(|b| b.map(|b| (b.off, b.len)));
    let seen = walk_both(blob);
    let same_seeds = seen.seeds == ours_seeds;
    if !seen.root {
        return Some((Reading::Refused, same_seeds));
    }
    let theirs: Vec<(usize, Option<String>)> =
        seen.nodes.iter().map(|(d, n)| (*d, (n != "?").then(|| n.clone()))).collect();
    let reading = if theirs == nodes {
        Reading::SameTree
    } else if nodes.iter().any(|(_, n)| n.is_none()) {
        Reading::NameNotUtf8
    } else if nodes.get(theirs.len()).is_some_and(|(d, _)| *d >= 16) && nodes.starts_with(&theirs) {
        Reading::Truncated
    } else {
        Reading::OtherTree
    };
    Some((reading, same_seeds))
}

/// The committed seeds (fuzz/corpus/fdt_crate) our walker accepts: the
/// crate reads the same tree and seeds, but for the 63-deep one, which it
/// cuts at depth 15.
#[test]
fn the_seeds_read_as_ours_do_but_the_deep_one() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/fdt_crate");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let mut got = Vec::new();
    for path in names {
        let blob = std::fs::read(&path).unwrap();
        got.push((path.file_name().unwrap().to_string_lossy().into_owned(), compare(&blob)));
    }
    let want = [
        ("chosen-seeds", Some((Reading::SameTree, true))),
        ("chosen-unit-address-first", Some((Reading::SameTree, true))),
        ("minimal", Some((Reading::SameTree, true))),
        ("nested-63", Some((Reading::Truncated, true))),
        ("nested-65", None),
        ("qemu-virt", Some((Reading::SameTree, true))),
    ];
    let want: Vec<_> = want.iter().map(|(n, r)| (n.to_string(), *r)).collect();
    assert_eq!(got, want);
}

/// A census of a campaign corpus (`FDT_CRATE_CORPUS=dir`, e.g.
/// fuzz/target/corpus/fdt_crate): for each blob our walker accepts, how the
/// crate reads it. Prints the counts (docs/fdt-crate-evaluation.md).
#[test]
#[ignore = "needs a corpus: FDT_CRATE_CORPUS=dir"]
fn corpus_census() {
    let dir = std::env::var("FDT_CRATE_CORPUS").expect("FDT_CRATE_CORPUS");
    let mut counts = std::collections::BTreeMap::new();
    let (mut total, mut refused_by_ours) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let blob = std::fs::read(entry.unwrap().path()).unwrap();
        total += 1;
        match compare(&blob) {
            Some(r) => *counts.entry(r).or_insert(0) += 1,
            None => refused_by_ours += 1,
        }
    }
    println!("{total} blobs; our walker refuses {refused_by_ours}; of the rest, (reading, same seeds): {counts:?}");
}

/// A node of [`tree`]: depth below the root, name, properties.
type TreeNode<'a> = (usize, &'a str, &'a [(&'a str, &'a [u8])]);

/// A well-formed tree from `nodes`, depth-first; the root (depth 0) first.
fn tree(nodes: &[TreeNode]) -> Vec<u8> {
    let mut strings: Vec<u8> = Vec::new();
    let mut w: Vec<u32> = Vec::new();
    let mut open = 0usize;
    let pad = |bytes: &[u8], w: &mut Vec<u32>| {
        let mut b = bytes.to_vec();
        b.resize(b.len().div_ceil(4) * 4, 0);
        w.extend(b.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())));
    };
    for (depth, name, props) in nodes {
        while open > *depth {
            w.push(2);
            open -= 1;
        }
        w.push(1);
        pad(&[name.as_bytes(), &[0]].concat(), &mut w);
        open += 1;
        for (p, value) in props.iter() {
            let key = [p.as_bytes(), &[0]].concat();
            let off = strings.windows(key.len()).position(|s| s == key).unwrap_or_else(|| {
                strings.extend_from_slice(&key);
                strings.len() - key.len()
            });
            w.extend([3, value.len() as u32, off as u32]);
            pad(value, &mut w);
        }
    }
    w.extend(std::iter::repeat_n(2, open));
    w.push(9);
    with_struct(&w, &strings)
}

/// Panics on well-formed trees (our walker accepts each, so bounds checks
/// in front of the crate would not stop them), read in the source and
/// confirmed here by hand: reading /memory's `reg` when the root has
/// `#address-cells = <0>` and `#size-cells = <0>` divides by zero
/// (reg.rs:51, `len % (cells * 4)`, release too); the first id of a cpu
/// whose `reg` is shorter than /cpus' `#address-cells` unwraps `None`
/// (cpus.rs:598, `CpuIds::first`, release too; the campaign found it too:
/// finding 5, a mutated QEMU virt tree `cargo fuzz tmin` could not shrink);
/// an empty `bootargs` in /chosen underflows (chosen.rs:35, `len() - 1`;
/// release: slices out of range on the same line).
#[test]
fn well_formed_trees_that_panic_the_crate() {
    let zero = 0u32.to_be_bytes();
    let two = 2u32.to_be_bytes();
    // reg.rs:51
    let cells0 = tree(&[
        (0, "", &[("#address-cells", &zero), ("#size-cells", &zero)]),
        (1, "memory@0", &[("device_type", b"memory\0"), ("reg", &[])]),
    ]);
    assert_eq!(ours::check(&cells0), Ok(()));
    let fdt = Fdt::new_unaligned_fallible(&cells0).unwrap();
    let root = fdt.root().unwrap();
    let memory = root.memory().unwrap();
    let site = panic_site(|| {
        let _ = memory.reg();
    });
    assert_eq!(
        site,
        Some(("src/properties/reg.rs:51".into(), "attempt to calculate the remainder with a divisor of zero".into()))
    );

    // cpus.rs:598
    let short_reg = tree(&[
        (0, "", &[]),
        (1, "cpus", &[("#address-cells", &two), ("#size-cells", &zero)]),
        (2, "cpu@0", &[("device_type", b"cpu\0"), ("reg", &zero)]),
    ]);
    assert_eq!(ours::check(&short_reg), Ok(()));
    let fdt = Fdt::new_unaligned_fallible(&short_reg).unwrap();
    let cpus = fdt.root().unwrap().cpus().unwrap();
    let cpu = cpus.iter().unwrap().next().unwrap().unwrap();
    let ids = cpu.reg::<u64>().unwrap();
    assert!(ids.iter().next().is_none());
    assert!(!known::cpu_ids_first_has_an_id(&ids));
    let site = panic_site(|| {
        let _ = ids.first();
    });
    assert_eq!(site.map(|s| s.0), Some("src/nodes/cpus.rs:598".into()));

    // chosen.rs:35
    let empty_args = tree(&[(0, "", &[]), (1, "chosen", &[("bootargs", &[])])]);
    assert_eq!(ours::check(&empty_args), Ok(()));
    let fdt = Fdt::new_unaligned_fallible(&empty_args).unwrap();
    let chosen = fdt.root().unwrap().chosen().unwrap();
    let site = panic_site(|| {
        let _ = chosen.bootargs();
    });
    let msg = if cfg!(debug_assertions) {
        "attempt to subtract with overflow"
    } else {
        "range end index 18446744073709551615 out of range for slice of length 0"
    };
    assert_eq!(site, Some(("src/nodes/chosen.rs:35".into(), msg.into())));
}
