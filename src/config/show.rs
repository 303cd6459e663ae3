//! `pgkeep config show`: the effective settings as rows of key, shown value and source, secrets
//! redacted.

use super::settings::{LogFormat, MinFree, Settings, WebhookFormat};
use super::source::Source;
use crate::model::schedule::Schedule;
use crate::model::{Compression, Format, Secret, redact_url};

impl Settings {
    /// The effective settings as (key, shown value, source) rows, secrets redacted.
    pub fn show(&self) -> Vec<(&'static str, String, Source)> {
        let mut rows = Vec::new();
        let mut push = |k: &'static str, v: String| rows.push((k, v, self.source(k)));
        push("host", self.host.clone());
        push("port", self.port.to_string());
        push("user", self.user.clone());
        push(
            "password",
            match &self.password {
                Some(_) => "<redacted>".into(),
                None => "(not set)".into(),
            },
        );
        push(
            "passfile",
            self.passfile
                .as_ref()
                .map_or("(not set)".into(), |p| p.display().to_string()),
        );
        push("database", self.database.clone());
        push("sslmode", self.sslmode.as_str().into());
        push(
            "sslrootcert",
            self.sslrootcert
                .as_ref()
                .map_or("(not set)".into(), |p| p.display().to_string()),
        );
        push("connect_timeout", self.connect_timeout.to_string());
        push("backup_dir", self.backup_dir.display().to_string());
        push(
            "format",
            match self.format {
                Format::Plain => "plain".into(),
                Format::Custom => "custom".into(),
            },
        );
        push(
            "compression",
            match (self.format, self.compression) {
                (Format::Custom, _) => "pg_dump built-in (custom format)".into(),
                (_, Compression::Gzip) => "gzip".into(),
                (_, Compression::Zstd) => "zstd".into(),
                (_, Compression::None) => "none".into(),
            },
        );
        push("level", self.level.to_string());
        push("threads", self.threads.to_string());
        push(
            "pg_bindir",
            self.pg_bindir
                .as_ref()
                .map_or("(search)".into(), |p| p.display().to_string()),
        );
        push(
            "pg_dump",
            self.pg_dump
                .as_ref()
                .map_or("(discover)".into(), |p| p.display().to_string()),
        );
        push("min_dump_bytes", self.min_dump_bytes.to_string());
        push(
            "log_format",
            match self.log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
        );
        for (k, format) in [
            ("notify_webhook_url", WebhookFormat::Generic),
            ("notify_slack_url", WebhookFormat::Slack),
            ("notify_teams_url", WebhookFormat::Teams),
            ("notify_rocketchat_url", WebhookFormat::RocketChat),
        ] {
            let urls: Vec<String> = self
                .notify
                .webhooks
                .iter()
                .filter(|(f, _)| *f == format)
                .map(|(_, u)| redact_url(u.expose()))
                .collect();
            push(
                k,
                if urls.is_empty() {
                    "(not set)".into()
                } else {
                    urls.join(" ")
                },
            );
        }
        let opt_url = |u: &Option<Secret>| {
            u.as_ref()
                .map_or("(not set)".into(), |u| redact_url(u.expose()))
        };
        push("notify_deadman_url", opt_url(&self.notify.deadman_url));
        push(
            "notify_on",
            if self.notify.on_success {
                "always".into()
            } else {
                "failure".into()
            },
        );
        push(
            "notify_timeout",
            format!("{}s", self.notify.timeout.as_secs()),
        );
        push("notify_retries", self.notify.retries.to_string());
        push("notify_proxy", opt_url(&self.notify.proxy));
        push(
            "check_max_age",
            format!("{}s", self.check.max_age.as_secs()),
        );
        push(
            "check_min_size_ratio",
            self.check.min_size_ratio.to_string(),
        );
        push(
            "check_verify_max_age",
            self.check
                .verify_max_age
                .map_or("off".into(), |d| format!("{}s", d.as_secs())),
        );
        push(
            "check_min_free",
            match self.check.min_free {
                MinFree::Off => "off".into(),
                MinFree::Auto => "auto (twice the newest backup)".into(),
                MinFree::Bytes(n) => n.to_string(),
            },
        );
        let sched = self.schedule.describe();
        match &self.schedule {
            Schedule::Cron { .. } => {
                push("schedule", sched);
                push("backup_period", "(not set)".into());
            }
            Schedule::Every { .. } => {
                push("schedule", "(interval)".into());
                push("backup_period", sched);
            }
        }
        push(
            "verify_schedule",
            self.verify_schedule
                .as_ref()
                .map_or("(off)".into(), |s| s.describe()),
        );
        push("timezone", self.timezone_name.clone());
        push("keep_days", self.policy.keep_days.to_string());
        push("keep_last", self.policy.keep_last.to_string());
        push("keep_daily", self.policy.keep_daily.to_string());
        push("keep_weekly", self.policy.keep_weekly.to_string());
        push("keep_monthly", self.policy.keep_monthly.to_string());
        push(
            "partial_max_age",
            format!("{}s", self.partial_max_age.as_secs()),
        );
        push("listen", self.listen.to_string());
        push(
            "api_token",
            match &self.api_token {
                Some(_) => "<redacted>".into(),
                None => "(not set: mutating API endpoints off)".into(),
            },
        );
        push(
            "shutdown_grace",
            format!("{}s", self.shutdown_grace.as_secs()),
        );
        push(
            "admin_user",
            self.admin_user
                .clone()
                .unwrap_or_else(|| format!("(user: {})", self.user)),
        );
        push(
            "admin_password",
            match &self.admin_password {
                Some(_) => "<redacted>".into(),
                None => "(not set)".into(),
            },
        );
        push(
            "admin_passfile",
            self.admin_passfile
                .as_ref()
                .map_or("(not set)".into(), |p| p.display().to_string()),
        );
        let show_cmds = |c: &Vec<Vec<String>>| {
            if c.is_empty() {
                "(none)".to_string()
            } else {
                serde_json::to_string(c).unwrap_or_default()
            }
        };
        push("pre_restore", show_cmds(&self.pre_restore));
        push("post_restore", show_cmds(&self.post_restore));
        push("hook_timeout", self.hook_timeout.to_string());
        rows
    }
}
