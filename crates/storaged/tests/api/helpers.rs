//! `spawn_app()` and a small typed client.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use bytes::Bytes;
use storaged::config::{Overrides, Settings};
use storaged::startup::Application;

pub(crate) struct TestApp {
    pub(crate) port: u16,
    pub(crate) root: tempfile::TempDir,
    pub(crate) handle: ServerHandle,
    pub(crate) client: awc::Client,
}

pub(crate) use testkit::Reply;

pub(crate) fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(120))
        .finish()
}

pub(crate) fn test_settings(data_dir: &Path) -> Settings {
    let mut settings = Settings::load(
        None,
        &HashMap::new(),
        &Overrides {
            listen: Some("127.0.0.1:0".into()),
            s3_listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.to_path_buf()),
            ..Default::default()
        },
    )
    .unwrap();
    // The smallest write-log segment: the tests start many apps, each making one.
    settings.log_segment_size = bytesize::ByteSize::mib(8);
    settings
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub(crate) async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let root = tempfile::tempdir().unwrap();
    spawn_in(root, configure).await
}

/// Starts an app whose data directory is `<root>/data`.
pub(crate) async fn spawn_in(
    root: tempfile::TempDir,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&root.path().join("data"));
    configure(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let port = app.port();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        root,
        handle,
        client: client(),
    }
}

impl TestApp {
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn object_url(&self, encoded_key: &str) -> String {
        self.url(&format!("/v1/objects/{encoded_key}"))
    }

    pub(crate) async fn send(&self, req: awc::ClientRequest, body: impl Into<Bytes>) -> Reply {
        let mut res = req.send_body(body.into()).await.expect("request sent");
        let body = res.body().limit(1 << 30).await.expect("body read");
        Reply {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        }
    }

    pub(crate) async fn put(&self, key: &str, body: impl Into<Bytes>) -> Reply {
        self.send(self.client.put(self.object_url(&encode(key))), body)
            .await
    }

    pub(crate) async fn put_with(
        &self,
        key: &str,
        header: (&str, &str),
        body: impl Into<Bytes>,
    ) -> Reply {
        self.send(
            self.client
                .put(self.object_url(&encode(key)))
                .insert_header(header),
            body,
        )
        .await
    }

    pub(crate) async fn get(&self, key: &str) -> Reply {
        self.send(self.client.get(self.object_url(&encode(key))), Bytes::new())
            .await
    }

    pub(crate) async fn delete(&self, key: &str) -> Reply {
        self.send(
            self.client.delete(self.object_url(&encode(key))),
            Bytes::new(),
        )
        .await
    }

    pub(crate) async fn list(&self, query: &str) -> Reply {
        self.send(
            self.client.get(self.url(&format!("/v1/objects?{query}"))),
            Bytes::new(),
        )
        .await
    }

    /// Stops the server and waits until it has released the data directory's lock, so a
    /// new app can be started on the same directory.
    pub(crate) async fn stop(self) -> tempfile::TempDir {
        self.handle.stop(true).await;
        let lock = self.data_dir().join("LOCK");
        for _ in 0..500 {
            let file = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
            if file.try_lock().is_ok() {
                return self.root;
            }
            drop(file);
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the stopped server still holds {}", lock.display());
    }
}

/// Percent-encodes every byte outside unreserved ASCII, keeping `/` as the separator.
pub(crate) fn encode(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(key, SET).to_string()
}

/// Every path under `root`, except those under `except`, with file contents.
pub(crate) fn snapshot(root: &Path, except: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.starts_with(except) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
                out.push((path, None));
            } else {
                out.push((path.clone(), std::fs::read(&path).ok()));
            }
        }
    }
    out.sort();
    out
}

/// Files in the data directory's temporary area.
pub(crate) fn temp_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("tmp")).map_or(0, Iterator::count)
}
