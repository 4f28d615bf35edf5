//! One module per group of commands.

mod cp;
mod datasets;
mod objects;
mod register;

use crate::cli::{Command, DatasetsCommand};
use crate::error::Result;
use crate::Ctx;

/// Runs `command`.
pub(crate) async fn dispatch(command: Command, ctx: Ctx) -> Result<()> {
    match command {
        Command::Ls {
            path,
            recursive,
            long,
        } => objects::ls(&ctx, path.as_deref(), recursive, long).await,
        Command::Cp {
            src,
            dst,
            recursive,
            jobs,
            update,
        } => cp::cp(&ctx, &src, &dst, recursive, usize::from(jobs), update)
            .await
            .map(|_| ()),
        Command::Cat { path } => objects::cat(&ctx, &path).await,
        Command::Stat { path } => objects::stat(&ctx, &path).await,
        Command::Rm { path, recursive } => objects::rm(&ctx, &path, recursive).await,
        Command::Fingerprint { files } => register::fingerprint(&ctx, &files),
        Command::Register {
            name,
            source,
            upload_to,
            fingerprint,
            jobs,
        } => {
            register::register(
                &ctx,
                &name,
                &source,
                upload_to.as_deref(),
                fingerprint.as_deref(),
                usize::from(jobs),
            )
            .await
        }
        Command::Datasets { command } => match command {
            DatasetsCommand::Ls { prefix } => datasets::ls(&ctx, prefix.as_deref()).await,
            DatasetsCommand::Show { name, version } => datasets::show(&ctx, &name, version).await,
            DatasetsCommand::History { name } => datasets::history(&ctx, &name).await,
            DatasetsCommand::Diff { name, v1, v2 } => datasets::diff(&ctx, &name, v1, v2).await,
            DatasetsCommand::Rm { name, purge } => datasets::rm(&ctx, &name, purge).await,
            DatasetsCommand::Undrop { name } => datasets::undrop(&ctx, &name).await,
        },
        Command::Query { name, s3 } => datasets::query(&ctx, &name, s3).await,
    }
}
