use super::print_json;
use crate::cli::{PackAction, PackArgs, XdmCommand};
use crate::{clock, input};
use anyhow::{Context, Result, bail};
use mss_docs::cda::CdaHeader;
use mss_docs::xdm::{self, Action, Limits, PackRequest, SubmissionTime, XdmInput};
use std::path::PathBuf;

pub fn run(command: XdmCommand) -> Result<()> {
    match command {
        XdmCommand::Inspect { file } => {
            let bytes = input::read(&file)?;
            let package = xdm::read(&bytes, &Limits::default())
                .with_context(|| format!("{} is not a readable XDM package", file.display()))?;
            print_json(&package)
        }
        XdmCommand::Pack(args) => pack_command(args),
    }
}

fn pack_command(args: PackArgs) -> Result<()> {
    let documents = read_cdas(&args.cda)?;
    let zip = pack(
        &documents,
        args.action,
        args.source_id.as_deref(),
        clock::unix_seconds(),
    )?;
    input::write(&args.out, &zip)
}

/// A CDA file read from disk with its parsed header.
pub struct CdaFile {
    pub bytes: Vec<u8>,
    pub header: CdaHeader,
}

pub fn read_cdas(paths: &[PathBuf]) -> Result<Vec<CdaFile>> {
    paths
        .iter()
        .map(|path| {
            let bytes = input::read(path)?;
            let header = mss_docs::cda::parse_header(&bytes)
                .with_context(|| format!("{} is not a readable CDA", path.display()))?;
            Ok(CdaFile { bytes, header })
        })
        .collect()
}

/// Packs `documents` into an IHE XDM zip submitted at `unix` seconds.
///
/// The SubmissionSet `sourceId` is `source_id` when given, else the root of
/// the first document's id: the producing system's OID in CI-SIS documents.
pub fn pack(
    documents: &[CdaFile],
    action: Option<PackAction>,
    source_id: Option<&str>,
    unix: i64,
) -> Result<Vec<u8>> {
    let Some(first) = documents.first() else {
        bail!("no CDA document given");
    };
    let source_id = source_id.unwrap_or(&first.header.id.root);
    let time = SubmissionTime::parse(&clock::xds_timestamp(unix)?)?;
    let mut request = PackRequest::new(time, source_id);
    request.action = action.map(|a| match a {
        PackAction::Replace => Action::Replace,
        PackAction::Delete => Action::Delete,
    });
    request.readme.software = Some(format!("mss {}", env!("CARGO_PKG_VERSION")));
    let inputs: Vec<XdmInput> = documents
        .iter()
        .map(|d| XdmInput::new(&d.bytes, &d.header))
        .collect();
    Ok(xdm::write(&inputs, &request)?)
}
