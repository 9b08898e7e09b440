//! Daemon configurations: listeners on port 0, a private Redis, sources.

use super::SECRET;

/// A `[[sources]]` block.
#[derive(Clone)]
pub struct SourceSpec {
    pub name: String,
    pub verify: String,
    pub destination: String,
    /// Extra keys for `[sources.destination]`.
    pub destination_extra: String,
    /// `[[sources.destinations]]` blocks; when any is given they replace
    /// the singular destination.
    pub routes: Vec<Route>,
    /// Extra keys of the source itself (`history = ...`).
    pub source_extra: String,
}

/// One `[[sources.destinations]]` block.
#[derive(Clone)]
pub struct Route {
    pub name: String,
    pub url: String,
    pub extra: String,
}

impl SourceSpec {
    /// A Standard-Webhooks source signed with [`SECRET`].
    pub fn standard(name: &str, destination: &str) -> Self {
        Self {
            name: name.into(),
            verify: format!(r#"{{ scheme = "standard-webhooks", secrets = ["{SECRET}"] }}"#),
            destination: destination.into(),
            destination_extra: String::new(),
            routes: Vec::new(),
            source_extra: String::new(),
        }
    }

    /// Adds keys to the source itself (not to its destination).
    pub fn source_with(mut self, extra: &str) -> Self {
        self.source_extra.push_str(extra);
        self.source_extra.push('\n');
        self
    }

    /// Adds a named destination with extra keys (`filter = ...`, ...).
    pub fn route(mut self, name: &str, url: &str, extra: &str) -> Self {
        self.routes.push(Route {
            name: name.into(),
            url: url.into(),
            extra: extra.into(),
        });
        self
    }

    pub fn with(mut self, destination_extra: &str) -> Self {
        self.destination_extra.push_str(destination_extra);
        self.destination_extra.push('\n');
        self
    }

    fn toml(&self) -> String {
        let mut toml = format!(
            "[[sources]]\nname = \"{}\"\nverify = {}\n{}",
            self.name, self.verify, self.source_extra
        );
        if self.routes.is_empty() {
            toml.push_str(&format!(
                "[sources.destination]\nurl = \"{}\"\n{}\n",
                self.destination, self.destination_extra
            ));
        }
        for route in &self.routes {
            toml.push_str(&format!(
                "[[sources.destinations]]\nname = \"{}\"\nurl = \"{}\"\n{}\n",
                route.name, route.url, route.extra
            ));
        }
        toml
    }
}

/// A full config: listeners on port 0, the given Redis, fast timings,
/// `extra` TOML (sections) and the sources.
pub fn config(redis_url: &str, extra: &str, sources: &[SourceSpec]) -> String {
    let mut toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[redis]
url = "{redis_url}"
{extra}
"#
    );
    for source in sources {
        toml.push_str(&source.toml());
    }
    toml
}

/// The same config with the public listener on a fixed port, so a
/// restarted daemon is found where clients left it.
pub fn listen_on(toml: &str, port: u16) -> String {
    toml.replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
        1,
    )
}
