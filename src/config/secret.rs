//! A configuration string that never appears in logs, `Debug` output or
//! `check-config`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Shown instead of a secret (and of the secret parts of URLs).
pub(super) const REDACTED: &str = "[redacted]";

/// Written in config as a literal, `env:VAR` or `file:/path`; resolved once
/// at load so a missing variable or file fails startup instead of the first
/// request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn literal(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Resolves `env:` and `file:` references. A file's trailing newline is
    /// dropped because editors and `echo` add one.
    pub fn resolve(spec: &str) -> Result<Self, String> {
        if let Some(var) = spec.strip_prefix("env:") {
            return std::env::var(var).map(Self).map_err(|_| {
                format!("environment variable {var} (named by env:{var}) is not set")
            });
        }
        if let Some(path) = spec.strip_prefix("file:") {
            return std::fs::read_to_string(path)
                .map(|text| Self(text.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| format!("cannot read secret file {path}: {e}"));
        }
        Ok(Self(spec.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(REDACTED)
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // An empty secret is shown as empty so operators can see it is unset.
        serializer.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = String::deserialize(deserializer)?;
        if spec == REDACTED {
            // Defaults are fed back through serde by figment; a redacted
            // value there can only be the built-in default, which is empty.
            return Err(serde::de::Error::custom(
                "a secret cannot be the literal \"[redacted]\"",
            ));
        }
        Self::resolve(&spec).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_serialize_are_redacted() {
        let secret = Secret::literal("hunter2");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(
            serde_json::to_string(&secret).unwrap(),
            "\"[redacted]\"".to_string()
        );
        assert_eq!(format!("{:?}", Secret::default()), "\"\"");
    }

    #[test]
    fn file_secrets_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "from-file\n").unwrap();
        let secret = Secret::resolve(&format!("file:{}", path.display())).unwrap();
        assert_eq!(secret.expose(), "from-file");
        let err = Secret::resolve("file:/definitely/not/here").unwrap_err();
        assert!(err.contains("/definitely/not/here"));
    }

    #[test]
    fn env_secrets_are_read() {
        // PATH is always set; a missing variable must fail with its name.
        assert!(!Secret::resolve("env:PATH").unwrap().is_empty());
        let err = Secret::resolve("env:HOOKD_SURELY_UNSET_VARIABLE").unwrap_err();
        assert!(err.contains("HOOKD_SURELY_UNSET_VARIABLE"));
    }
}
