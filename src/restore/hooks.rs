//! Restore hooks: commands run before and after a restore (scale the apps down, bring them back),
//! each an argument list run without a shell, so no data is ever interpolated into a command
//! line, each with a timeout, through the one child-process wrapper.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::{Running, Spec, tail_lines};

/// How one hook ended.
#[derive(Debug, Clone)]
pub struct HookResult {
    pub argv: Vec<String>,
    pub ok: bool,
    pub duration: Duration,
    /// One line: "exited with status 0", the timeout, or the failure with its stderr tail.
    pub message: String,
    /// The last lines of the hook's stdout.
    pub stdout_tail: String,
}

/// The command line of a hook for display (arguments shell-quoted when needed).
pub fn show_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run one hook with `env` as its whole environment; stop it (its whole process group) after
/// `timeout`.
pub fn run(argv: &[String], timeout: Duration, env: &[(String, String)]) -> HookResult {
    let started = Instant::now();
    let mut spec = Spec::new(Path::new(&argv[0])).envs(env.iter().cloned());
    for a in &argv[1..] {
        spec = spec.arg(a);
    }
    let result = |ok: bool, message: String, stdout_tail: String| HookResult {
        argv: argv.to_vec(),
        ok,
        duration: started.elapsed(),
        message,
        stdout_tail,
    };
    let mut running = match Running::spawn(&spec, Stdio::piped()) {
        Ok(r) => r,
        Err(e) => return result(false, e.to_string(), String::new()),
    };
    let killer = running.killer();
    let mut stdout = running.take_stdout().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.len() > 64 * 1024 {
                        out.drain(..out.len() - 16 * 1024);
                    }
                }
            }
        }
        out
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(running.wait());
    });
    let (outcome, timed_out) = match rx.recv_timeout(timeout) {
        Ok(o) => (o, false),
        Err(_) => {
            killer.terminate(Duration::from_secs(2));
            (
                rx.recv()
                    .unwrap_or_else(|_| Err(std::io::Error::other("hook lost"))),
                true,
            )
        }
    };
    let out = reader.join().unwrap_or_default();
    let stdout_tail = tail_lines(&out, 3);
    match outcome {
        Err(e) => result(false, format!("cannot wait for the hook: {e}"), stdout_tail),
        Ok(_) if timed_out => result(
            false,
            format!("timed out after {}s and was stopped", timeout.as_secs()),
            stdout_tail,
        ),
        Ok(o) if o.success() => result(true, o.describe_status(), stdout_tail),
        Ok(o) => result(false, o.describe(), stdout_tail),
    }
}

/// Run hooks in order. With `stop_on_failure` (pre-restore), the first failure ends the list;
/// otherwise (post-restore) every hook runs whatever happened before.
pub fn run_all(
    hooks: &[Vec<String>],
    timeout: Duration,
    env: &[(String, String)],
    stop_on_failure: bool,
) -> Vec<HookResult> {
    let mut out = Vec::new();
    for argv in hooks {
        let r = run(argv, timeout, env);
        if r.ok {
            tracing::info!(hook = %show_argv(argv), duration = %format!("{:.1}s", r.duration.as_secs_f64()), output = %r.stdout_tail, "hook done");
        } else {
            tracing::error!(hook = %show_argv(argv), error = %r.message, "hook failed");
        }
        let failed = !r.ok;
        out.push(r);
        if failed && stop_on_failure {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("X".into(), "a b".into()),
        ]
    }

    #[test]
    fn arguments_are_not_interpolated_and_failures_are_described() {
        let argv: Vec<String> = [
            "sh",
            "-c",
            "printf '%s|' \"$0\" \"$X\"; exit 0",
            "$(id) ; rm -rf /",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = run(&argv, Duration::from_secs(10), &env());
        assert!(r.ok, "{}", r.message);
        assert_eq!(r.stdout_tail, "$(id) ; rm -rf /|a b|");

        let r = run(
            &["sh".into(), "-c".into(), "echo boom >&2; exit 4".into()],
            Duration::from_secs(10),
            &env(),
        );
        assert!(!r.ok);
        assert_eq!(r.message, "sh exited with status 4: boom");

        let r = run(&["/nonexistent/oc".into()], Duration::from_secs(10), &env());
        assert!(
            !r.ok && r.message.contains("cannot start /nonexistent/oc"),
            "{}",
            r.message
        );
    }

    #[test]
    fn timeout_stops_the_hook_and_its_children() {
        let started = Instant::now();
        let r = run(
            &["sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
            Duration::from_millis(300),
            &env(),
        );
        assert!(!r.ok);
        assert!(r.message.contains("timed out"), "{}", r.message);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn pre_hooks_stop_at_the_first_failure_post_hooks_do_not() {
        let hooks = vec![vec!["false".to_string()], vec!["true".to_string()]];
        assert_eq!(
            run_all(&hooks, Duration::from_secs(5), &env(), true).len(),
            1
        );
        let all = run_all(&hooks, Duration::from_secs(5), &env(), false);
        assert_eq!(all.len(), 2);
        assert!(!all[0].ok && all[1].ok);
        assert_eq!(
            show_argv(&["oc".into(), "a b".into(), "it's".into()]),
            "oc 'a b' 'it'\\''s'"
        );
    }
}
