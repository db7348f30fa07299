use super::print_json;
use crate::cli::CdaCommand;
use crate::input;
use anyhow::{Context, Result};

pub fn run(command: CdaCommand) -> Result<()> {
    match command {
        CdaCommand::Inspect { file } => {
            let bytes = input::read(&file)?;
            let header = mss_docs::cda::parse_header(&bytes)
                .with_context(|| format!("{} is not a readable CDA", file.display()))?;
            print_json(&header)
        }
    }
}
