//! `/projects/{project}/repositories/{repository}/artifacts`: artifacts, their tags and
//! accessories.

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use berth_app::manage::{ArtifactDetail, ArtifactView};
use berth_meta::{ArtifactField, ListQuery, Match, TagInfo};
use berth_oci::Reference;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context::Ctx;
use super::error::HarborError;
use super::labels::label_json;
use super::paging::{Page, paged};
use super::params::repository_param;
use super::query::{Fields, Kind, list_query};
use super::repositories::artifacts;
use super::{body, created, json};
use crate::time_format::rfc3339;

const FIELDS: Fields<ArtifactField> = &[
    ("digest", ArtifactField::Digest, Kind::Text),
    ("media_type", ArtifactField::MediaType, Kind::Text),
    ("push_time", ArtifactField::PushTime, Kind::Time),
    ("pull_time", ArtifactField::PullTime, Kind::Time),
    ("tags", ArtifactField::Tags, Kind::Text),
    ("labels", ArtifactField::Labels, Kind::Integer),
    ("id", ArtifactField::Id, Kind::Integer),
];

/// Harbor's zero time, for "never pulled".
const NEVER: &str = "0001-01-01T00:00:00.000Z";

fn time_or_never(ms: Option<i64>) -> String {
    ms.map_or_else(|| NEVER.to_owned(), rfc3339)
}

/// A stable id for a tag (tags are keyed by repository and name).
fn tag_id(repository_id: i64, name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in repository_id.to_be_bytes().iter().chain(name.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash & 0x001f_ffff_ffff_ffff) as i64
}

/// Harbor's `Tag`.
fn tag_json(repository_id: i64, tag: &TagInfo, immutable: bool) -> Value {
    json!({
        "id": tag_id(repository_id, tag.name.as_str()),
        "repository_id": repository_id,
        "artifact_id": tag.artifact_id,
        "name": tag.name.as_str(),
        "push_time": rfc3339(tag.pushed_at),
        "pull_time": time_or_never(tag.pulled_at),
        "immutable": immutable,
    })
}

/// What an artifact's JSON shows besides what it always shows (`with_tag`,
/// `with_immutable_status`, `with_accessory`, `with_label`).
#[derive(Debug, Clone, Copy)]
struct Shown {
    tags: bool,
    immutable_status: bool,
    detail: ArtifactDetail,
}

impl Shown {
    /// Reads `with_tag` (default true), `with_immutable_status`, `with_accessory` and
    /// `with_label` (default false).
    fn from_params(ctx: &Ctx) -> Result<Self, HarborError> {
        Ok(Shown {
            tags: ctx.params.boolean("with_tag")?.unwrap_or(true),
            immutable_status: ctx
                .params
                .boolean("with_immutable_status")?
                .unwrap_or(false),
            detail: ArtifactDetail {
                accessories: ctx.params.boolean("with_accessory")?.unwrap_or(false),
                labels: ctx.params.boolean("with_label")?.unwrap_or(false),
            },
        })
    }
}

/// Harbor's `Tag` of an artifact, marked immutable when asked and a rule protects it.
fn artifact_tag_json(view: &ArtifactView, tag: &TagInfo, shown: Shown) -> Value {
    let immutable = shown.immutable_status && view.immutable_tags.contains(&tag.name);
    tag_json(view.info.repository_id, tag, immutable)
}

/// Harbor's `Artifact`.
fn artifact_json(view: &ArtifactView, shown: Shown) -> Value {
    let info = &view.info;
    let annotations: Value = info
        .annotations
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_else(|| json!({}));
    let references: Vec<Value> = view
        .references
        .iter()
        .map(|r| {
            let mut v = json!({
                "parent_id": info.id,
                "child_id": r.id.unwrap_or(0),
                "child_digest": r.digest.as_str(),
            });
            for (key, field) in [
                ("platform", &r.platform),
                ("annotations", &r.annotations),
                ("urls", &r.urls),
            ] {
                if let Some(value) = field {
                    v[key] = value.clone();
                }
            }
            v
        })
        .collect();
    let mut artifact = json!({
        "id": info.id,
        "type": view.kind,
        "media_type": view.config_media_type.clone().unwrap_or_else(|| info.media_type.clone()),
        "manifest_media_type": info.media_type,
        "project_id": view.project_id,
        "repository_id": info.repository_id,
        "repository_name": view.repository.as_str(),
        "digest": info.digest.as_str(),
        "size": info.total_size,
        "icon": "",
        "push_time": rfc3339(info.pushed_at),
        "pull_time": time_or_never(info.pulled_at),
        "extra_attrs": view.extra_attrs,
        "annotations": annotations,
        "references": references,
        "addition_links": {},
    });
    if let Some(t) = &info.artifact_type {
        artifact["artifact_type"] = json!(t);
    }
    // Harbor omits empty lists (its models' fields are `omitempty`).
    if shown.tags && !info.tags.is_empty() {
        artifact["tags"] = json!(
            info.tags
                .iter()
                .map(|t| artifact_tag_json(view, t, shown))
                .collect::<Vec<_>>()
        );
    }
    if shown.detail.labels && !view.labels.is_empty() {
        artifact["labels"] = json!(view.labels.iter().map(label_json).collect::<Vec<_>>());
    }
    if shown.detail.accessories && !view.accessories.is_empty() {
        artifact["accessories"] = json!(
            view.accessories
                .iter()
                .map(|a| accessory_json(view, a))
                .collect::<Vec<_>>()
        );
    }
    artifact
}

/// Harbor's `Accessory`.
fn accessory_json(subject: &ArtifactView, a: &berth_app::manage::Accessory) -> Value {
    json!({
        "id": a.id,
        "artifact_id": a.id,
        "subject_artifact_id": subject.info.id,
        "subject_artifact_digest": subject.info.digest.as_str(),
        "subject_artifact_repo": subject.repository.as_str(),
        "size": a.size,
        "digest": a.digest.as_str(),
        "type": a.kind,
        "icon": "",
        "creation_time": rfc3339(a.created_at),
    })
}

/// A `{reference}` path parameter: a tag or a digest.
pub(super) fn reference(raw: &str) -> Result<Reference, HarborError> {
    Reference::parse(raw).map_err(|e| HarborError::bad_request(e.to_string()))
}

type ArtifactPath = Path<(String, String, String)>;

/// Harbor takes `labels` in `q` only as an intersection of label ids,
/// `labels=(1 2)`.
fn check_label_filters(query: &ListQuery<ArtifactField>) -> Result<(), HarborError> {
    let refused = query
        .filters
        .iter()
        .any(|f| f.field == ArtifactField::Labels && !matches!(f.matching, Match::AllOf(_)));
    if refused {
        return Err(HarborError::bad_request(
            r#"the value of "labels" query can only be integer list with intersetion relationship"#,
        ));
    }
    Ok(())
}

/// `GET …/artifacts` with `q` (`labels=(1 2)` among its keys), `sort`, paging,
/// `with_tag`, `with_accessory`, `with_label`.
pub async fn list(
    ctx: Ctx,
    Path((project, name)): Path<(String, String)>,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let (query, page) = list_query(&ctx.params, FIELDS)?;
    check_label_filters(&query)?;
    let shown = Shown::from_params(&ctx)?;
    let listed = artifacts(&ctx)
        .list(&ctx.who, &project, &name, &query, shown.detail)
        .await?;
    let items: Vec<Value> = listed
        .items
        .iter()
        .map(|v| artifact_json(v, shown))
        .collect();
    let path = format!(
        "/api/v2.0/projects/{project}/repositories/{}/artifacts",
        name.replace('/', "%252F")
    );
    Ok(paged(&items, listed.total, page, &path, &ctx.params))
}

/// `GET …/artifacts/{reference}`
pub async fn get(
    ctx: Ctx,
    Path((project, name, r)): ArtifactPath,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let shown = Shown::from_params(&ctx)?;
    let view = artifacts(&ctx)
        .get(&ctx.who, &project, &name, &reference(&r)?, shown.detail)
        .await?;
    Ok(json(&artifact_json(&view, shown)))
}

/// `DELETE …/artifacts/{reference}`
pub async fn delete(
    ctx: Ctx,
    Path((project, name, r)): ArtifactPath,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    artifacts(&ctx)
        .delete(&ctx.who, &project, &name, &reference(&r)?)
        .await?;
    Ok(().into_response())
}

/// `GET …/artifacts/{reference}/tags`
pub async fn tags(
    ctx: Ctx,
    Path((project, name, r)): ArtifactPath,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let page = Page::from_params(&ctx.params)?;
    let shown = Shown::from_params(&ctx)?;
    let view = artifacts(&ctx)
        .get(
            &ctx.who,
            &project,
            &name,
            &reference(&r)?,
            ArtifactDetail::default(),
        )
        .await?;
    let all: Vec<Value> = view
        .info
        .tags
        .iter()
        .map(|t| artifact_tag_json(&view, t, shown))
        .collect();
    let path = artifact_path(&project, &name, &r, "tags");
    Ok(page_of(&all, page, &path, &ctx))
}

/// The URL of a list under an artifact (for `Link`).
fn artifact_path(project: &str, name: &str, reference: &str, list: &str) -> String {
    format!(
        "/api/v2.0/projects/{project}/repositories/{}/artifacts/{reference}/{list}",
        name.replace('/', "%252F")
    )
}

/// One page of a list held whole in memory (an artifact's tags or accessories).
fn page_of(all: &[Value], page: Page, path: &str, ctx: &Ctx) -> Response {
    let offset = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(page.size as usize)
        .cloned()
        .collect();
    paged(&items, all.len() as u64, page, path, &ctx.params)
}

#[derive(Deserialize, Default)]
struct TagReq {
    #[serde(default)]
    name: String,
}

/// `POST …/artifacts/{reference}/tags`
pub async fn create_tag(
    ctx: Ctx,
    Path((project, name, r)): ArtifactPath,
    raw: Bytes,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let req: TagReq = body(&raw)?;
    artifacts(&ctx)
        .add_tag(&ctx.who, &project, &name, &reference(&r)?, &req.name)
        .await?;
    Ok(created(format!(
        "{}/{}",
        artifact_path(&project, &name, &r, "tags"),
        req.name
    )))
}

/// `DELETE …/artifacts/{reference}/tags/{tag_name}`
pub async fn delete_tag(
    ctx: Ctx,
    Path((project, name, r, tag)): Path<(String, String, String, String)>,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    artifacts(&ctx)
        .delete_tag(&ctx.who, &project, &name, &reference(&r)?, &tag)
        .await?;
    Ok(().into_response())
}

/// `GET …/artifacts/{reference}/accessories`
pub async fn accessories(
    ctx: Ctx,
    Path((project, name, r)): ArtifactPath,
) -> Result<Response, HarborError> {
    let name = repository_param(&name)?;
    let page = Page::from_params(&ctx.params)?;
    let view = artifacts(&ctx)
        .get(
            &ctx.who,
            &project,
            &name,
            &reference(&r)?,
            ArtifactDetail {
                accessories: true,
                labels: false,
            },
        )
        .await?;
    let all: Vec<Value> = view
        .accessories
        .iter()
        .map(|a| accessory_json(&view, a))
        .collect();
    let path = artifact_path(&project, &name, &r, "accessories");
    Ok(page_of(&all, page, &path, &ctx))
}
