//! Tells people when something happened to their backups: posts failures (and successes when
//! asked) of backup, verification, culling and restore to webhooks in the formats teams use
//! (generic JSON, Slack, Microsoft Teams, Rocket.Chat), and pings a dead-man switch after every
//! successful backup. Timeouts and a few retries; a notification that cannot be delivered is
//! logged and never fails the operation. Webhook URLs hold tokens: they never appear in logs,
//! errors or payloads, and neither does any other configured secret.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{NotifySettings, Settings, WebhookFormat};
use crate::model::{Secret, redact_url};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Backup,
    Verify,
    Cull,
    Restore,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Verify => "verify",
            Operation::Cull => "cull",
            Operation::Restore => "restore",
        }
    }
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

/// One thing worth telling. Built by the command layer or the daemon; holds no secrets (and
/// whatever it holds is scrubbed of the configured secrets before it is sent).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub operation: Operation,
    pub outcome: Outcome,
    pub database: Option<String>,
    /// The server, as in backup names (`local` for a Unix socket).
    pub host: String,
    /// One line: what happened (the error for failures).
    pub summary: String,
    /// Facts shown as fields: file, size, duration, ...
    pub details: Vec<(String, String)>,
    pub at: Timestamp,
}

impl Event {
    pub fn new(
        operation: Operation,
        outcome: Outcome,
        database: Option<&str>,
        host: &str,
        summary: impl Into<String>,
    ) -> Event {
        Event {
            operation,
            outcome,
            database: database.map(str::to_string),
            host: crate::catalog::host_label(host),
            summary: summary.into(),
            details: Vec::new(),
            at: Timestamp::now(),
        }
    }

    pub fn detail(mut self, key: &str, value: impl Into<String>) -> Event {
        self.details.push((key.to_string(), value.into()));
        self
    }

    /// `backup of "sbi" on postgresql failed`.
    pub fn title(&self) -> String {
        let what = match &self.database {
            Some(db) => format!("{} of \"{db}\" on {}", self.operation.as_str(), self.host),
            None => format!("{} on {}", self.operation.as_str(), self.host),
        };
        match self.outcome {
            Outcome::Success => format!("pgkeep: {what} succeeded"),
            Outcome::Failure => format!("pgkeep: {what} FAILED"),
        }
    }

    fn scrubbed(&self, secrets: &[String]) -> Event {
        let mut e = self.clone();
        e.summary = scrub(&e.summary, secrets);
        e.database = e.database.map(|d| scrub(&d, secrets));
        for (k, v) in &mut e.details {
            *k = scrub(k, secrets);
            *v = scrub(v, secrets);
        }
        e
    }
}

/// Replace every occurrence of a secret by `<redacted>`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if s.len() >= 4 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    out
}

/// The result of posting one event to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `slack https://hooks.slack.com/<redacted>`: never the token.
    pub target: String,
    pub ok: bool,
    pub attempts: u32,
    pub error: Option<String>,
}

#[derive(Clone)]
enum Target {
    Webhook(WebhookFormat, Secret),
    Deadman(Secret),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Webhook(f, u) => format!("{} {}", f.as_str(), redact_url(u.expose())),
            Target::Deadman(u) => format!("dead-man {}", redact_url(u.expose())),
        }
    }
}

/// Sends events to the configured targets.
pub struct Notifier {
    webhooks: Vec<(WebhookFormat, Secret)>,
    deadman: Option<Secret>,
    on_success: bool,
    retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    agent: ureq::Agent,
    secrets: Vec<String>,
}

impl Notifier {
    /// A notifier for `settings`; every configured secret (password, URLs) is scrubbed from
    /// what is sent.
    pub fn from_settings(settings: &Settings) -> Notifier {
        let mut extra = Vec::new();
        if let Some(p) = &settings.password {
            extra.push(p.expose().to_string());
        }
        Notifier::new(&settings.notify, extra)
    }

    /// A notifier for `cfg`, scrubbing `secrets` (and the URLs) from payloads.
    pub fn new(cfg: &NotifySettings, secrets: Vec<String>) -> Notifier {
        let proxy = cfg
            .proxy
            .as_ref()
            .and_then(|p| ureq::Proxy::new(p.expose()).ok());
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout))
            .http_status_as_error(true)
            .max_redirects(3)
            .user_agent(format!("pgkeep/{}", env!("CARGO_PKG_VERSION")))
            .proxy(proxy)
            .build();
        let mut secrets = secrets;
        for (_, u) in &cfg.webhooks {
            secrets.push(u.expose().to_string());
        }
        if let Some(u) = &cfg.deadman_url {
            secrets.push(u.expose().to_string());
        }
        if let Some(p) = &cfg.proxy {
            secrets.push(p.expose().to_string());
        }
        // Longer secrets first, so a URL is redacted whole before a shorter secret inside it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Notifier {
            webhooks: cfg.webhooks.clone(),
            deadman: cfg.deadman_url.clone(),
            on_success: cfg.on_success,
            retries: cfg.retries,
            retry_delay: Duration::from_secs(1),
            agent: config.into(),
            secrets,
        }
    }

    /// True when there is anywhere to send events.
    pub fn is_configured(&self) -> bool {
        !self.webhooks.is_empty() || self.deadman.is_some()
    }

    /// Send `event` to every target that wants it, in parallel, waiting for all (each bounded by
    /// the timeout and retries). Never fails: undeliverable notifications are logged as warnings
    /// and reported in the returned list.
    pub fn notify(&self, event: &Event) -> Vec<Delivery> {
        let mut targets = Vec::new();
        if event.outcome == Outcome::Failure || self.on_success {
            targets.extend(
                self.webhooks
                    .iter()
                    .map(|(f, u)| Target::Webhook(*f, u.clone())),
            );
        }
        // The dead-man switch must go silent when backups stop: only a successful backup pings
        // it (a verification of an old backup succeeding must not keep it quiet).
        if event.outcome == Outcome::Success
            && event.operation == Operation::Backup
            && let Some(u) = &self.deadman
        {
            targets.push(Target::Deadman(u.clone()));
        }
        if targets.is_empty() {
            return Vec::new();
        }
        let event = event.scrubbed(&self.secrets);
        let deliveries: Vec<Delivery> = std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .map(|t| {
                    let event = &event;
                    s.spawn(move || self.deliver(t, event))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a delivery thread does not panic"))
                .collect()
        });
        for d in &deliveries {
            match &d.error {
                None => {
                    tracing::debug!(target_url = %d.target, attempts = d.attempts, "notification sent")
                }
                Some(e) => tracing::warn!(
                    target_url = %d.target,
                    attempts = d.attempts,
                    error = %e,
                    "notification could not be delivered"
                ),
            }
        }
        deliveries
    }

    /// `notify` from async code, on a blocking thread.
    pub async fn notify_async(self: std::sync::Arc<Self>, event: Event) -> Vec<Delivery> {
        tokio::task::spawn_blocking(move || self.notify(&event))
            .await
            .unwrap_or_default()
    }

    fn deliver(&self, target: &Target, event: &Event) -> Delivery {
        let (url, body, content_type) = match target {
            Target::Webhook(f, u) => (
                u.expose(),
                serde_json::to_vec(&payload(*f, event)).expect("payload serializes"),
                "application/json",
            ),
            Target::Deadman(u) => (
                u.expose(),
                format!("{}: {}", event.title(), event.summary).into_bytes(),
                "text/plain; charset=utf-8",
            ),
        };
        let mut attempts = 0;
        let mut delay = self.retry_delay;
        loop {
            attempts += 1;
            let res = self
                .agent
                .post(url)
                .header("Content-Type", content_type)
                .send(&body[..]);
            let err = match res {
                Ok(_) => {
                    return Delivery {
                        target: target.describe(),
                        ok: true,
                        attempts,
                        error: None,
                    };
                }
                Err(e) => e,
            };
            let retry = retryable(&err);
            let message = scrub(&describe(&err), &self.secrets);
            if !retry || attempts > self.retries {
                return Delivery {
                    target: target.describe(),
                    ok: false,
                    attempts,
                    error: Some(message),
                };
            }
            tracing::debug!(target_url = %target.describe(), error = %message, "notification failed; retrying");
            std::thread::sleep(delay);
            delay *= 2;
        }
    }
}

/// Worth another try: network trouble, timeouts, 408, 429 and 5xx.
fn retryable(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::StatusCode(c) => *c == 408 || *c == 429 || *c >= 500,
        ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl | ureq::Error::Http(_) => false,
        _ => true,
    }
}

/// A one-line description that never includes the URL.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(c) => format!("the server answered HTTP {c}"),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        ureq::Error::Io(io) => format!("network error: {}", io.kind()),
        ureq::Error::BadUri(_) => "the URL is not valid".into(),
        other => other.to_string(),
    }
}

const RED: &str = "#d40e0d";
const GREEN: &str = "#2eb886";

/// The body posted to a webhook of `format`.
pub fn payload(format: WebhookFormat, e: &Event) -> Value {
    let title = e.title();
    let failed = e.outcome == Outcome::Failure;
    let mut facts: Vec<(String, String)> = Vec::new();
    if let Some(db) = &e.database {
        facts.push(("database".into(), db.clone()));
    }
    facts.push(("host".into(), e.host.clone()));
    facts.extend(e.details.iter().cloned());
    facts.push((
        "time".into(),
        e.at.round(jiff::Unit::Second).unwrap_or(e.at).to_string(),
    ));
    match format {
        WebhookFormat::Generic => json!({
            "source": "pgkeep",
            "pgkeep_version": env!("CARGO_PKG_VERSION"),
            "event": format!("{}.{}", e.operation.as_str(), if failed { "failure" } else { "success" }),
            "operation": e.operation,
            "outcome": e.outcome,
            "database": e.database,
            "host": e.host,
            "title": title,
            "summary": e.summary,
            "details": e.details.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<serde_json::Map<_, _>>(),
            "at": e.at,
        }),
        WebhookFormat::Slack => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let fields: Vec<Value> = facts
                .iter()
                .take(10)
                .map(
                    |(k, v)| json!({"type": "mrkdwn", "text": format!("*{}*\n{}", esc(k), esc(v))}),
                )
                .collect();
            json!({
                "text": format!("{title}: {}", e.summary),
                "attachments": [{
                    "color": if failed { RED } else { GREEN },
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*\n{}", esc(&title), esc(&e.summary))}},
                        {"type": "section", "fields": fields},
                    ],
                }],
            })
        }
        WebhookFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": [
                        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                         "color": if failed { "Attention" } else { "Good" }, "wrap": true},
                        {"type": "TextBlock", "text": e.summary, "wrap": true},
                        {"type": "FactSet", "facts": facts.iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()},
                    ],
                },
            }],
        }),
        WebhookFormat::RocketChat => json!({
            "alias": "pgkeep",
            "text": title,
            "attachments": [{
                "title": title,
                "text": e.summary,
                "color": if failed { RED } else { GREEN },
                "fields": facts.iter().map(|(k, v)| json!({"short": true, "title": k, "value": v})).collect::<Vec<_>>(),
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::new(
            Operation::Backup,
            Outcome::Failure,
            Some("sbi"),
            "postgresql",
            "pg_dump exited with status 1: password hunter2 <rejected>",
        )
        .detail(
            "file",
            "2026-11-25/postgresql-sbi_2026-11-25_01-00-00.sql.gz",
        )
    }

    #[test]
    fn payloads_carry_the_event_in_each_format() {
        let e = event();
        let g = payload(WebhookFormat::Generic, &e);
        assert_eq!(g["event"], "backup.failure");
        assert_eq!(g["database"], "sbi");
        assert_eq!(
            g["details"]["file"],
            "2026-11-25/postgresql-sbi_2026-11-25_01-00-00.sql.gz"
        );
        let s = payload(WebhookFormat::Slack, &e);
        assert!(s["text"].as_str().unwrap().contains("FAILED"));
        assert_eq!(s["attachments"][0]["color"], RED);
        let body = s["attachments"][0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap();
        assert!(body.contains("&lt;rejected&gt;"), "{body}");
        let t = payload(WebhookFormat::Teams, &e);
        assert_eq!(
            t["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(t["attachments"][0]["content"]["body"][1]["text"], e.summary);
        let r = payload(WebhookFormat::RocketChat, &e);
        assert_eq!(r["attachments"][0]["fields"][0]["title"], "database");
        assert_eq!(r["attachments"][0]["fields"][0]["value"], "sbi");
    }

    #[test]
    fn secrets_are_scrubbed() {
        let e = event().scrubbed(&["hunter2".into()]);
        assert!(!e.summary.contains("hunter2"));
        assert!(e.summary.contains("<redacted>"));
    }
}
