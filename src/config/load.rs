//! Loading the settings: the layers defaults < TOML file < environment < flags (each with its
//! URI expanded into the keys it sets), then every key parsed by its kind (see [`super::keys`])
//! and the typed groups built from them, with the rules that tie keys together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::keys::{KEYS, is_command_list, key, nearest};
use super::settings::{MaintenanceSettings, Settings};
use super::source::{ConfigError, Inputs, Raw, Source};
use super::typed::Typed;
use super::uri::parse_uri;
use crate::model::{Secret, SslMode};

impl Settings {
    /// Load the settings from the given inputs.
    pub fn load(inputs: &Inputs) -> Result<Settings, ConfigError> {
        let mut values: BTreeMap<&'static str, Raw> = BTreeMap::new();
        let file = inputs
            .config_file
            .clone()
            .or_else(|| inputs.env.get("PGKEEP_CONFIG").map(PathBuf::from));
        let mut layers = Vec::new();
        if let Some(path) = &file {
            layers.push(read_file(path)?);
        }
        layers.push(env_layer(inputs));
        layers.push(flag_layer(inputs));
        for mut layer in layers {
            expand_uri(&mut layer)?;
            values.extend(layer);
        }
        Self::from_values(values)
    }

    fn from_values(values: BTreeMap<&'static str, Raw>) -> Result<Settings, ConfigError> {
        let mut t = Typed::parse(&values)?;
        let dump = t.dump()?;
        let (schedule, verify_schedule, timezone, timezone_name) = t.schedules()?;
        let (databases, exclude_databases) = t.database_set()?;
        let database_schedules = t.database_schedules(&timezone, &timezone_name, &databases)?;
        let user = t.text("user");
        let database = t.opt_text("database").unwrap_or_else(|| user.clone());
        t.resolve_text("database", &database);
        let backup_dir = t.path("backup_dir").unwrap_or_default();
        let lock_dir = t.lock_dir(&backup_dir);
        let s3 = t.s3();
        if t.opt_text("admin_user").is_none() {
            t.resolve_text("admin_user", &format!("(user: {user})"));
        }
        Ok(Settings {
            schedule,
            verify_schedule,
            timezone,
            timezone_name,
            policy: t.policy(),
            partial_max_age: t.duration("partial_max_age"),
            listen: t.addr("listen"),
            api_token: t.api_token()?,
            manifest_keys: t.manifest_keys()?,
            age_recipients: t.age_recipients()?,
            age_identities: t.age_identities()?,
            copy_to: t.path("copy_to"),
            copy_policy: t.copy_policy(),
            shutdown_grace: t.duration("shutdown_grace"),
            retry_delay: t.duration("retry_delay"),
            parallel_databases: t.int("parallel_databases") as usize,
            database_schedules,
            host: t.text("host"),
            port: t.int("port") as u16,
            user,
            password: t.opt_text("password").map(Secret::new),
            passfile: t.path("passfile"),
            database,
            databases,
            exclude_databases,
            sslmode: sslmode(&t.text("sslmode")),
            sslrootcert: t.path("sslrootcert"),
            connect_timeout: whole_seconds(t.duration("connect_timeout")),
            backup_dir,
            lock_dir,
            s3,
            format: dump.format,
            compression: dump.compression,
            level: dump.level,
            threads: dump.threads,
            pg_bindir: t.path("pg_bindir"),
            pg_dump: t.path("pg_dump"),
            min_dump_bytes: t.int("min_dump_bytes") as u64,
            log_format: t.log_format(),
            notify: t.notify(),
            check: t.check(),
            admin_user: t.opt_text("admin_user"),
            admin_password: t.opt_text("admin_password").map(Secret::new),
            admin_passfile: t.path("admin_passfile"),
            pre_restore: t.commands("pre_restore"),
            post_restore: t.commands("post_restore"),
            hook_timeout: t.duration("hook_timeout"),
            restore_jobs: t.restore_jobs(),
            maintenance: MaintenanceSettings {
                listen: t.addr("maintenance_listen"),
                title: t.text("maintenance_title"),
                message: t.opt_text("maintenance_message"),
                retry_after: whole_seconds(t.duration("maintenance_retry_after")),
            },
            shown: t.shown(),
            values,
        })
    }
}

/// Seconds for the settings that count whole seconds (libpq's connect_timeout, Retry-After);
/// a fraction rounds up.
fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn sslmode(name: &str) -> SslMode {
    match name {
        "disable" => SslMode::Disable,
        "allow" => SslMode::Allow,
        "require" => SslMode::Require,
        "verify-ca" => SslMode::VerifyCa,
        "verify-full" => SslMode::VerifyFull,
        _ => SslMode::Prefer,
    }
}

/// The environment layer: for each key, the first of its variables that is set and not empty.
fn env_layer(inputs: &Inputs) -> BTreeMap<&'static str, Raw> {
    let mut layer = BTreeMap::new();
    for k in KEYS {
        let found = k.env.iter().find_map(|var| {
            inputs
                .env
                .get(*var)
                .filter(|v| !v.is_empty())
                .map(|v| (*var, v))
        });
        if let Some((var, v)) = found {
            let source = Source::Env(var.to_string());
            layer.insert(
                k.name,
                Raw {
                    value: v.clone(),
                    source,
                },
            );
        }
    }
    layer
}

/// The flag layer: the values the command line gave, by key name.
fn flag_layer(inputs: &Inputs) -> BTreeMap<&'static str, Raw> {
    let mut layer = BTreeMap::new();
    for (name, v) in &inputs.flags {
        let k = key(name).expect("flags use declared keys");
        layer.insert(
            k.name,
            Raw {
                value: v.clone(),
                source: Source::Flag(k.flag_name()),
            },
        );
    }
    layer
}

fn read_file(path: &Path) -> Result<BTreeMap<&'static str, Raw>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    let mut out = BTreeMap::new();
    for (name, value) in table {
        let Some(k) = key(&name) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                hint: match nearest(&name) {
                    Some(k) => format!("did you mean `{k}`?"),
                    None => "`pgkeep config keys` lists the keys".into(),
                },
                key: name,
            });
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            // `[database_schedules]` as a table: its entries as NAME=CRON.
            toml::Value::Table(t) if k.name == "database_schedules" => {
                let entries: Vec<String> = t
                    .iter()
                    .map(|(name, v)| match v {
                        toml::Value::String(cron) => Ok(format!("{name}={cron}")),
                        other => Err(ConfigError::Parse {
                            path: path.to_path_buf(),
                            message: format!(
                                "key `database_schedules.{name}` must be a cron string, not {}",
                                other.type_str()
                            ),
                        }),
                    })
                    .collect::<Result<_, _>>()?;
                serde_json::to_string(&entries).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!("key `{name}`: {e}"),
                })?
            }
            toml::Value::Array(a) if is_command_list(k) => {
                serde_json::to_string(&toml::Value::Array(a)).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!("key `{name}`: {e}"),
                })?
            }
            other => {
                return Err(ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: format!(
                        "key `{name}` must be a string or number, not {}",
                        other.type_str()
                    ),
                });
            }
        };
        out.insert(
            k.name,
            Raw {
                value,
                source: Source::File(path.to_path_buf()),
            },
        );
    }
    Ok(out)
}

/// Replace a `uri` entry of a layer by its parts; separate keys of the same layer win.
fn expand_uri(layer: &mut BTreeMap<&'static str, Raw>) -> Result<(), ConfigError> {
    let Some(raw) = layer.get("uri").cloned() else {
        return Ok(());
    };
    let parts = parse_uri(&raw.value).map_err(|message| ConfigError::Invalid {
        key: "uri",
        from: raw.source.clone(),
        message,
    })?;
    for (name, value) in parts {
        let k = key(name).expect("uri parts are declared keys");
        layer.entry(k.name).or_insert(Raw {
            value,
            source: Source::Uri(Box::new(raw.source.clone())),
        });
    }
    Ok(())
}
