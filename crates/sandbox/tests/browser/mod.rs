//! A small W3C WebDriver client over `reqwest`, enough to drive a headless Chromium through
//! `chromedriver`: sessions, navigation, elements (find, click, type, text), scripts, window size
//! and screenshots; and the page checks both consoles run (keyboard reach, contrast). The
//! gateway's console tests include this file too (`#[path]`), so there is one client. The tests
//! need a dozen commands; speaking the JSON protocol directly keeps the dev-dependencies to what
//! the tests already use.
//!
//! Whether the tests run: with `MYNAH_BROWSER_TESTS=1` they must (a missing `chromedriver` or
//! `chromium` fails them — CI sets it); with `MYNAH_BROWSER_TESTS=0` they are skipped; unset, they
//! run when both programs are on the `PATH` and are skipped (with a line on stderr) otherwise.
#![allow(dead_code)]

use base64::Engine;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for the page lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The browser binary: `MYNAH_CHROMIUM`, or `chromium` / `chromium-browser` / `google-chrome` on
/// the `PATH`.
fn browser_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MYNAH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|p| on_path(p))
}

/// Whether the browser tests run here; panics when they must but cannot.
pub fn enabled(test: &str) -> bool {
    let wanted = std::env::var("MYNAH_BROWSER_TESTS").ok();
    let found = on_path("chromedriver").is_some() && browser_binary().is_some();
    match wanted.as_deref() {
        Some("0") => {
            eprintln!("{test}: skipped (MYNAH_BROWSER_TESTS=0)");
            false
        }
        Some(_) => {
            assert!(
                found,
                "{test}: MYNAH_BROWSER_TESTS is set but chromedriver or chromium is missing \
                 (apt-get install chromium chromium-driver)"
            );
            true
        }
        None if found => true,
        None => {
            eprintln!(
                "{test}: skipped: no chromedriver and chromium on the PATH \
                 (set MYNAH_BROWSER_TESTS=1 to make this an error)"
            );
            false
        }
    }
}

/// A script for [`Browser::eval`]: every focusable control of the page that is visible must be
/// reachable by Tab (no negative tabindex) and have a name; returns those that fail (`[]`).
pub const UNNAMED_CONTROLS: &str = r#"
  const bad = [];
  for (const c of document.querySelectorAll('button, input, select, textarea, a[href]')) {
    if (c.closest('[hidden]') || c.offsetParent === null) continue;
    if (c.tabIndex < 0) bad.push('not tabbable: ' + c.outerHTML.slice(0, 80));
    const name = (c.getAttribute('aria-label') || c.textContent || c.labels?.[0]?.textContent || c.placeholder || c.title || '').trim();
    if (!name && c.type !== 'checkbox') bad.push('no name: ' + c.outerHTML.slice(0, 80));
  }
  return bad;
"#;

/// A script for [`Browser::eval`]: text whose contrast with its background is below WCAG AA (4.5:1, or 3:1 for large text).
pub const LOW_CONTRAST: &str = r#"
  const rgb = (c) => { const m = c.match(/[\d.]+/g); return m ? m.map(Number) : [0, 0, 0, 0]; };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0.9) return c;
    }
    return [255, 255, 255];
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || el.offsetParent === null || el.closest('[hidden], .sr-only')) continue;
    const s = getComputedStyle(el);
    if (el.closest('button:disabled')) continue;
    const fg = rgb(s.color), bg = background(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(`${ratio.toFixed(2)} ${el.tagName}.${el.className}: ${n.textContent.trim().slice(0, 30)}`);
  }
  return [...new Set(bad)];
"#;

/// A `chromedriver` child process and one browser session in it.
pub struct Browser {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("its address").port()
}

impl Browser {
    /// Starts `chromedriver` and a headless browser window of `width` × `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a client");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            assert!(started.elapsed() < WAIT, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let binary = browser_binary().expect("a browser binary");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                ],
            },
        } } });
        let r = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let v: Value = r.json().await.expect("session answer");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        let mut b = Browser {
            child,
            base,
            session,
            http,
        };
        b.resize(width, height).await;
        b
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method.clone(), path, body).await {
            Ok(v) => v,
            Err((status, v)) => panic!("WebDriver {method} {path}: {status} {v}"),
        }
    }

    /// A WebDriver command; its error answer as it came.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (reqwest::StatusCode, Value)> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        } else if method == reqwest::Method::POST {
            req = req.json(&json!({}));
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v["value"].clone())
        } else {
            Err((status, v))
        }
    }

    /// Clicks the element `css` matches, found again if the page re-rendered it in between (a
    /// live update can replace an element between finding and clicking it).
    pub async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let e = self.find(css).await;
            match self
                .try_call(
                    reqwest::Method::POST,
                    &format!("/element/{}/click", e.id),
                    None,
                )
                .await
            {
                Ok(_) => return,
                Err((_, v)) if v["value"]["error"] == "stale element reference" => {
                    assert!(started.elapsed() < WAIT, "{css} kept being replaced");
                }
                Err((status, v)) => panic!("click on {css}: {status} {v}"),
            }
        }
    }

    /// Waits for an element `css` matches, then runs `script` with `css` as `arguments[0]` and
    /// `extra` after it: what the script reads is read from the page in one step (an element
    /// the page re-renders meanwhile cannot go stale in between).
    async fn read_element(&self, css: &str, script: &str, extra: &[Value]) -> Value {
        self.wait_for(
            &format!("an element {css}"),
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        )
        .await;
        let mut args = vec![json!(css)];
        args.extend_from_slice(extra);
        self.eval(script, Value::Array(args)).await
    }

    /// An attribute of the first element `css` matches (waiting for it to be there).
    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.read_element(
            css,
            "return document.querySelector(arguments[0])?.getAttribute(arguments[1]) ?? null",
            &[json!(name)],
        )
        .await
        .as_str()
        .map(str::to_string)
    }

    /// The rendered text of the element `css` matches (waiting for it to be there).
    pub async fn text(&self, css: &str) -> String {
        self.read_element(
            css,
            "return document.querySelector(arguments[0])?.innerText ?? ''",
            &[],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Sets the viewport's size (the window is made to fit it).
    pub async fn resize(&mut self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
        // The window's outer size includes nothing in headless mode, but be exact anyway.
        let inner = self
            .eval("return [innerWidth, innerHeight]", json!([]))
            .await;
        let (w, h) = (
            inner[0].as_i64().unwrap_or(0),
            inner[1].as_i64().unwrap_or(0),
        );
        if (w, h) != (i64::from(width), i64::from(height)) {
            let ow = i64::from(width) * 2 - w;
            let oh = i64::from(height) * 2 - h;
            self.call(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({ "width": ow, "height": oh })),
            )
            .await;
        }
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs a script (`return …`) with `args`; its result.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits (polling, at most [`WAIT`]) until `script` returns something truthy; returns it.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(script, args.clone()).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return v;
            }
            if started.elapsed() > WAIT {
                let page = self
                    .eval("return [document.querySelector('main')?.innerText, document.querySelector('#toasts')?.innerText]", json!([]))
                    .await;
                panic!(
                    "waited {WAIT:?} for {what}; the page shows:\n{}\ntoasts: {}",
                    page[0].as_str().unwrap_or_default(),
                    page[1]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an element matches `css`; returns it.
    pub async fn find(&self, css: &str) -> Element<'_> {
        self.wait_for(
            &format!("an element {css}"),
            "return document.querySelector(arguments[0]) !== null",
            json!([css]),
        )
        .await;
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        Element {
            browser: self,
            id: v[ELEMENT].as_str().expect("an element id").to_string(),
        }
    }

    /// The element that has the focus.
    pub async fn active(&self) -> Element<'_> {
        let v = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        Element {
            browser: self,
            id: v[ELEMENT].as_str().expect("an element id").to_string(),
        }
    }

    /// Presses keys on the focused element (WebDriver key codes: `\u{E004}` Tab, `\u{E007}`
    /// Enter).
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({ "type": "keyDown", "value": c.to_string() }),
                    json!({ "type": "keyUp", "value": c.to_string() }),
                ]
            })
            .collect();
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({ "actions": [ { "type": "key", "id": "keyboard", "actions": actions } ] })),
        )
        .await;
        self.call(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// A PNG of the viewport, saved as `name` under the screenshot directory: the workspace's
    /// `docs/screenshots/` with `MYNAH_SCREENSHOTS=1` (what the README shows), the test's
    /// scratch directory otherwise. Returns the file.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64"))
            .expect("a PNG");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        let dir = if std::env::var("MYNAH_SCREENSHOTS").is_ok_and(|v| v == "1") {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
        } else {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
        };
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failing test still ends its driver (and with it the browser).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    /// Clicks it (scrolled into view first, as a user would).
    pub async fn click(&self) {
        self.browser
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/click", self.id),
                None,
            )
            .await;
    }

    /// Types into it.
    pub async fn type_text(&self, text: &str) {
        self.browser
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/value", self.id),
                Some(json!({ "text": text })),
            )
            .await;
    }

    /// Empties an input.
    pub async fn clear(&self) {
        self.browser
            .call(
                reqwest::Method::POST,
                &format!("/element/{}/clear", self.id),
                None,
            )
            .await;
    }

    /// Its rendered text.
    pub async fn text(&self) -> String {
        self.browser
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", self.id),
                None,
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// An attribute.
    pub async fn attr(&self, name: &str) -> Option<String> {
        self.browser
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/attribute/{name}", self.id),
                None,
            )
            .await
            .as_str()
            .map(str::to_string)
    }
}
