//! The command-line contract, documented in docs/cli.md.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mss",
    version,
    about = "MSSanté connector: health documents and mail for French health software"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// CDA documents.
    #[command(subcommand)]
    Cda(CdaCommand),
    /// IHE XDM packages (IHE_XDM.ZIP).
    #[command(subcommand)]
    Xdm(XdmCommand),
    /// Write the exact RFC 5322 message that sending will submit.
    Compose(Box<ComposeArgs>),
}

#[derive(Debug, Subcommand)]
pub enum CdaCommand {
    /// Print the header of a CDA document as JSON.
    Inspect { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum XdmCommand {
    /// Print the content of an IHE XDM zip as JSON, with integrity checks.
    Inspect { file: PathBuf },
    /// Pack CDA documents into an IHE XDM zip.
    Pack(PackArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PackAction {
    /// The documents replace their previous version (metadata action C).
    Replace,
    /// The documents must be deleted (metadata action D).
    Delete,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Where to write the zip.
    #[arg(long)]
    pub out: PathBuf,
    /// Ask the recipient to replace or delete the documents.
    #[arg(long, value_enum)]
    pub action: Option<PackAction>,
    /// OID of the sending system (SubmissionSet sourceId); default: the root of the first document's id.
    #[arg(long, env = "MSS_SOURCE_ID")]
    pub source_id: Option<String>,
    /// The CDA documents, all of the same patient.
    #[arg(required = true)]
    pub cda: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Sender address, optionally with a display name: "Dr Jean Dupont <jean.dupont@hopital.mssante.fr>".
    #[arg(long)]
    pub from: String,
    /// Recipient addresses.
    #[arg(long, required = true, num_args = 1..)]
    pub to: Vec<String>,
    /// Copy recipients.
    #[arg(long, num_args = 1..)]
    pub cc: Vec<String>,
    /// Subject; with documents and no subject, the XDM/1.0/DDM+ form is built.
    #[arg(long)]
    pub subject: Option<String>,
    /// Text body (UTF-8).
    #[arg(long)]
    pub body: Option<String>,
    /// CDA documents to send in the IHE_XDM.ZIP attachment.
    #[arg(long, num_args = 1..)]
    pub cda: Vec<PathBuf>,
    /// PDF files to attach beside the XDM.
    #[arg(long, num_args = 1..)]
    pub pdf: Vec<PathBuf>,
    /// Close the patient's ability to reply (X-MSS-MES: FIN; patient recipients only).
    #[arg(long)]
    pub close_patient_exchange: bool,
    /// Ask for a read receipt (Disposition-Notification-To).
    #[arg(long)]
    pub request_mdn: bool,
    /// Count test and demonstration INS as INS (X-MSS-INS).
    #[arg(long)]
    pub test_identities: bool,
    /// The software's national reference (X-MSS-NIL).
    #[arg(long, env = "MSS_NIL")]
    pub nil: String,
    /// Replace or delete the documents' previous version.
    #[arg(long, value_enum)]
    pub action: Option<PackAction>,
    /// OID of the sending system (SubmissionSet sourceId); default: the root of the first document's id.
    #[arg(long, env = "MSS_SOURCE_ID")]
    pub source_id: Option<String>,
    /// Message-ID of the message this one answers.
    #[arg(long)]
    pub in_reply_to: Option<String>,
    /// Message-IDs of the thread, oldest first (with --in-reply-to).
    #[arg(long, num_args = 1..)]
    pub references: Vec<String>,
    /// Message-ID to use instead of a new one (for reproducible output).
    #[arg(long)]
    pub message_id: Option<String>,
    /// Date as seconds since the Unix epoch instead of now (for reproducible output).
    #[arg(long)]
    pub date: Option<i64>,
    /// Where to write the message.
    #[arg(long)]
    pub out: PathBuf,
}
