//! Parsers of the value types several keys share: durations, sizes and lists of commands.

/// Parse `90`, `90s`, `15m`, `26h`, `8d`, `2w`, or a sum like `1d12h`.
pub fn parse_duration(v: &str) -> Result<std::time::Duration, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a duration (e.g. 90s, 15m, 26h, 8d, 1d12h)");
    if t.is_empty() {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        secs = n
            .checked_mul(unit)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        secs = secs
            .checked_add(num.parse::<u64>().map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// Parse `1073741824`, `500M`, `10G`, `1.5GiB` (powers of 1024).
pub fn parse_bytes(v: &str) -> Result<u64, String> {
    let t = v.trim();
    let bad = || format!("`{v}` is not a size (e.g. 500M, 10G)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    Ok((n * mult as f64) as u64)
}

/// Parse a list of commands from JSON: `[["oc", "scale", "deployment/x", "--replicas=0"], ...]`.
pub fn parse_commands(text: &str) -> Result<Vec<Vec<String>>, String> {
    const SHAPE: &str = "expected a list of commands, each a list of strings, e.g. [[\"oc\", \"scale\", \"deployment/server\", \"--replicas=0\"]]";
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e}); {SHAPE}"))?;
    let outer = v.as_array().ok_or_else(|| SHAPE.to_string())?;
    let mut out = Vec::new();
    for (i, cmd) in outer.iter().enumerate() {
        let argv = cmd
            .as_array()
            .ok_or_else(|| format!("command {} is not a list; {SHAPE}", i + 1))?;
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("command {} holds a non-string argument; {SHAPE}", i + 1))?;
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(format!("command {} has no program; {SHAPE}", i + 1));
        }
        out.push(argv);
    }
    Ok(out)
}
