//! Credentials stay secret: a URL's user name and password appear in no error, reason or
//! debug output, and a rotated bearer-token file is used at the next request. Fake
//! endpoints run on 127.0.0.1 only.

use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wvo_collector::{
    observe, CollectorError, HttpConfig, ObserveConfig, PrometheusConfig, PrometheusSource,
    RateRange, ScrapeConfig, SourceConfig, Target, TokenFile, Window, MAX_POINTS_PER_REQUEST,
};

/// Fails with the offending text when it holds the password or the user name.
fn assert_no_credentials(what: &str, text: &str) {
    assert!(
        !text.contains("s3cret") && !text.contains("user:") && !text.contains("hunter"),
        "{what} leaks a credential: {text}"
    );
}

fn prometheus_cfg(base_url: &str, http: HttpConfig) -> PrometheusConfig {
    PrometheusConfig {
        base_url: base_url.into(),
        namespace: None,
        model: None,
        http,
    }
}

fn quick() -> HttpConfig {
    HttpConfig {
        timeout: Duration::from_secs(2),
        ..HttpConfig::default()
    }
}

#[tokio::test]
async fn prometheus_down_names_the_url_without_its_credentials() {
    // Port 1: nothing listens there.
    let base = "http://user:s3cret@127.0.0.1:1/?token=hunter2";
    let cfg = ObserveConfig {
        source: SourceConfig::Prometheus(prometheus_cfg(base, quick())),
        window: Window::default(),
        targets: vec![Target {
            namespace: "ns".into(),
            model: "m".into(),
            variant: "v".into(),
            pod: "p".into(),
            url: String::new(),
        }],
    };
    let obs = observe(&cfg).await.expect("config is valid");
    assert!(!obs.errors.is_empty());
    for e in &obs.errors {
        assert_no_credentials("an observation error", e);
        assert!(e.contains("http://***@127.0.0.1:1/"), "{e}");
    }
    assert_no_credentials("the observations", &format!("{obs:?}"));
    let m = obs.model("m").expect("the target's model is reported");
    let reason = m.figures.arrival_rate_rps.reason().expect("unknown");
    assert_no_credentials("an unknown figure's reason", reason);

    let src = PrometheusSource::new(prometheus_cfg(base, quick()), Window::default(), vec![])
        .expect("config is valid");
    let e = src.instant_sum("up").await.expect_err("down");
    assert!(matches!(e, CollectorError::Http { .. }), "{e:?}");
    assert_no_credentials("an instant query error", &e.to_string());
    assert_no_credentials("an instant query error's debug", &format!("{e:?}"));
    let range = RateRange::for_history(1_800_000_000.0, 60, 60.0).expect("range");
    let e = src
        .arrival_rates(range, MAX_POINTS_PER_REQUEST)
        .await
        .expect_err("down");
    assert_no_credentials("a range query error", &e.to_string());
    assert_no_credentials("a range query error's debug", &format!("{e:?}"));
}

#[tokio::test]
async fn a_bad_url_is_refused_without_echoing_its_credentials() {
    let e = PrometheusSource::new(
        prometheus_cfg("ftp://user:s3cret@host/", quick()),
        Window::default(),
        vec![],
    )
    .expect_err("not http");
    assert_no_credentials("a config error", &e.to_string());
    let e = wvo_collector::ScrapeSource::new(
        ScrapeConfig {
            targets: vec![Target::from_url("gopher://user:s3cret@host/metrics")],
            ..ScrapeConfig::default()
        },
        Window::default(),
    )
    .expect_err("not http");
    assert_no_credentials("a scrape config error", &e.to_string());
}

#[tokio::test]
async fn a_scrape_target_down_names_its_url_without_credentials() {
    let cfg = ObserveConfig {
        source: SourceConfig::Scrape(ScrapeConfig {
            targets: vec![Target::from_url(
                "http://user:s3cret@127.0.0.1:1/metrics?access_token=hunter2",
            )],
            http: quick(),
            interval: Duration::from_millis(10),
        }),
        window: Window::default(),
        targets: vec![],
    };
    let obs = observe(&cfg).await.expect("config is valid");
    assert!(!obs.errors.is_empty());
    assert_no_credentials("the observations", &format!("{obs:?}"));
}

#[test]
fn the_debug_of_http_settings_hides_the_token() {
    let cfg = HttpConfig {
        bearer_token: Some("hunter2".into()),
        ..HttpConfig::default()
    };
    let shown = format!("{cfg:?}");
    assert!(shown.contains(r#"bearer_token: Some("***")"#), "{shown}");
    assert_no_credentials("HttpConfig's debug", &shown);
}

#[test]
fn the_debug_of_a_prometheus_source_hides_the_urls_credentials() {
    let cfg = prometheus_cfg(
        "http://user:s3cret@127.0.0.1:9090/?token=hunter2",
        HttpConfig {
            bearer_token: Some("hunter2".into()),
            ..HttpConfig::default()
        },
    );
    let shown = format!("{cfg:?}");
    assert!(shown.contains("***@127.0.0.1:9090"), "{shown}");
    assert_no_credentials("PrometheusConfig's debug", &shown);
    let src = PrometheusSource::new(cfg, Window::default(), vec![]).expect("a source");
    let shown = format!("{src:?}");
    assert!(shown.contains("***@127.0.0.1:9090"), "{shown}");
    assert_no_credentials("PrometheusSource's debug", &shown);
}

/// A unique path in the temporary directory.
fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wvo-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn a_rotated_token_file_is_sent_at_the_next_request() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/api/v1/query",
        get(move |headers: HeaderMap| {
            let record = record.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                record.lock().expect("lock").push(auth);
                r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });

    let path = temp_path("token");
    std::fs::write(&path, "first-token\n").expect("write the token");
    let file = TokenFile::open(&path).expect("token file");
    assert!(!format!("{file:?}").contains("first-token"));
    let http = HttpConfig {
        bearer_token_file: Some(file),
        ..quick()
    };
    let src = PrometheusSource::new(
        prometheus_cfg(&format!("http://{addr}"), http),
        Window::default(),
        vec![],
    )
    .expect("config is valid");
    assert_eq!(src.instant_sum("up").await.expect("answer"), 0.0);
    // The kubelet swaps the file for a new token; no restart.
    std::fs::write(&path, "second-token-after-rotation\n").expect("rotate the token");
    assert_eq!(src.instant_sum("up").await.expect("answer"), 0.0);
    // A file emptied mid-rotation keeps the last token.
    std::fs::write(&path, "").expect("empty the token file");
    assert_eq!(src.instant_sum("up").await.expect("answer"), 0.0);
    let _ = std::fs::remove_file(&path);
    server.abort();
    assert_eq!(
        *seen.lock().expect("lock"),
        [
            "Bearer first-token",
            "Bearer second-token-after-rotation",
            "Bearer second-token-after-rotation"
        ]
    );
}

#[test]
fn a_missing_or_empty_token_file_is_refused() {
    let path = temp_path("empty-token");
    std::fs::write(&path, "  \n").expect("write");
    let e = TokenFile::open(&path).expect_err("empty");
    assert!(e.to_string().contains("empty"), "{e}");
    let _ = std::fs::remove_file(&path);
    assert!(TokenFile::open(temp_path("no-such-token")).is_err());
}
