//! The kinds of value a key holds: each kind's parser, the range `config keys` states for it, and
//! how `config show` displays a value of it (secrets redacted). Cross-key rules (the level's range
//! depends on format and compression, schedule against backup_period) live in the loader.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::values::{parse_bytes, parse_commands, parse_duration, show_duration};
use crate::model::redact_url;

/// What a key holds, and so how it is parsed, bounded and displayed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Free text.
    Text,
    /// A file or directory.
    Path,
    /// A whole number in `min..=max`.
    Int { min: i64, max: i64 },
    /// The compression level: a number whose range depends on format and compression.
    Level,
    /// One of `names`; `aliases` map other spellings to a name.
    Choice {
        names: &'static [&'static str],
        aliases: &'static [(&'static str, &'static str)],
    },
    /// A duration (seconds bounded by `min..=max`); `zero_off`: 0 switches the feature off.
    Duration { min: u64, max: u64, zero_off: bool },
    /// A fraction in 0..=1.
    Ratio,
    /// `auto`, `off` (or 0), or a size with a K/M/G/T suffix.
    MinFree,
    /// A cron expression (5 or 6 fields, or a nickname such as `@daily`).
    Cron,
    /// A time zone name.
    Zone,
    /// One http(s) URL.
    Url,
    /// http(s) URLs separated by spaces.
    Urls,
    /// A PostgreSQL connection URI (expanded into its keys by the loader).
    Uri,
    /// `address:port`.
    Addr,
    /// A list of commands, each a list of strings.
    Commands,
    /// Names separated by commas (spaces around them trimmed), or a JSON / TOML array of
    /// strings for names that hold commas.
    Names,
}

/// A parsed value.
#[derive(Clone)]
pub enum Value {
    /// Not set (the key's `Default::Unset` text is shown).
    Unset,
    Text(String),
    Int(i64),
    Float(f64),
    Duration(Duration),
    Addr(std::net::SocketAddr),
    List(Vec<String>),
    Commands(Vec<Vec<String>>),
    /// A value worked out from other keys, shown as this text.
    Shown(String),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be passwords, tokens or URLs with tokens: never shown.
        f.write_str("Value(..)")
    }
}

const DURATION_MAX: u64 = u64::MAX;

impl Kind {
    /// A duration of at least `min` seconds.
    pub const fn duration(min: u64) -> Kind {
        Kind::Duration {
            min,
            max: DURATION_MAX,
            zero_off: false,
        }
    }

    /// Parse a (non-empty) text of this kind.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        let t = text.trim();
        Ok(match *self {
            Kind::Text => Value::Text(text.to_string()),
            Kind::Path => Value::Text(text.to_string()),
            Kind::Uri => Value::Text(text.to_string()),
            Kind::Int { min, max } => {
                let n: i64 = t
                    .parse()
                    .map_err(|_| format!("`{text}` is not a valid number"))?;
                if !(min..=max).contains(&n) {
                    return Err(format!("{n} is not in {}", self.range()));
                }
                Value::Int(n)
            }
            Kind::Level => Value::Int(
                t.parse()
                    .map_err(|_| format!("`{text}` is not a valid number"))?,
            ),
            Kind::Choice { names, aliases } => {
                let name = names
                    .iter()
                    .copied()
                    .find(|n| *n == t)
                    .or_else(|| aliases.iter().find(|(a, _)| *a == t).map(|(_, n)| *n))
                    .ok_or_else(|| format!("`{text}` is not one of {}", names.join(", ")))?;
                Value::Text(name.to_string())
            }
            Kind::Duration { min, max, zero_off } => {
                let d = parse_duration(text)?;
                let (low, high) = (Duration::from_secs(min), Duration::from_secs(max));
                if d < low && !(zero_off && d.is_zero()) {
                    return Err(format!("`{t}` is less than {}", show_duration(low)));
                }
                if d > high {
                    return Err(format!("`{t}` is more than {}", show_duration(high)));
                }
                Value::Duration(d)
            }
            Kind::Ratio => {
                let r: f64 = t
                    .parse()
                    .map_err(|_| format!("`{text}` is not a valid number"))?;
                if !(0.0..=1.0).contains(&r) {
                    return Err(format!("{r} is not between 0 and 1"));
                }
                Value::Float(r)
            }
            Kind::MinFree => match t {
                "auto" => Value::Text("auto".into()),
                "0" | "off" => Value::Text("off".into()),
                other => Value::Int(parse_bytes(other)? as i64),
            },
            Kind::Cron => {
                crate::model::schedule::check_cron(t)?;
                Value::Text(t.to_string())
            }
            Kind::Zone => {
                crate::model::schedule::parse_tz(t)?;
                Value::Text(t.trim_start_matches(':').to_string())
            }
            Kind::Url => {
                check_url(t)?;
                Value::Text(t.to_string())
            }
            Kind::Urls => {
                let urls: Vec<String> = t.split_whitespace().map(str::to_string).collect();
                for url in &urls {
                    check_url(url)?;
                }
                Value::List(urls)
            }
            Kind::Addr => Value::Addr(
                t.parse()
                    .map_err(|_| format!("`{text}` is not an address:port such as 0.0.0.0:8080"))?,
            ),
            Kind::Commands => Value::Commands(parse_commands(text)?),
            Kind::Names => Value::List(parse_names(t)?),
        })
    }

    /// The values this kind accepts, as `config keys` states them.
    pub fn range(&self) -> String {
        match *self {
            Kind::Text => "text".into(),
            Kind::Path => "path".into(),
            Kind::Int { min, max } if max == i64::MAX || max == u32::MAX as i64 => {
                format!("{min} or more")
            }
            Kind::Int { min, max } => format!("{min}-{max}"),
            Kind::Level => "gzip 1-12 (custom 0-9), zstd 1-19 (custom 1-22), none 0".into(),
            Kind::Choice { names, .. } => names.join(" | "),
            Kind::Duration { min, max, zero_off } => {
                let low = if zero_off {
                    "0 (off)".to_string()
                } else {
                    show_duration(Duration::from_secs(min))
                };
                if max == DURATION_MAX {
                    format!("duration, {low} or more")
                } else {
                    format!(
                        "duration, {low}-{}",
                        show_duration(Duration::from_secs(max))
                    )
                }
            }
            Kind::Ratio => "0-1".into(),
            Kind::MinFree => "auto | off | size (K, M, G, T)".into(),
            Kind::Cron => "cron, 5 or 6 fields, or @daily ..".into(),
            Kind::Zone => "IANA time zone".into(),
            Kind::Url => "http(s) URL".into(),
            Kind::Urls => "http(s) URLs, space-separated".into(),
            Kind::Uri => "postgresql:// URI".into(),
            Kind::Addr => "address:port".into(),
            Kind::Commands => "list of commands".into(),
            Kind::Names => "names, comma-separated (or an array)".into(),
        }
    }

    /// A set value as `config show` displays it; `secret` values are redacted (URLs down to
    /// their scheme and host).
    pub fn display(&self, v: &Value, secret: bool) -> String {
        let url = |u: &str| {
            if secret { redact_url(u) } else { u.to_string() }
        };
        match (self, v) {
            (_, Value::Shown(s)) => s.clone(),
            (Kind::Url | Kind::Uri, Value::Text(u)) => url(u),
            (Kind::Urls, Value::List(us)) => {
                us.iter().map(|u| url(u)).collect::<Vec<_>>().join(" ")
            }
            (_, _) if secret => "<redacted>".into(),
            (_, Value::Unset) => String::new(),
            (Kind::MinFree, Value::Text(t)) if t == "auto" => {
                "auto (twice the newest backup)".into()
            }
            (_, Value::Text(s)) => s.clone(),
            (Kind::MinFree, Value::Int(n)) => format!("{n} bytes"),
            (_, Value::Int(n)) => n.to_string(),
            (_, Value::Float(f)) => f.to_string(),
            (Kind::Duration { zero_off: true, .. }, Value::Duration(d)) if d.is_zero() => {
                "0 (off)".into()
            }
            (_, Value::Duration(d)) => show_duration(*d),
            (_, Value::Addr(a)) => a.to_string(),
            (Kind::Names, Value::List(l)) => l.join(", "),
            (_, Value::List(l)) => l.join(" "),
            (_, Value::Commands(c)) => serde_json::to_string(c).unwrap_or_default(),
        }
    }
}

impl Value {
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.text().map(PathBuf::from)
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn duration(&self) -> Option<Duration> {
        match self {
            Value::Duration(d) => Some(*d),
            _ => None,
        }
    }
}

/// A URL pgkeep may post to; the message never repeats the URL (it may hold a token).
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the URL must start with https:// or http://")?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(())
}

/// Names separated by commas, or a JSON array of strings; none may be empty.
fn parse_names(t: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = if t.starts_with('[') {
        serde_json::from_str(t).map_err(|e| format!("not an array of names: {e}"))?
    } else {
        t.split(',').map(|n| n.trim().to_string()).collect()
    };
    if names.iter().any(String::is_empty) {
        return Err("a name is empty (two commas in a row, or one at an end?)".into());
    }
    Ok(names)
}
