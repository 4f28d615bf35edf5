//! The catalog: `lake datasets ls|show|history|diff|rm|undrop` and `lake query`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use manifest_codec::DatasetName;
use serde_json::{json, Value};

use crate::client::encode_query;
use crate::error::{LakeError, Result};
use crate::output::{human_bytes, write_line};
use crate::path::RemotePath;
use crate::Ctx;

fn dataset(name: &str) -> Result<DatasetName> {
    DatasetName::parse(name).map_err(|e| LakeError::Usage(format!("dataset name {name:?}: {e}")))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn total_size(m: &Value) -> u64 {
    m["objects"]
        .as_array()
        .map(|o| o.iter().filter_map(|o| o["size"].as_u64()).sum())
        .unwrap_or_default()
}

/// Every item of the `field` array of catalogd's paged listing at `path` (a query string
/// already started), walking `next_page_token`.
async fn all_pages(ctx: &Ctx, path: &str, field: &str) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = match &token {
            Some(t) => format!("{path}&page_token={}", encode_query(t)),
            None => path.to_owned(),
        };
        let mut page = ctx.catalogd.0.get_json(&page).await?;
        if let Some(found) = page[field].as_array_mut() {
            items.append(found);
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => return Ok(items),
        }
    }
}

/// `lake datasets ls [--prefix P]`.
pub(crate) async fn ls(ctx: &Ctx, prefix: Option<&str>) -> Result<()> {
    let mut path = "/v1/datasets?limit=1000".to_owned();
    if let Some(p) = prefix {
        path.push_str("&prefix=");
        path.push_str(&encode_query(p));
    }
    let rows: Vec<(Value, Vec<String>)> = all_pages(ctx, &path, "datasets")
        .await?
        .into_iter()
        .map(|m| {
            let row = vec![
                text(&m["name"]),
                text(&m["version"]),
                text(&m["row_count"]),
                m["objects"].as_array().map_or(0, Vec::len).to_string(),
                human_bytes(total_size(&m)),
                text(&m["updated_at"]),
            ];
            (m, row)
        })
        .collect();
    ctx.out.table(
        &["name", "version", "rows", "objects", "size", "updated"],
        &rows,
    );
    Ok(())
}

async fn manifest(ctx: &Ctx, name: &DatasetName, version: Option<i64>) -> Result<Value> {
    let path = match version {
        Some(v) => format!("/v1/datasets/{name}/versions/{v}"),
        None => format!("/v1/datasets/{name}"),
    };
    ctx.catalogd.0.get_json(&path).await
}

/// `lake datasets show NAME [--version V]`.
pub(crate) async fn show(ctx: &Ctx, name: &str, version: Option<i64>) -> Result<()> {
    let name = dataset(name)?;
    let m = manifest(ctx, &name, version).await?;
    if ctx.out.json {
        ctx.out.result(&m, None);
        return Ok(());
    }
    for field in [
        "name",
        "dataset_id",
        "version",
        "schema_fingerprint",
        "row_count",
        "created_at",
        "updated_at",
    ] {
        write_line(&format!("{field:<19}{}", text(&m[field])));
    }
    write_line(&format!(
        "{:<19}{} ({})",
        "objects",
        m["objects"].as_array().map_or(0, Vec::len),
        human_bytes(total_size(&m))
    ));
    for o in m["objects"].as_array().into_iter().flatten() {
        let key = o["key"].as_str().unwrap_or_default();
        write_line(&format!(
            "  {:>12}  {}",
            text(&o["size"]),
            RemotePath::from_native(key)
        ));
    }
    Ok(())
}

/// `lake datasets history NAME`.
pub(crate) async fn history(ctx: &Ctx, name: &str) -> Result<()> {
    let name = dataset(name)?;
    let path = format!("/v1/datasets/{name}/versions?limit=1000");
    let rows: Vec<(Value, Vec<String>)> = all_pages(ctx, &path, "versions")
        .await?
        .into_iter()
        .map(|v| {
            let row = vec![
                text(&v["version"]),
                text(&v["updated_at"]),
                text(&v["row_count"]),
                text(&v["object_count"]),
                text(&v["schema_fingerprint"]),
            ];
            (v, row)
        })
        .collect();
    ctx.out.table(
        &["version", "registered", "rows", "objects", "fingerprint"],
        &rows,
    );
    Ok(())
}

fn objects_of(m: &Value) -> BTreeMap<String, u64> {
    m["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["key"].as_str().unwrap_or_default().to_owned(),
                o["size"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// `lake datasets diff NAME V1 V2`: objects added, removed and resized; the row count change.
pub(crate) async fn diff(ctx: &Ctx, name: &str, v1: i64, v2: i64) -> Result<()> {
    let name = dataset(name)?;
    let a = manifest(ctx, &name, Some(v1)).await?;
    let b = manifest(ctx, &name, Some(v2)).await?;
    let (before, after) = (objects_of(&a), objects_of(&b));
    let mut lines = Vec::new();
    for (key, size) in &after {
        match before.get(key) {
            None => lines.push(("added", key, None, Some(*size))),
            Some(old) if old != size => lines.push(("changed", key, Some(*old), Some(*size))),
            Some(_) => {}
        }
    }
    for (key, size) in &before {
        if !after.contains_key(key) {
            lines.push(("removed", key, Some(*size), None));
        }
    }
    lines.sort_by(|x, y| x.1.cmp(y.1));
    for (change, key, from, to) in &lines {
        let path = RemotePath::from_native(key);
        let sign = match *change {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        let size = match (from, to) {
            (Some(f), Some(t)) => format!("{f} → {t} bytes"),
            (None, Some(s)) | (Some(s), None) => format!("{s} bytes"),
            (None, None) => String::new(),
        };
        ctx.out.result(
            &json!({"change": change, "key": key, "path": path.to_string(), "size_before": from, "size_after": to}),
            Some(&format!("{sign} {path} ({size})")),
        );
    }
    let (ra, rb) = (a["row_count"].as_i64(), b["row_count"].as_i64());
    let delta = match (ra, rb) {
        (Some(x), Some(y)) => format!(" ({:+})", y - x),
        _ => String::new(),
    };
    ctx.out.result(
        &json!({"change": "row_count", "from": ra, "to": rb}),
        Some(&format!(
            "rows: {} → {}{delta}",
            text(&a["row_count"]),
            text(&b["row_count"])
        )),
    );
    Ok(())
}

/// `lake datasets rm NAME [--purge]`.
pub(crate) async fn rm(ctx: &Ctx, name: &str, purge: bool) -> Result<()> {
    let name = dataset(name)?;
    let path = if purge {
        format!("/v1/datasets/{name}?purge=true")
    } else {
        format!("/v1/datasets/{name}")
    };
    ctx.catalogd.0.delete(&path).await?;
    let status = if purge { "purged" } else { "deleted" };
    ctx.out.result(
        &json!({"name": name.as_str(), "status": status}),
        Some(&format!(
            "{status} {name}{}",
            if purge {
                ""
            } else {
                " (lake datasets undrop brings it back)"
            }
        )),
    );
    Ok(())
}

/// `lake datasets undrop NAME`.
pub(crate) async fn undrop(ctx: &Ctx, name: &str) -> Result<()> {
    let name = dataset(name)?;
    let (_, m) = ctx
        .catalogd
        .0
        .post_json(&format!("/v1/datasets/{name}/undrop"), None)
        .await?;
    ctx.out.result(
        &m,
        Some(&format!("undropped {name} at version {}", m["version"])),
    );
    Ok(())
}

/// A SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `lake query NAME [--s3]`: a DuckDB statement reading the dataset's objects.
pub(crate) async fn query(ctx: &Ctx, name: &str, s3: bool) -> Result<()> {
    let name = dataset(name)?;
    let m = manifest(ctx, &name, None).await?;
    let keys: Vec<&str> = m["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["key"].as_str())
        .collect();
    if keys.is_empty() {
        return Err(LakeError::Invalid(format!(
            "dataset {name} has no objects to read"
        )));
    }
    let mut sql = String::new();
    let sources: Vec<String> = if s3 {
        sql.push_str(
            "-- reads through storaged's S3 face; point DuckDB at it first, e.g.\n\
             -- CREATE SECRET lake (TYPE s3, ENDPOINT '127.0.0.1:8103', URL_STYLE 'path', USE_SSL false, KEY_ID '...', SECRET '...');\n",
        );
        keys.iter()
            .map(|k| sql_string(&RemotePath::from_native(k).to_string()))
            .collect()
    } else {
        if let Some(token) = &ctx.settings.storaged_token {
            let _ = writeln!(
                sql,
                "CREATE SECRET lake_storaged (TYPE http, BEARER_TOKEN {}, SCOPE {});",
                sql_string(token),
                sql_string(&ctx.settings.storaged_url)
            );
        }
        keys.iter()
            .map(|k| sql_string(&ctx.storaged.object_url(k)))
            .collect()
    };
    let _ = write!(
        sql,
        "SELECT * FROM read_parquet([\n  {}\n]);",
        sources.join(",\n  ")
    );
    ctx.out
        .result(&json!({"name": name.as_str(), "sql": sql}), Some(&sql));
    Ok(())
}
