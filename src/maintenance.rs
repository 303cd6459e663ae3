//! The "application offline" page: a tiny HTTP server that answers every request with 503, a
//! `Retry-After` header and a configurable HTML message, so that while a restore runs the
//! application's Route can point here and users see a maintenance notice instead of errors.
//!
//! The server takes a bound listener and a shutdown signal (tests bind port 0). It never reads
//! the environment and never prints: the command layer builds the [`Page`] and logs.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::shutdown::Shutdown;

/// What the maintenance page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page title and heading (plain text).
    pub title: String,
    /// The message under the heading (plain text; blank lines separate paragraphs).
    pub message: String,
    /// Seconds that clients are asked to wait before retrying (`Retry-After`).
    pub retry_after: u64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            title: "Down for maintenance".into(),
            message: "The application is offline while its database is being restored. \
                      Please try again in a few minutes."
                .into(),
            retry_after: 300,
        }
    }
}

/// Escape text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Page {
    /// The HTML document served for every request.
    pub fn html(&self) -> String {
        let title = escape_html(&self.title);
        let paragraphs: String = self
            .message
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| format!("<p>{}</p>\n", escape_html(p).replace('\n', "<br>\n")))
            .collect();
        format!(
            r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       min-height: 100vh; display: flex; align-items: center; justify-content: center;
       background: #f4f5f7; color: #1f2933; }}
main {{ max-width: 36rem; margin: 2rem; padding: 2rem 2.5rem; background: #fff;
       border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.5rem; margin-top: 0; }}
p {{ line-height: 1.5; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{paragraphs}</main>
</body>
</html>
"#
        )
    }

    /// The JSON body for API clients (`Accept: application/json`).
    pub fn json(&self) -> String {
        serde_json::json!({
            "error": "maintenance",
            "title": self.title,
            "message": self.message,
            "retry_after_seconds": self.retry_after,
        })
        .to_string()
    }

    /// The response to any request: 503 with `Retry-After`, never cached.
    pub fn respond(&self, headers: &HeaderMap) -> Response<Body> {
        let wants_json = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
        let (content_type, body) = if wants_json {
            ("application/json", self.json())
        } else {
            ("text/html; charset=utf-8", self.html())
        };
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache, must-revalidate"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

/// The router: every method and path gets the maintenance response.
pub fn router(page: Page) -> Router {
    let page = Arc::new(page);
    Router::new().fallback(move |headers: HeaderMap| {
        let page = page.clone();
        async move { page.respond(&headers) }
    })
}

/// Serve the page on `listener` until `shutdown` fires; in-flight requests are completed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    page: Page,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(page))
        .with_graceful_shutdown(async move {
            shutdown.wait().await;
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_escaped_and_split_into_paragraphs() {
        let page = Page {
            title: "Shop <offline>".into(),
            message: "Back at 10:00 & \"soon\".\n\n<script>alert(1)</script>".into(),
            retry_after: 60,
        };
        let html = page.html();
        assert!(html.contains("<title>Shop &lt;offline&gt;</title>"));
        assert!(html.contains("<p>Back at 10:00 &amp; &quot;soon&quot;.</p>"));
        assert!(html.contains("<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"));
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn json_clients_get_json_and_browsers_html() {
        let page = Page::default();
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let r = page.respond(&h);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(r.headers()[header::RETRY_AFTER], "300");
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,application/json;q=0.9"),
        );
        let r = page.respond(&h);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
