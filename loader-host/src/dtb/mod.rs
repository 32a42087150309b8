//! Device tree blobs handed to the next kernel by the architectures that
//! boot with one: `edit` parses, edits and serialises a blob (dtoolkit, with `lenient` for
//! blobs whose names break the spec), `handover` knows which facts the
//! loader reads and which edits a kexec'd kernel needs.

pub mod edit;
pub mod handover;
pub mod header_check;
mod lenient;
