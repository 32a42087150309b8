//! Seed bytes for the new kernel (DTB kaslr-seed/rng-seed, x86
//! SETUP_RNG_SEED) from getrandom(2), without ever blocking a load on an
//! uninitialised CRNG (kdump setups load early in boot). The purgatory mixes
//! in the CPU's own entropy at hand-off where there is some.

use std::fmt;

/// How the seed bytes were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyQuality {
    /// The CRNG was initialised.
    Full,
    /// The CRNG was not yet initialised: GRND_INSECURE bytes rather than a
    /// blocked load.
    Early,
}

/// getrandom(2) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntropyError(pub String);

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "getrandom: {}", self.0)
    }
}

impl std::error::Error for EntropyError {}

fn getrandom_flags(buf: &mut [u8], flags: libc::c_uint) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: writes at most buf.len() - done bytes into buf[done..].
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, flags) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        done += n as usize;
    }
    Ok(())
}

/// Fill `buf` with random bytes (see the module comment for the rule).
pub fn random_bytes(buf: &mut [u8]) -> Result<EntropyQuality, EntropyError> {
    const GRND_INSECURE: libc::c_uint = 0x0004; // Linux 5.6+
    match getrandom_flags(buf, libc::GRND_NONBLOCK) {
        Ok(()) => return Ok(EntropyQuality::Full),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
        Err(e) => return Err(EntropyError(e.to_string())),
    }
    match getrandom_flags(buf, GRND_INSECURE) {
        Ok(()) => Ok(EntropyQuality::Early),
        // Older kernels: wait for the pool after all.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            getrandom_flags(buf, 0).map_err(|e| EntropyError(e.to_string()))?;
            Ok(EntropyQuality::Full)
        }
        Err(e) => Err(EntropyError(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_buffer() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        random_bytes(&mut a).unwrap();
        random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
