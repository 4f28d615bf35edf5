//! `lake fingerprint` and `lake register`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use manifest_codec::{
    decode_footer, footer_metadata_len, DatasetName, FooterInfo, FOOTER_TAIL_LEN,
};
use serde_json::json;

use super::cp;
use crate::client::ListedObject;
use crate::error::{LakeError, Result};
use crate::path::{is_remote, RemotePath};
use crate::Ctx;

/// The first read of a footer: most footers fit, so one ranged GET suffices.
const FOOTER_GUESS: u64 = 64 * 1024;

/// Footers read at once.
const FOOTER_CONCURRENCY: usize = 8;

/// Parses the footer from the file's last bytes `tail` (of a file of `size` bytes), or says
/// how many last bytes are needed.
fn footer_from_tail(
    tail: &[u8],
    size: u64,
) -> std::result::Result<Result<FooterInfo, String>, u64> {
    let meta_len = match footer_metadata_len(tail) {
        Ok(n) => n as u64,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let needed = meta_len + FOOTER_TAIL_LEN as u64;
    if needed > size {
        return Ok(Err(format!(
            "not a Parquet file: footer of {meta_len} bytes in a file of {size}"
        )));
    }
    if needed > tail.len() as u64 {
        return Err(needed);
    }
    let end = tail.len() - FOOTER_TAIL_LEN;
    #[allow(clippy::cast_possible_truncation)]
    let start = end - meta_len as usize;
    Ok(decode_footer(&tail[start..end]).map_err(|e| e.to_string()))
}

/// Reads a local file's footer (only its tail).
fn local_footer(path: &Path) -> Result<FooterInfo> {
    let io = |e| LakeError::io(path.display(), e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut want = size.min(FOOTER_GUESS);
    loop {
        let mut tail = vec![0; usize::try_from(want).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::End(-i64::try_from(want).unwrap_or(i64::MAX)))
            .map_err(io)?;
        file.read_exact(&mut tail).map_err(io)?;
        match footer_from_tail(&tail, size) {
            Ok(r) => return r.map_err(|e| LakeError::Invalid(format!("{}: {e}", path.display()))),
            Err(needed) => want = needed,
        }
    }
}

/// Reads a remote object's footer with ranged GETs (never the whole object).
async fn remote_footer(ctx: &Ctx, o: &ListedObject) -> Result<FooterInfo> {
    let path = RemotePath::from_native(&o.key);
    let mut want = o.size.min(FOOTER_GUESS);
    if want < FOOTER_TAIL_LEN as u64 {
        return Err(LakeError::Invalid(format!(
            "{path}: not a Parquet file ({} bytes)",
            o.size
        )));
    }
    loop {
        let tail = ctx
            .storaged
            .get_range(&o.key, &format!("bytes=-{want}"))
            .await?;
        match footer_from_tail(&tail, o.size) {
            Ok(r) => return r.map_err(|e| LakeError::Invalid(format!("{path}: {e}"))),
            Err(needed) if needed > want => want = needed,
            Err(_) => {
                return Err(LakeError::Invalid(format!(
                    "{path}: storaged returned {} bytes for the last {want}",
                    tail.len()
                )))
            }
        }
    }
}

fn fingerprint_of(what: &str, info: &FooterInfo) -> Result<String> {
    info.fingerprint()
        .map_err(|e| LakeError::Invalid(format!("{what}: {e}")))
}

/// `lake fingerprint FILE...`.
pub(crate) fn fingerprint(ctx: &Ctx, files: &[PathBuf]) -> Result<()> {
    for file in files {
        let info = local_footer(file)?;
        let fp = fingerprint_of(&file.display().to_string(), &info)?;
        ctx.out.result(
            &json!({"file": file.display().to_string(), "fingerprint": fp, "rows": info.num_rows}),
            Some(&format!("{fp}  {}", file.display())),
        );
    }
    Ok(())
}

/// The one fingerprint of all files, or an error naming the files that differ.
fn one_fingerprint(files: &[(String, String)]) -> Result<String> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (path, fp) in files {
        groups.entry(fp).or_default().push(path);
    }
    if groups.len() == 1 {
        return Ok(files[0].1.clone());
    }
    let (common, _) = groups
        .iter()
        .max_by_key(|(_, paths)| paths.len())
        .map(|(fp, paths)| (*fp, paths.len()))
        .unwrap_or_default();
    let mut odd: Vec<String> = groups
        .iter()
        .filter(|(fp, _)| **fp != common)
        .flat_map(|(fp, paths)| paths.iter().map(move |p| format!("{p} ({fp})")))
        .collect();
    let more = odd.len().saturating_sub(10);
    odd.truncate(10);
    Err(LakeError::Invalid(format!(
        "the files' schemas differ: {} of {} files have {common}, but {}{}",
        groups[common].len(),
        files.len(),
        odd.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )))
}

/// `lake register NAME SOURCE [--upload-to S3_PREFIX] [--fingerprint F]`.
pub(crate) async fn register(
    ctx: &Ctx,
    name: &str,
    source: &str,
    upload_to: Option<&str>,
    fingerprint: Option<&str>,
    jobs: usize,
) -> Result<()> {
    let name = DatasetName::parse(name)
        .map_err(|e| LakeError::Usage(format!("dataset name {name:?}: {e}")))?;
    let prefix = if is_remote(source) {
        if upload_to.is_some() {
            return Err(LakeError::Usage(
                "--upload-to is for a local directory; SOURCE is already remote".into(),
            ));
        }
        RemotePath::parse(source)?
    } else {
        let Some(target) = upload_to else {
            return Err(LakeError::Usage(format!(
                "{source} is local: give --upload-to s3://bucket/prefix/ to upload it first"
            )));
        };
        let target = RemotePath::parse(target)?;
        if !Path::new(source).is_dir() {
            return Err(LakeError::Usage(format!("{source} is not a directory")));
        }
        let dir = RemotePath::from_native(&target.native_dir());
        cp::cp(ctx, source, &dir.to_string(), true, jobs, true).await?;
        dir
    };
    let listed: Vec<ListedObject> = ctx
        .storaged
        .list_all(&prefix.native_dir())
        .await?
        .into_iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .collect();
    if listed.is_empty() {
        return Err(LakeError::Invalid(format!(
            "no .parquet objects under {}",
            RemotePath::from_native(&prefix.native_dir())
        )));
    }
    let footers: Vec<Result<FooterInfo>> = futures_util::stream::iter(&listed)
        .map(|o| remote_footer(ctx, o))
        .buffered(FOOTER_CONCURRENCY)
        .collect()
        .await;
    let mut rows: i64 = 0;
    let mut fingerprints = Vec::with_capacity(listed.len());
    for (o, footer) in listed.iter().zip(footers) {
        let footer = footer?;
        let path = RemotePath::from_native(&o.key).to_string();
        fingerprints.push((path.clone(), fingerprint_of(&path, &footer)?));
        rows = rows.saturating_add(footer.num_rows);
    }
    let computed = one_fingerprint(&fingerprints)?;
    let fingerprint = fingerprint.map_or(computed, str::to_owned);
    let body = json!({
        "name": name.as_str(),
        "schema_fingerprint": fingerprint,
        "objects": listed.iter().map(|o| json!({"key": o.key, "size": o.size})).collect::<Vec<_>>(),
        "row_count": rows,
    });
    let (_, answer) = ctx
        .catalogd
        .0
        .post_json("/v1/datasets?verify=true", Some(&body))
        .await?;
    let m = &answer["manifest"];
    let human = format!(
        "registered {} version {} ({}): {} objects, {} rows, {}",
        m["name"].as_str().unwrap_or_default(),
        m["version"],
        if answer["existing"] == true {
            "updated"
        } else {
            "created"
        },
        listed.len(),
        rows,
        fingerprint
    );
    ctx.out.result(&answer, Some(&human));
    Ok(())
}
