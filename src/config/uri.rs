//! Connection URIs (`postgresql://user:pass@host:port/db?param=value`): split into the keys they
//! set. Errors never include the URI, which may hold a password.

/// Parse `postgres[ql]://[user[:password]@][host][:port][/dbname][?param=value&...]`.
/// Errors never include the URI itself, which may hold a password.
pub fn parse_uri(uri: &str) -> Result<Vec<(&'static str, String)>, String> {
    let rest = uri
        .strip_prefix("postgresql://")
        .or_else(|| uri.strip_prefix("postgres://"))
        .ok_or("the URI must start with postgresql:// or postgres://")?;
    let decode = |s: &str| -> Result<String, String> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "the URI holds percent-encoded bytes that are not UTF-8".to_string())
    };
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let mut out = Vec::new();
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            let (u, p) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !u.is_empty() {
                out.push(("user", decode(u)?));
            }
            if let Some(p) = p {
                out.push(("password", decode(p)?));
            }
            hp
        }
        None => authority,
    };
    if !hostport.is_empty() {
        let (h, p) = if let Some(stripped) = hostport.strip_prefix('[') {
            let (h, after) = stripped
                .split_once(']')
                .ok_or("the URI has an unclosed [ in its host")?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if !h.is_empty() {
            out.push(("host", decode(h)?));
        }
        if let Some(p) = p.filter(|p| !p.is_empty()) {
            p.parse::<u16>()
                .map_err(|_| "the URI's port is not a number".to_string())?;
            out.push(("port", p.to_string()));
        }
    }
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        out.push(("database", decode(db)?));
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or("a URI parameter has no `=`")?;
            let v = decode(v)?;
            let name = match k {
                "host" => "host",
                "port" => "port",
                "user" => "user",
                "password" => "password",
                "dbname" => "database",
                "sslmode" => "sslmode",
                "sslrootcert" => "sslrootcert",
                "connect_timeout" => "connect_timeout",
                "passfile" => "passfile",
                "application_name" => continue,
                other => return Err(format!("unsupported URI parameter `{other}`")),
            };
            out.retain(|(n, _)| *n != name);
            out.push((name, v));
        }
    }
    Ok(out)
}
