//! The hashes that pin a run: a file's sha256 and the fingerprint of a
//! value's canonical JSON. A leaf: run folders, study files and the live
//! pair all hash the same way.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// sha256 of a value's canonical JSON text.
pub fn fingerprint(value: &serde_json::Value) -> String {
    hex(&Sha256::digest(value.to_string().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
