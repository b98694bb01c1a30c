//! A wrapper that keeps secrets out of logs, errors and Debug output.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A secret value (API token, key material, a database password). `Debug`
/// and `Display` print `[redacted]`; the value is only reachable through
/// [`Secret::expose`], which makes every use greppable. It deliberately does
/// not implement `Serialize`, so it cannot leak into an API response.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(v: T) -> Self {
        Secret(v)
    }

    /// The secret itself. Call only where it is used (a signature, an
    /// `Authorization` comparison), never to log or format it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// A database URL for logs and errors: the password in the userinfo
/// (`scheme://user:password@host/db` -> `scheme://user:***@host/db`) and
/// the value of any query parameter that carries a secret (`password`,
/// `sslpassword`, `token`, `key`, `secret`, ...: `?password=x` ->
/// `?password=***`) are hidden; the rest (host, database, `sslmode`) stays
/// for diagnosis.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            let mut t = format!("{path}?{}", params.join("&"));
            if let Some(f) = fragment {
                t.push('#');
                t.push_str(f);
            }
            t
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Whether a URL query parameter's name says it carries a secret.
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace(['-', '_'], "");
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// An endpoint URL as it may be shown (logs, errors, metric labels, the
/// API): scheme, host and port only. Userinfo is dropped, and a path or
/// query, where RPC providers put API keys (`/v2/KEY`, `?api-key=KEY`), is
/// replaced by `/***`. `https://u:p@rpc.example/v2/KEY` ->
/// `https://rpc.example/***`; `http://127.0.0.1:8545/` is unchanged.
pub fn redact_endpoint(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => return "[not a URL]".to_owned(),
    };
    let cut = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if tail.is_empty() || tail == "/" {
        tail
    } else {
        "/***"
    };
    format!("{scheme}://{host}{tail}")
}

/// [`redact_endpoint`] of each, for Debug output of endpoint lists.
pub fn redact_endpoints(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| redact_endpoint(u)).collect()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key or secret file that could not be used. Names the file and why,
/// never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Missing or unreadable.
    #[error("cannot read secret file {path}: {reason}")]
    Unreadable {
        /// Path.
        path: String,
        /// OS error kind.
        reason: String,
    },
    /// Group or others may read it.
    #[error("secret file {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    TooOpen {
        /// Path.
        path: String,
        /// Permission bits.
        mode: u32,
    },
}

/// Reads a key or secret file, refusing one that group or others can read.
/// The one reader every chain's keys and every `SecretRef` go through.
pub fn read_key_file(path: &std::path::Path) -> Result<Secret<String>, KeyFileError> {
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| KeyFileError::Unreadable {
        path: shown.clone(),
        reason: e.kind().to_string(),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(unreadable)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen {
                path: shown.clone(),
                mode,
            });
        }
    }
    std::fs::read_to_string(path)
        .map(Secret::new)
        .map_err(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_show_scheme_host_and_port_only() {
        for (url, shown) in [
            ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
            ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
            ("https://eth.example/v2/KEY", "https://eth.example/***"),
            ("https://rpc.example?api-key=KEY", "https://rpc.example/***"),
            (
                "wss://user:pw@node.example:443/ws",
                "wss://node.example:443/***",
            ),
            ("https://user:pw@node.example/", "https://node.example/"),
            ("KEY-only", "[not a URL]"),
        ] {
            assert_eq!(redact_endpoint(url), shown, "{url}");
            assert!(!redact_endpoint(url).contains("KEY"));
            assert!(!redact_endpoint(url).contains("pw"));
        }
    }

    #[test]
    fn key_files_open_to_others_are_refused_naming_the_file_not_the_content() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "s3cret").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_key_file(&p).unwrap_err();
        assert!(
            matches!(e, KeyFileError::TooOpen { mode: 0o640, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600") && !e.to_string().contains("s3cret"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&p).unwrap().expose(), "s3cret");
        let e = read_key_file(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, KeyFileError::Unreadable { .. }), "{e}");
    }

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret<String>,
        }
        let h = Holder { token: s };
        assert!(!format!("{h:?}").contains("hunter2"));
    }

    #[test]
    fn urls_lose_only_their_password() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(redact_url("https://h/p@q"), "https://h/p@q");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=pw&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://u:pw@h?sslpassword=x&application_name=s"),
            "postgresql://u:***@h?sslpassword=***&application_name=s"
        );
        assert_eq!(
            redact_url("https://h/x?api-key=K#f"),
            "https://h/x?api-key=***#f"
        );
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
