//! Recognising password values that are hashes, which must never be handed to libsasl2 as a
//! cleartext `userPassword` (2.1.28's `pwcheck_method: auxprop` compares strings, so the hash
//! itself would become the password).

/// The scheme of a hashed value (`{SSHA}`, `$6$`, ...), or `None` for a cleartext value.
pub fn hash_scheme(value: &[u8]) -> Option<String> {
    // RFC 2307 style `{SCHEME}rest`: a scheme name of letters, digits and . _ -
    if value.first() == Some(&b'{') {
        if let Some(end) = value.iter().position(|&b| b == b'}') {
            let name = &value[1..end];
            if (1..=32).contains(&name.len()) && name.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b)) {
                return Some(format!("{{{}}}", String::from_utf8_lossy(name)));
            }
        }
    }
    // crypt(3) modular formats: $1$ $2a$ $2b$ $2y$ $5$ $6$ $7$ $y$ $gy$ $argon2id$ $sha1$ $md5 ...
    if value.first() == Some(&b'$') {
        let rest = &value[1..];
        if let Some(end) = rest.iter().position(|&b| b == b'$') {
            let id = &rest[..end];
            if (1..=12).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
                return Some(format!("${}$", String::from_utf8_lossy(id)));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::hash_scheme;

    #[test]
    fn recognises_schemes() {
        for (v, s) in [
            ("{SSHA}abcd", "{SSHA}"),
            ("{SHA}abcd", "{SHA}"),
            ("{SMD5}x", "{SMD5}"),
            ("{MD5}x", "{MD5}"),
            ("{CRYPT}$6$salt$hash", "{CRYPT}"),
            ("{PBKDF2-SHA512}10000$a$b", "{PBKDF2-SHA512}"),
            ("{ARGON2}$argon2id$v=19$m=65536", "{ARGON2}"),
            ("$6$salt$hash", "$6$"),
            ("$2b$10$abc", "$2b$"),
            ("$argon2id$v=19", "$argon2id$"),
            ("{x-custom}v", "{x-custom}"),
        ] {
            assert_eq!(hash_scheme(v.as_bytes()).as_deref(), Some(s), "{v}");
        }
    }

    #[test]
    fn cleartext_is_not_a_hash() {
        for v in ["dogood", "", "{", "{}", "{ spaced }x", "$", "$$", "pa$$word", "{unterminated"] {
            assert_eq!(hash_scheme(v.as_bytes()), None, "{v}");
        }
    }
}
