//! Running the real binary on a pseudo-terminal, as a user at a shell would: stdin, stdout and
//! stderr all on the terminal's side of a pty from `openpty`. What the terminal received is kept
//! as it came (to see lines redrawn in place) and as the screen it leaves (through `vt100`,
//! which applies the carriage returns, line clears and colours as a terminal does).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a command left on the terminal.
pub struct Screen {
    /// Every byte the terminal received, escape sequences included.
    pub raw: String,
    /// The text on the screen at the end, one line per row, trailing blank rows removed.
    pub text: String,
    pub code: Option<i32>,
}

impl Screen {
    /// The frames drawn in place: the text after each carriage return up to the next control
    /// character other than the line-clearing escape sequence.
    pub fn redrawn(&self) -> Vec<String> {
        let strip = |s: &str| {
            let mut out = String::new();
            let mut chars = s.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    // CSI: ESC [ params final-byte
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        for f in chars.by_ref() {
                            if ('@'..='~').contains(&f) {
                                break;
                            }
                        }
                    }
                } else if !c.is_control() {
                    out.push(c);
                }
            }
            out
        };
        self.raw
            .split('\r')
            .skip(1)
            .map(|frame| {
                strip(frame.split('\n').next().unwrap_or(""))
                    .trim()
                    .to_string()
            })
            .filter(|f| !f.is_empty())
            .collect()
    }
}

/// Run `cmd` on a new pseudo-terminal of 40 rows and 160 columns until it exits, then read what
/// it wrote until the terminal has no writer left.
pub fn run(cmd: Command) -> Screen {
    let (child, reader) = spawn(cmd);
    finish(child, reader)
}

/// What the terminal receives, read from the start (a writer never blocks on a full terminal).
pub type Reader = std::thread::JoinHandle<Vec<u8>>;

/// Start `cmd` on a new pseudo-terminal; [`finish`] waits for it and reads the screen.
pub fn spawn(mut cmd: Command) -> (std::process::Child, Reader) {
    let size = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    // A terminal emulator names its kind; without TERM a program must take it for a dumb one.
    cmd.env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    let child = cmd.spawn().expect("spawn on the pty");
    // The Command holds the terminal's side open until it is dropped.
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        // Linux answers EIO once every writer of the terminal's side has closed it.
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        out
    });
    (child, reader)
}

pub fn finish(mut child: std::process::Child, reader: Reader) -> Screen {
    let status = child.wait().unwrap();
    let mut raw = None;
    for _ in 0..100 {
        if reader.is_finished() {
            raw = Some(reader.join().unwrap());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let raw = raw.expect("the terminal still has a writer 5 s after the command exited");
    let mut parser = vt100::Parser::new(500, 160, 0);
    parser.process(&raw);
    let text = parser.screen().contents();
    Screen {
        raw: String::from_utf8_lossy(&raw).into_owned(),
        text: text.trim_end().to_string(),
        code: status.code(),
    }
}
