//! `cluster.preloadImages`: only files that are image bundles by their content are accepted, so a
//! hostile inventory cannot have kubestrap upload `~/.aws/credentials` to every host.

use std::io::Read;
use std::path::Path;

/// What a bundle file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bundle {
    Tar,
    GzipTar,
    Zstd,
}

/// A 512-byte tar header: POSIX/GNU `ustar` magic at offset 257, or a pre-POSIX header with a
/// file name; either way the checksum (the header's bytes, the checksum field counted as spaces)
/// must match the octal number stored at offset 148.
pub(crate) fn is_tar_header(h: &[u8]) -> bool {
    if h.len() < 512 {
        return false;
    }
    let h = &h[..512];
    let field = &h[148..156];
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let digits = field[start..]
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(*b))
        .count();
    let rest = &field[start + digits..];
    if digits == 0 || !rest.iter().all(|&b| b == 0 || b == b' ') {
        return false;
    }
    let text = std::str::from_utf8(&field[start..start + digits]).unwrap_or("");
    let Ok(stored) = u32::from_str_radix(text, 8) else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    if sum != stored {
        return false;
    }
    let ustar = &h[257..263] == b"ustar\0" || &h[257..265] == b"ustar  \0";
    // A pre-POSIX header: a name, and a type flag tar knows.
    let old = h[0] != 0 && matches!(h[156], 0 | b'0'..=b'7');
    ustar || old
}

/// Read up to `n` bytes (fewer only at the end of the file).
fn head(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// What `file` (a regular file) holds, judged by its first bytes.
pub(crate) fn sniff(file: &Path) -> Result<Bundle, String> {
    let mut f = std::fs::File::open(file).map_err(|e| format!("cannot read it: {e}"))?;
    let start = head(&mut f, 512).map_err(|e| format!("cannot read it: {e}"))?;
    if start.starts_with(&[0x1f, 0x8b, 0x08]) {
        // gzip: the first 512 bytes inside must be a tar header too.
        let gz = std::fs::File::open(file).map_err(|e| format!("cannot read it: {e}"))?;
        let inner = head(&mut flate2::read::GzDecoder::new(gz), 512)
            .map_err(|e| format!("it starts like gzip but does not decompress ({e})"))?;
        return if is_tar_header(&inner) {
            Ok(Bundle::GzipTar)
        } else {
            Err("it is gzip-compressed, but not a compressed tar archive".into())
        };
    }
    if start.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Bundle::Zstd);
    }
    if is_tar_header(&start) {
        return Ok(Bundle::Tar);
    }
    Err(if start.len() < 512 {
        format!("it has {} bytes, less than one tar header", start.len())
    } else {
        "it is neither a tar archive nor a gzip or zstd-compressed one".into()
    })
}

/// An OCI image layout directory (`oci-layout` and `index.json` in it).
pub(crate) fn is_oci_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file() && dir.join("index.json").is_file()
}

/// The bundle's file name becomes a file name under /var/cache/kubestrap/images on every host.
pub(crate) fn file_name_problem(name: &str) -> Option<char> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
        .or_else(|| {
            name.starts_with(['.', '-'])
                .then(|| name.chars().next().unwrap())
        })
}
