//! `lake cp`: planned transfers (uploads, downloads, stdin and stdout), run `-j` at a time.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde_json::json;

use super::objects::cat;
use crate::client::file_etag;
use crate::error::{LakeError, Result};
use crate::output::human_bytes;
use crate::path::{is_remote, RemotePath};
use crate::Ctx;

/// Read and write buffer of a transfer.
const CHUNK: usize = 1024 * 1024;

/// Files up to this size are read whole and sent in one body; larger ones stream.
const WHOLE_READ: u64 = 1024 * 1024;

/// `1 file`, `2 files`.
pub(super) fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One side of a copy.
enum Side {
    Local(PathBuf),
    Remote(RemotePath),
    Std,
}

fn side(s: &str) -> Result<Side> {
    if s == "-" {
        Ok(Side::Std)
    } else if is_remote(s) {
        RemotePath::parse(s).map(Side::Remote)
    } else {
        Ok(Side::Local(PathBuf::from(s)))
    }
}

/// One planned transfer.
#[derive(Debug)]
enum Transfer {
    Upload {
        from: PathBuf,
        to: RemotePath,
        size: u64,
    },
    Download {
        from: RemotePath,
        to: PathBuf,
        size: u64,
        etag: String,
    },
}

impl Transfer {
    fn size(&self) -> u64 {
        match self {
            Self::Upload { size, .. } | Self::Download { size, .. } => *size,
        }
    }
}

/// Every regular file under `dir`, with its `/`-separated path relative to `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<(PathBuf, String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| LakeError::io(d.display(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LakeError::io(d.display(), e))?;
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(|e| LakeError::io(path.display(), e))?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((path, rel, meta.len()));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// What a copy did, for `register --upload-to` and the summary.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Copied {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    pub(crate) skipped: usize,
}

/// `lake cp [-r] [-j N] [--update] SRC DST`.
#[allow(clippy::too_many_lines)]
pub(crate) async fn cp(
    ctx: &Ctx,
    src: &str,
    dst: &str,
    recursive: bool,
    jobs: usize,
    update: bool,
) -> Result<Copied> {
    let started = Instant::now();
    let plan = match (side(src)?, side(dst)?) {
        (Side::Std, Side::Remote(to)) => {
            if to.is_dir() {
                return Err(LakeError::Usage(format!(
                    "{to} is a prefix: name the object to write stdin to"
                )));
            }
            upload_stdin(ctx, &to).await?;
            ctx.out.result(
                &json!({"source": "-", "destination": to.to_string(), "status": "copied"}),
                None,
            );
            return Ok(Copied {
                files: 1,
                ..Copied::default()
            });
        }
        (Side::Remote(from), Side::Std) => {
            cat(ctx, &from.to_string()).await?;
            return Ok(Copied {
                files: 1,
                ..Copied::default()
            });
        }
        (Side::Local(from), Side::Remote(to)) => plan_upload(&from, &to, recursive)?,
        (Side::Remote(from), Side::Local(to)) => plan_download(ctx, &from, &to, recursive).await?,
        (Side::Remote(_), Side::Remote(_)) => {
            return Err(LakeError::Usage(
                "copying between two remote paths is not supported: download, then upload".into(),
            ))
        }
        _ => {
            return Err(LakeError::Usage(
                "one side of a copy is a remote path (s3://bucket/key)".into(),
            ))
        }
    };
    let remote_etags = if update {
        existing_remote(ctx, &plan).await?
    } else {
        HashMap::new()
    };
    let total: u64 = plan.iter().map(Transfer::size).sum();
    let bar = ctx.out.progress(total);
    let count = plan.len();
    let results: Vec<(Transfer, Result<bool>)> = futures_util::stream::iter(plan)
        .map(|t| {
            let bar = bar.clone();
            let remote_etags = &remote_etags;
            async move {
                let r = run_transfer(ctx, &t, update, remote_etags, &bar).await;
                (t, r)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    // The final bar stays on the terminal: what was done, at what rate.
    bar.finish();
    let mut copied = Copied::default();
    let mut failed = 0;
    for (t, r) in results {
        let (source, destination) = match &t {
            Transfer::Upload { from, to, .. } => (from.display().to_string(), to.to_string()),
            Transfer::Download { from, to, .. } => (from.to_string(), to.display().to_string()),
        };
        match r {
            Ok(skipped) => {
                let status = if skipped { "skipped" } else { "copied" };
                if skipped {
                    copied.skipped += 1;
                } else {
                    copied.files += 1;
                    copied.bytes += t.size();
                }
                ctx.out.result(
                    &json!({"source": source, "destination": destination, "bytes": t.size(), "status": status}),
                    None,
                );
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(std::io::stderr(), "lake: {source} → {destination}: {e}");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    ctx.out.summary(&format!(
        "copied {} ({}) in {secs:.1} s{}",
        plural(copied.files, "file"),
        human_bytes(copied.bytes),
        if copied.skipped > 0 {
            format!(", {} unchanged skipped", copied.skipped)
        } else {
            String::new()
        }
    ));
    if failed > 0 {
        return Err(LakeError::Invalid(format!(
            "{failed} of {count} transfers failed"
        )));
    }
    Ok(copied)
}

fn plan_upload(from: &Path, to: &RemotePath, recursive: bool) -> Result<Vec<Transfer>> {
    let meta = std::fs::metadata(from).map_err(|e| LakeError::io(from.display(), e))?;
    if meta.is_dir() {
        if !recursive {
            return Err(LakeError::Usage(format!(
                "{} is a directory: use -r to copy it",
                from.display()
            )));
        }
        return Ok(walk(from)?
            .into_iter()
            .map(|(path, rel, size)| Transfer::Upload {
                from: path,
                to: to.join(&rel),
                size,
            })
            .collect());
    }
    let to = if to.is_dir() {
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| LakeError::Usage(format!("{} has no file name", from.display())))?;
        to.join(&name)
    } else {
        to.clone()
    };
    Ok(vec![Transfer::Upload {
        from: from.to_path_buf(),
        to,
        size: meta.len(),
    }])
}

async fn plan_download(
    ctx: &Ctx,
    from: &RemotePath,
    to: &Path,
    recursive: bool,
) -> Result<Vec<Transfer>> {
    if recursive {
        let prefix = from.native_dir();
        let objects = ctx.storaged.list_all(&prefix).await?;
        return Ok(objects
            .into_iter()
            .map(|o| {
                let mut path = to.to_path_buf();
                for segment in o.key[prefix.len()..].split('/') {
                    path.push(segment);
                }
                Transfer::Download {
                    from: RemotePath::from_native(&o.key),
                    to: path,
                    size: o.size,
                    etag: o.etag,
                }
            })
            .collect());
    }
    if from.is_dir() {
        return Err(LakeError::Usage(format!(
            "{from} is a prefix: use -r to copy everything under it"
        )));
    }
    let Some(head) = ctx.storaged.head(&from.native()).await? else {
        return Err(LakeError::Invalid(format!("{from}: no such object")));
    };
    let to = if to.is_dir() || to.as_os_str().to_string_lossy().ends_with('/') {
        to.join(from.file_name().unwrap_or("object"))
    } else {
        to.to_path_buf()
    };
    Ok(vec![Transfer::Download {
        from: from.clone(),
        to,
        size: head.size,
        etag: head.etag,
    }])
}

/// For `--update` uploads: what the destination already holds, key → (size, ETag).
async fn existing_remote(ctx: &Ctx, plan: &[Transfer]) -> Result<HashMap<String, (u64, String)>> {
    let mut out = HashMap::new();
    let uploads: Vec<&RemotePath> = plan
        .iter()
        .filter_map(|t| match t {
            Transfer::Upload { to, .. } => Some(to),
            Transfer::Download { .. } => None,
        })
        .collect();
    if uploads.len() == 1 {
        if let Some(h) = ctx.storaged.head(&uploads[0].native()).await? {
            out.insert(uploads[0].native(), (h.size, h.etag));
        }
    } else if let Some(first) = uploads.first() {
        // One listing of the common prefix rather than a HEAD per file.
        let keys: Vec<String> = uploads.iter().map(|p| p.native()).collect();
        let mut common = first.native();
        for k in &keys {
            while !k.starts_with(&common) {
                common.pop();
            }
        }
        for o in ctx.storaged.list_all(&common).await? {
            out.insert(o.key, (o.size, o.etag));
        }
    }
    Ok(out)
}

/// Runs one transfer; `Ok(true)` when `--update` found it unchanged.
async fn run_transfer(
    ctx: &Ctx,
    t: &Transfer,
    update: bool,
    remote: &HashMap<String, (u64, String)>,
    bar: &ProgressBar,
) -> Result<bool> {
    match t {
        Transfer::Upload { from, to, size } => {
            if update {
                if let Some((rsize, retag)) = remote.get(&to.native()) {
                    if rsize == size && file_etag(from)? == *retag {
                        bar.inc(*size);
                        return Ok(true);
                    }
                }
            }
            if *size <= WHOLE_READ {
                // Small files in one read: no blocking-pool round trips per file.
                let data = std::fs::read(from).map_err(|e| LakeError::io(from.display(), e))?;
                if data.len() as u64 != *size {
                    return Err(LakeError::Invalid(format!(
                        "{} changed size while being copied",
                        from.display()
                    )));
                }
                ctx.storaged
                    .put_bytes(&to.native(), Bytes::from(data))
                    .await?;
                bar.inc(*size);
                return Ok(false);
            }
            let file = tokio::fs::File::open(from)
                .await
                .map_err(|e| LakeError::io(from.display(), e))?;
            let bar = bar.clone();
            let capacity = usize::try_from(*size).unwrap_or(CHUNK).clamp(4096, CHUNK);
            let body =
                tokio_util::io::ReaderStream::with_capacity(file, capacity).inspect_ok(move |c| {
                    bar.inc(c.len() as u64);
                });
            ctx.storaged
                .put_stream(&to.native(), Some(*size), body)
                .await?;
            Ok(false)
        }
        Transfer::Download {
            from,
            to,
            size,
            etag,
        } => {
            if update {
                if let Ok(meta) = std::fs::metadata(to) {
                    if meta.len() == *size && file_etag(to)? == *etag {
                        bar.inc(*size);
                        return Ok(true);
                    }
                }
            }
            download(ctx, from, to, bar).await?;
            Ok(false)
        }
    }
}

/// Downloads into a hidden temporary file beside `to`, renamed into place when complete.
async fn download(ctx: &Ctx, from: &RemotePath, to: &Path, bar: &ProgressBar) -> Result<()> {
    let Some(mut res) = ctx.storaged.get(&from.native(), None).await? else {
        return Err(LakeError::Invalid(format!("{from}: no such object")));
    };
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| LakeError::io(dir.display(), e))?;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.lake-{}", std::process::id()));
    let result = async {
        let mut file = std::fs::File::create(&tmp).map_err(|e| LakeError::io(tmp.display(), e))?;
        while let Some(chunk) = res.next().await {
            let chunk = chunk.map_err(|e| LakeError::Unreachable {
                service: "storaged",
                url: ctx.settings.storaged_url.clone(),
                message: format!("reading {from}: {e}"),
            })?;
            file.write_all(&chunk)
                .map_err(|e| LakeError::io(tmp.display(), e))?;
            bar.inc(chunk.len() as u64);
        }
        file.flush().map_err(|e| LakeError::io(tmp.display(), e))?;
        std::fs::rename(&tmp, to).map_err(|e| LakeError::io(to.display(), e))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

async fn upload_stdin(ctx: &Ctx, to: &RemotePath) -> Result<()> {
    let stdin = tokio::io::stdin();
    let body = tokio_util::io::ReaderStream::with_capacity(stdin, CHUNK);
    ctx.storaged.put_stream(&to.native(), None, body).await
}
