//! Objects: `ls`, `cat`, `stat`, `rm` (`cp` is in `cp.rs`).

use std::io::Write;

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::json;

use super::cp::plural;
use crate::client::ListedObject;
use crate::error::{LakeError, Result};
use crate::output::{human_bytes, write_line};
use crate::path::{check_bucket, RemotePath};
use crate::Ctx;

fn object_row(o: &ListedObject, long: bool) -> (serde_json::Value, Vec<String>) {
    let path = RemotePath::from_native(&o.key).to_string();
    let json = json!({
        "type": "object", "path": path, "key": o.key, "size": o.size,
        "etag": o.etag, "last_modified": o.last_modified,
    });
    let row = if long {
        vec![
            o.size.to_string(),
            o.last_modified.clone(),
            o.etag.clone(),
            path,
        ]
    } else {
        vec![path]
    };
    (json, row)
}

fn prefix_row(kind: &str, native: &str, long: bool) -> (serde_json::Value, Vec<String>) {
    let path = RemotePath::from_native(native).to_string();
    let json = json!({"type": kind, "path": path});
    let row = if long {
        vec!["PRE".into(), String::new(), String::new(), path]
    } else {
        vec![path]
    };
    (json, row)
}

/// `lake ls [-r] [-l] [s3://bucket/prefix]`.
pub(crate) async fn ls(ctx: &Ctx, path: Option<&str>, recursive: bool, long: bool) -> Result<()> {
    let header: &[&str] = if long {
        &["size", "modified", "etag", "path"]
    } else {
        &["path"]
    };
    let Some(path) = path.filter(|p| *p != "s3://") else {
        // The buckets: the first segments of every key (the catalog's area is no bucket).
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = ctx
                .storaged
                .list_page("", Some("/"), token.as_deref())
                .await?;
            for p in &page.common_prefixes {
                if check_bucket(p.trim_end_matches('/')).is_ok() {
                    rows.push(prefix_row("bucket", p, long));
                }
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        ctx.out.table(header, &rows);
        return Ok(());
    };
    let remote = RemotePath::parse(path)?;
    let prefix = remote.native();
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ctx
            .storaged
            .list_page(
                &prefix,
                if recursive { None } else { Some("/") },
                token.as_deref(),
            )
            .await?;
        // Objects and prefixes of one page, merged back into key order.
        let mut entries: Vec<(String, (serde_json::Value, Vec<String>))> = page
            .objects
            .iter()
            .map(|o| (o.key.clone(), object_row(o, long)))
            .chain(
                page.common_prefixes
                    .iter()
                    .map(|p| (p.clone(), prefix_row("prefix", p, long))),
            )
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        rows.extend(entries.into_iter().map(|(_, r)| r));
        match page.next_continuation_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    ctx.out.table(header, &rows);
    Ok(())
}

fn object_path(path: &str) -> Result<RemotePath> {
    let remote = RemotePath::parse(path)?;
    if remote.is_dir() {
        return Err(LakeError::Usage(format!(
            "{remote} is a prefix, not an object"
        )));
    }
    Ok(remote)
}

/// `lake cat s3://bucket/key`: the object's bytes on stdout.
pub(crate) async fn cat(ctx: &Ctx, path: &str) -> Result<()> {
    let remote = object_path(path)?;
    let Some(mut res) = ctx.storaged.get(&remote.native(), None).await? else {
        return Err(LakeError::Invalid(format!("{remote}: no such object")));
    };
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = res.next().await {
        let chunk: Bytes = chunk.map_err(|e| LakeError::Unreachable {
            service: "storaged",
            url: ctx.settings.storaged_url.clone(),
            message: format!("reading {remote}: {e}"),
        })?;
        if let Err(e) = stdout.write_all(&chunk) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(LakeError::io("stdout", e));
        }
    }
    stdout.flush().map_err(|e| LakeError::io("stdout", e))
}

/// `lake stat s3://bucket/key`.
pub(crate) async fn stat(ctx: &Ctx, path: &str) -> Result<()> {
    let remote = object_path(path)?;
    let Some(head) = ctx.storaged.head(&remote.native()).await? else {
        return Err(LakeError::Invalid(format!("{remote}: no such object")));
    };
    let json = json!({
        "path": remote.to_string(), "key": remote.native(), "size": head.size,
        "etag": head.etag, "last_modified": head.last_modified, "content_type": head.content_type,
    });
    if ctx.out.json {
        ctx.out.result(&json, None);
        return Ok(());
    }
    write_line(&format!("path          {remote}"));
    write_line(&format!(
        "size          {} ({})",
        head.size,
        human_bytes(head.size)
    ));
    write_line(&format!("etag          {}", head.etag));
    if let Some(m) = &head.last_modified {
        write_line(&format!("last modified {m}"));
    }
    if let Some(c) = &head.content_type {
        write_line(&format!("content type  {c}"));
    }
    Ok(())
}

/// `lake rm [-r] s3://...`.
pub(crate) async fn rm(ctx: &Ctx, path: &str, recursive: bool) -> Result<()> {
    let remote = RemotePath::parse(path)?;
    if !recursive {
        if remote.is_dir() {
            return Err(LakeError::Usage(format!(
                "{remote} is a prefix: use -r to remove everything under it"
            )));
        }
        if ctx.storaged.head(&remote.native()).await?.is_none() {
            return Err(LakeError::Invalid(format!("{remote}: no such object")));
        }
        ctx.storaged.delete(&remote.native()).await?;
        ctx.out.result(
            &json!({"path": remote.to_string(), "status": "removed"}),
            Some(&format!("removed {remote}")),
        );
        return Ok(());
    }
    let objects = ctx.storaged.list_all(&remote.native_dir()).await?;
    let count = objects.len();
    let results: Vec<(String, Result<()>)> = futures_util::stream::iter(objects)
        .map(|o| async move {
            let r = ctx.storaged.delete(&o.key).await;
            (o.key, r)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut failed = 0;
    for (key, r) in results {
        let path = RemotePath::from_native(&key).to_string();
        match r {
            Ok(()) => ctx
                .out
                .result(&json!({"path": path, "status": "removed"}), None),
            Err(e) => {
                failed += 1;
                let _ = writeln!(std::io::stderr(), "lake: {path}: {e}");
            }
        }
    }
    ctx.out.summary(&format!(
        "removed {} under {remote}",
        plural(count - failed, "object")
    ));
    if failed > 0 {
        return Err(LakeError::Invalid(format!(
            "{failed} of {count} removals failed"
        )));
    }
    Ok(())
}
