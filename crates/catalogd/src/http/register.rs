//! `POST /v1/datasets`: parse and validate the body, optionally verify the objects,
//! register, audit and count.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use manifest_codec::{DatasetName, Manifest, ObjectKey, ObjectRef, ObjectSize, SchemaFingerprint};
use serde::{Deserialize, Serialize};

use super::datasets::{caller, etag, flag};
use super::{body, AppState};
use crate::catalog::{CatalogError, Idempotency, RegisterRequest};
use crate::Error;

/// The register body. Unknown fields are refused, so `dataset_id`, `version` and the
/// timestamps can never be set by a caller.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    name: String,
    schema_fingerprint: String,
    objects: Vec<ObjectBody>,
    #[serde(default, deserialize_with = "optional_integer")]
    row_count: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectBody {
    key: String,
    #[serde(deserialize_with = "integer")]
    size: i64,
}

/// An int64 written as a JSON integer or as a number with no fractional part (`107.0`:
/// JSON Schema's `integer` admits it, and many JSON encoders write whole floats so).
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer that fits in 64 bits")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // Whole and exactly representable (|v| ≤ 2^53), so nothing is rounded.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if v.fract() == 0.0 && v.abs() <= EXACT {
                #[allow(clippy::cast_possible_truncation, reason = "whole and within 2^53")]
                Ok(v as i64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Integer)
}

fn optional_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "integer")] i64);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
}

impl RegisterBody {
    fn parse(self, max_objects: usize) -> Result<RegisterRequest, Error> {
        let invalid =
            |field: &str, e: &dyn std::fmt::Display| Error::InvalidRequest(format!("{field}: {e}"));
        if self.objects.len() > max_objects {
            return Err(Error::InvalidRequest(format!(
                "objects: {} entries, at most {max_objects} per dataset (max_objects)",
                self.objects.len()
            )));
        }
        let name = DatasetName::parse(&self.name).map_err(|e| invalid("name", &e))?;
        let schema_fingerprint = SchemaFingerprint::parse(&self.schema_fingerprint)
            .map_err(|e| invalid("schema_fingerprint", &e))?;
        let objects = self
            .objects
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                let key = ObjectKey::parse(&o.key)
                    .map_err(|e| invalid(&format!("objects[{i}].key"), &e))?;
                let size = ObjectSize::new(o.size).ok_or_else(|| {
                    Error::InvalidRequest(format!("objects[{i}].size is negative"))
                })?;
                Ok(ObjectRef { key, size })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(RegisterRequest {
            name,
            schema_fingerprint,
            objects,
            row_count: self.row_count,
            idempotency: None,
        })
    }
}

#[derive(Serialize)]
struct RegisterResponse<'a> {
    existing: bool,
    manifest: &'a Manifest,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterQuery {
    verify: Option<String>,
}

pub(crate) async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let mut dataset: Option<DatasetName> = None;
    let result = async {
        state.ensure_ready()?;
        let query = web::Query::<RegisterQuery>::from_query(req.query_string())
            .map_err(|e| Error::InvalidRequest(format!("invalid query: {e}")))?;
        let verify = flag("verify", query.verify.as_deref())?;
        let bytes = body::read_json(&req, payload, state.service.max_body_size).await?;
        let body: RegisterBody =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
                .map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    if path == "." {
                        Error::InvalidRequest(format!("invalid register body: {inner}"))
                    } else {
                        Error::InvalidRequest(format!("invalid register body at {path}: {inner}"))
                    }
                })?;
        let mut request = body.parse(state.service.max_objects)?;
        dataset = Some(request.name.clone());
        if verify {
            state.catalog.verify(&request.objects).await?;
        }
        if let Some(key) = req.headers().get("idempotency-key") {
            let key = key.to_str().map_err(|_| {
                Error::InvalidRequest("Idempotency-Key is not visible ASCII".into())
            })?;
            request.idempotency = Some(Idempotency::new(key, &bytes)?);
        }
        Ok::<_, Error>(state.catalog.register(request).await?)
    }
    .await;
    // The audit trail: one line per register that passed authorization.
    match &result {
        Ok(registered) => tracing::info!(
            credential = %caller(&req),
            method = "POST",
            dataset = %registered.manifest.name,
            version = registered.manifest.version,
            outcome = if registered.existing { "updated" } else { "created" },
            "audit"
        ),
        Err(Error::NotReady) => {}
        Err(e) => tracing::info!(
            credential = %caller(&req),
            method = "POST",
            dataset = dataset.as_ref().map_or("-", DatasetName::as_str),
            outcome = e.code(),
            "audit"
        ),
    }
    let outcome = match &result {
        Ok(r) if r.replayed => "replayed",
        Ok(r) if r.existing => "updated",
        Ok(_) => "created",
        Err(Error::Catalog(CatalogError::FingerprintConflict { .. })) => "conflict",
        Err(Error::Catalog(
            CatalogError::Storage(_)
            | CatalogError::Verify(_)
            | CatalogError::Contended { .. }
            | CatalogError::Encode { .. },
        )) => "storage_error",
        Err(Error::NotReady) => "not_ready",
        Err(_) => "invalid",
    };
    if outcome != "not_ready" {
        state
            .service
            .metrics
            .registers
            .with_label_values(&[outcome])
            .inc();
    }
    let registered = result?;
    let status = if registered.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = HttpResponse::build(status);
    response.insert_header((header::ETAG, etag(&registered.manifest)));
    if registered.replayed {
        response.insert_header(("idempotent-replayed", "true"));
    }
    Ok(response.json(RegisterResponse {
        existing: registered.existing,
        manifest: &registered.manifest,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_row_counts_are_integers_possibly_written_as_whole_floats() {
        let parse = |json: &str| serde_json::from_str::<RegisterBody>(json);
        let body = |size: &str, rows: &str| {
            format!(
                r#"{{"name": "a", "schema_fingerprint": "f", "objects": [{{"key": "k", "size": {size}}}], "row_count": {rows}}}"#
            )
        };
        let ok = parse(&body("107.0", "3.0")).unwrap();
        assert_eq!((ok.objects[0].size, ok.row_count), (107, Some(3)));
        let ok = parse(&body("-4", "null")).unwrap();
        assert_eq!((ok.objects[0].size, ok.row_count), (-4, None));
        assert_eq!(
            parse(&body("9007199254740992.0", "1")).unwrap().objects[0].size,
            1 << 53
        );
        for (size, rows) in [
            ("1.5", "1"),
            ("9223372036854775808", "1"),
            ("18014398509481984.0", "1"),
            ("\"7\"", "1"),
            ("1", "0.5"),
            ("1", "1e19"),
        ] {
            let err = parse(&body(size, rows)).err();
            assert!(
                err.is_some_and(|e| e.to_string().contains("integer")),
                "{size} {rows}"
            );
        }
    }
}
