//! Keeping credentials out of messages: URLs are shown redacted wherever they reach an
//! error, a log line, a status or the status API.

/// Query parameter names (lowercase substrings) whose values are treated as secrets.
const SECRET_PARAMS: [&str; 6] = ["token", "password", "passwd", "secret", "key", "auth"];

/// `url` with its credentials replaced by `***`: the user information (`user:pass@`, the
/// user name included) becomes `***@`, and the value of every query parameter whose name
/// looks secret (contains `token`, `password`, `secret`, `key`, `auth`; any case) becomes
/// `***`. Works on text that is not a valid URL too, erring on the side of hiding more.
///
/// ```
/// use wvo_collector::redact_url;
/// assert_eq!(
///     redact_url("http://user:pass@prom:9090/api?access_token=abc&query=up"),
///     "http://***@prom:9090/api?access_token=***&query=up"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let query_at = rest.find('?').unwrap_or(rest.len());
    // The last `@` before the query ends the user information: a password may hold an
    // unencoded `@`, `/` or `#` (over-hiding a path with an `@` in it is harmless).
    let rest = match rest[..query_at].rfind('@') {
        Some(at) => format!("***{}", &rest[at..]),
        None => rest.to_string(),
    };
    let Some(q) = rest.find('?') else {
        return format!("{scheme}{rest}");
    };
    let (head, query) = rest.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((name, _)) if looks_secret(name) => format!("{name}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{scheme}{head}{}{fragment}", params.join("&"))
}

/// Whether a query parameter named `name` likely carries a secret.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| n.contains(s))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn user_and_password_are_hidden() {
        assert_eq!(
            redact_url("http://user:s3cret@prom:9090/"),
            "http://***@prom:9090/"
        );
        assert_eq!(
            redact_url("https://admin@prom.example/api/v1/query"),
            "https://***@prom.example/api/v1/query"
        );
    }

    #[test]
    fn a_password_alone_is_hidden() {
        assert_eq!(redact_url("http://:s3cret@prom/"), "http://***@prom/");
    }

    #[test]
    fn a_password_with_reserved_characters_is_hidden() {
        let r = redact_url("http://u:p@ss/w#rd@prom:9090/x");
        assert_eq!(r, "http://***@prom:9090/x");
    }

    #[test]
    fn secret_query_parameters_are_hidden() {
        assert_eq!(
            redact_url("http://p/metrics?Token=t1&query=up&API_KEY=k&password=p&x&time=1#f"),
            "http://p/metrics?Token=***&query=up&API_KEY=***&password=***&x&time=1#f"
        );
        assert_eq!(
            redact_url("http://p/?access_token=a&client_secret=b"),
            "http://p/?access_token=***&client_secret=***"
        );
    }

    #[test]
    fn a_url_without_scheme_is_redacted() {
        assert_eq!(redact_url("user:pw@prom:9090/x"), "***@prom:9090/x");
        assert_eq!(redact_url("prom:9090/x?token=t"), "prom:9090/x?token=***");
    }

    #[test]
    fn an_ipv6_host_is_kept() {
        assert_eq!(
            redact_url("http://user:pw@[::1]:9090/api"),
            "http://***@[::1]:9090/api"
        );
        assert_eq!(redact_url("http://[::1]:9090/api"), "http://[::1]:9090/api");
    }

    #[test]
    fn text_that_is_no_url_stays_safe() {
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(redact_url(""), "");
        let r = redact_url("ht!tp://us er:pa ss@ho st/");
        assert!(!r.contains("pa ss") && !r.contains("us er"), "{r}");
        let r = redact_url("http://user:pw@");
        assert_eq!(r, "http://***@");
    }

    #[test]
    fn urls_without_credentials_are_unchanged() {
        for u in [
            "http://127.0.0.1:9090",
            "https://prom.monitoring.svc:9090/api/v1/query?query=up%7B%7D&time=1.5",
        ] {
            assert_eq!(redact_url(u), u);
        }
    }
}
