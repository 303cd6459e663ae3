//! The one place where failures become process exit codes (documented in the README). Every
//! error type says its own code ([`ExitCode`], an exhaustive `match` over its variants, so a new
//! variant cannot fall through to 1 unnoticed); [`code_for`] asks the errors of a chain in order.

pub const OK: u8 = 0;
/// The operation failed (the dump failed or was incomplete, an unexpected error).
pub const FAILED: u8 = 1;
/// Bad usage or configuration.
pub const USAGE: u8 = 2;
/// PostgreSQL unreachable, login refused, or database missing.
pub const CONNECTION: u8 = 3;
/// The backup directory is missing, not writable, or full.
pub const STORAGE: u8 = 4;
/// Another run holds the lock.
pub const BUSY: u8 = 5;
/// No suitable PostgreSQL client tools.
pub const TOOLS: u8 = 6;
/// A restore stopped before changing anything: the file does not match its manifest or is
/// incomplete, roles are missing on the target, the admin role lacks a privilege, or a
/// pre-restore hook failed.
pub const REFUSED: u8 = 7;
/// `pgkeep check` found problems (one line per reason on stdout).
pub const UNHEALTHY: u8 = 8;
/// `pgkeep verify` found at least one bad backup (one line per backup on stdout).
pub const BAD_BACKUP: u8 = 9;
/// `pgkeep verify` found no bad backup, but could not prove at least one (one line per backup on
/// stdout, `inconclusive`).
pub const INCONCLUSIVE: u8 = 10;
/// The backup was committed, but copying it to the second location (`copy_to`) failed.
pub const COPY_FAILED: u8 = 11;

/// An error that knows the exit code it ends pgkeep with.
pub trait ExitCode {
    fn exit_code(&self) -> u8;
}

/// Asks one error of a chain for its code, if it is of a known type.
pub type Probe = fn(&(dyn std::error::Error + 'static)) -> Option<u8>;

/// The [`Probe`] of one error type.
pub fn probe<E: ExitCode + std::error::Error + 'static>(
    e: &(dyn std::error::Error + 'static),
) -> Option<u8> {
    e.downcast_ref::<E>().map(ExitCode::exit_code)
}

/// Map an error chain to an exit code: the first error in the chain whose type is `known`
/// decides; a chain of none of them (plain context, I/O errors) is [`FAILED`].
pub fn code_for(err: &anyhow::Error, known: &[Probe]) -> u8 {
    err.chain()
        .find_map(|cause| known.iter().find_map(|probe| probe(cause)))
        .unwrap_or(FAILED)
}

/// The error as one line: context and causes joined, newlines removed.
/// A cause whose text already ends the line (an error that prints its source) is not repeated.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("busy")]
    struct Busy;

    impl ExitCode for Busy {
        fn exit_code(&self) -> u8 {
            BUSY
        }
    }

    #[test]
    fn the_first_known_error_of_the_chain_decides() {
        let known: &[Probe] = &[probe::<Busy>];
        let e = anyhow::Error::new(Busy).context("outer");
        assert_eq!(code_for(&e, known), BUSY);
        assert_eq!(code_for(&e, &[]), FAILED);
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(code_for(&plain, known), FAILED);
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(one_line(&e), "outer: middle: inner");
    }
}
