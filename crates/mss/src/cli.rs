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
    /// The configuration file (commands that talk to an operator); see docs/configuration.md.
    #[arg(long, global = true, env = "MSS_CONFIG", default_value = "mss.toml")]
    pub config: PathBuf,
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
    /// Log in to Pro Santé Connect and keep the session alive while the process runs.
    Login(LoginArgs),
    /// Compose a message (same options as compose) and submit it through a mailbox.
    Send(Box<SendArgs>),
    /// Fetch what is new in a mailbox's INBOX.
    Sync(SyncArgs),
    /// Show where a mailbox's servers are found, and why.
    Autoconfig(AutoconfigArgs),
    /// Annuaire Santé: offline search of professionals and their MSSanté addresses.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Start the local MSSanté trust space (test PKI, Pro Santé Connect, operator, autoconfig).
    Sandbox(SandboxArgs),
    /// The sandbox and mss together: demo patients, mails from other professionals, the
    /// engine filing them and the worklist, until Ctrl-C.
    Demo(DemoArgs),
    /// Run the conformance checks against the sandbox, with mss or another software as client.
    Conformance(ConformanceArgs),
    /// The patients mss files documents for (INS, traits, identity status).
    #[command(subcommand)]
    Patient(PatientCommand),
    /// Sync every configured mailbox, file what arrives, send the acknowledgements.
    Run(RunArgs),
    /// The worklist: every message and document received, where it stands, and notifications.
    Inbox(InboxArgs),
    /// A patient's documents with their versions.
    Documents(DocumentsArgs),
    /// File a proposed document in a patient's record (a person's decision).
    Attach(AttachArgs),
    /// Confirm or refuse a deletion asked by a sender, or delete a filed document.
    DeleteDocument(DeleteDocumentArgs),
    /// Send the acknowledgement (MDN or failure notice) offered for a message: a person agrees.
    Acknowledge(AcknowledgeArgs),
    /// What was sent or waits to be sent, and what became of it at each recipient.
    Outbox(OutboxArgs),
    /// File an IHE XDM zip received otherwise than by mail (same path as a message).
    ImportXdm(ImportXdmArgs),
    /// The tamper-evident trace journal.
    #[command(subcommand)]
    Trace(TraceCommand),
}

/// Who does what a person decides, as written in the traces.
#[derive(Debug, Args)]
pub struct AuthorArg {
    /// The person acting (user name, RPPS…), written in the traces.
    #[arg(long, env = "MSS_AUTHOR", default_value = "utilisateur")]
    pub author: String,
}

#[derive(Debug, Subcommand)]
pub enum PatientCommand {
    /// Add a patient (as the host software knows them).
    Add(Box<PatientAddArgs>),
    /// List the patients.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PatientAddArgs {
    /// INS matricule (NIR or NIA, 15 characters).
    #[arg(long)]
    pub matricule: Option<String>,
    /// INS OID (1.2.250.1.213.1.4.8 for a NIR, .9 NIA, .10 test, .11 demonstration).
    #[arg(long)]
    pub oid: Option<String>,
    #[arg(long)]
    pub birth_name: String,
    #[arg(long)]
    pub first_given_name: String,
    /// Every birth given name, space-separated ("Jean Pierre").
    #[arg(long)]
    pub given_names: Option<String>,
    /// YYYY-MM-DD.
    #[arg(long)]
    pub birth_date: String,
    /// M, F or U.
    #[arg(long)]
    pub sex: String,
    /// INSEE COG code of the birthplace.
    #[arg(long)]
    pub birthplace: Option<String>,
    /// Identity status: QUAL, VALI, RECUP or PROV.
    #[arg(long)]
    pub status: String,
    /// The host software's identifier of the patient (IPP).
    #[arg(long)]
    pub local_id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// One pass over every mailbox, then exit (otherwise follow them with IDLE).
    #[arg(long)]
    pub once: bool,
    /// Print one JSON line per message processed.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Only what still needs a person (received, proposed, deletion to confirm, failed).
    #[arg(long)]
    pub open: bool,
    /// Items shown at most.
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
    /// Mark the notifications shown as read.
    #[arg(long)]
    pub mark_read: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DocumentsArgs {
    /// The patient's INS matricule.
    #[arg(long)]
    pub matricule: String,
    /// Also the deleted documents.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The worklist item (see `mss inbox`).
    pub item: i64,
    /// The patient: their id (`mss patient list`) or INS matricule.
    #[arg(long)]
    pub patient: String,
    #[command(flatten)]
    pub author: AuthorArg,
}

#[derive(Debug, Args)]
pub struct DeleteDocumentArgs {
    /// The worklist item of a deletion to confirm (see `mss inbox`).
    #[arg(conflicts_with = "document", required_unless_present = "document")]
    pub item: Option<i64>,
    /// Confirm the deletion the sender asked for.
    #[arg(long, requires = "item", conflicts_with = "refuse")]
    pub confirm: bool,
    /// Refuse it: the document stays in the record.
    #[arg(long, requires = "item")]
    pub refuse: bool,
    /// Delete this filed document yourself (its set id, as `mss documents` shows it).
    #[arg(long)]
    pub document: Option<String>,
    #[command(flatten)]
    pub author: AuthorArg,
}

#[derive(Debug, Args)]
pub struct AcknowledgeArgs {
    /// A worklist item of the message (see `mss inbox`).
    pub item: i64,
    #[command(flatten)]
    pub author: AuthorArg,
}

#[derive(Debug, Args)]
pub struct ImportXdmArgs {
    /// The IHE_XDM.ZIP file.
    pub file: PathBuf,
    #[command(flatten)]
    pub author: AuthorArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Check the hash chain of the journal; exits non-zero when it is broken.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// List trace entries, oldest first.
    List(TraceListArgs),
}

#[derive(Debug, Args)]
pub struct TraceListArgs {
    #[arg(long)]
    pub mailbox: Option<String>,
    /// The patient's id in mss (as `mss patient list` shows it).
    #[arg(long)]
    pub patient: Option<String>,
    /// A document id (root^extension) or set id.
    #[arg(long)]
    pub document: Option<String>,
    /// From this instant (RFC 3339, e.g. 2026-11-26T00:00:00+01:00), included.
    #[arg(long)]
    pub since: Option<String>,
    /// Up to this instant (RFC 3339), excluded.
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Directory of the sandbox (created, or reused as `mss sandbox --dir` leaves it).
    #[arg(long)]
    pub sandbox: PathBuf,
    /// Who acts as the client: mss itself, or another software a person drives.
    #[arg(long, value_enum, default_value_t = ConformanceClient::Mss)]
    pub client: ConformanceClient,
    /// With `--client other`: seconds to wait for each step.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// Run only these steps (default: all).
    #[arg(long, num_args = 1..)]
    pub step: Vec<String>,
    /// Print the results as JSON (one object per check).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConformanceClient {
    /// mss, run as separate processes on the sandbox's mss.toml.
    Mss,
    /// Another software, driven by a person following the printed instructions.
    Other,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory of the demo: mss.toml, mss-data and the sandbox (reused at each start).
    #[arg(long, default_value = "mss-demo")]
    pub dir: PathBuf,
    /// First of the sandbox's ten consecutive ports (see `mss sandbox`); free ports when absent.
    #[arg(long)]
    pub port_base: Option<u16>,
    /// Deliver, file, print the worklist and exit instead of following new mail.
    #[arg(long, visible_alias = "no-wait")]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Directory of the sandbox: PKI, keys, sandbox.json and mss.toml (reused at each start).
    #[arg(long)]
    pub dir: PathBuf,
    /// First of ten consecutive ports (PSC, autoconfig, IMAP, submission, IMAPS, relay, then
    /// the second operator's IMAP, submission, IMAPS, relay);
    /// free ports when absent.
    #[arg(long)]
    pub port_base: Option<u16>,
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
pub struct MessageArgs {
    /// Sender address, optionally with a display name: "Dr Jean Dupont <jean.dupont@hopital.mssante.fr>".
    /// Required by compose; send defaults to the mailbox's address.
    #[arg(long)]
    pub from: Option<String>,
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
}

#[derive(Debug, Args)]
pub struct ComposeArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// The software's national reference (X-MSS-NIL).
    #[arg(long, env = "MSS_NIL")]
    pub nil: String,
    /// Where to write the message.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The mailbox whose PSC session to open; default: the only PSC mailbox configured.
    #[arg(long)]
    pub bal: Option<String>,
    /// Log in, print the session, and exit instead of keeping it alive.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The configured mailbox to send from (its address is the From).
    #[arg(long)]
    pub bal: Option<String>,
    #[command(flatten)]
    pub message: MessageArgs,
    /// Ask for delivery status notifications (DSN) on failure and delay.
    #[arg(long)]
    pub dsn: bool,
    /// With --action: send even when the previous version was not sent by this software
    /// (a document produced here but sent by other means).
    #[arg(long, requires = "action")]
    pub force: bool,
    /// Print the submission receipt as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub author: AuthorArg,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub command: Option<OutboxCommand>,
    /// List the documents this software sent, with their versions, instead.
    #[arg(long, conflicts_with = "reports")]
    pub documents: bool,
    /// List the delivery reports received (MDN, DSN), linked or not, instead.
    #[arg(long)]
    pub reports: bool,
    /// Items shown at most.
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Try a queued, failed or cancelled message again at the next pass of `mss run`.
    Retry(OutboxItemArgs),
    /// Withdraw a queued or failed message: it will not be sent.
    Cancel(OutboxItemArgs),
}

#[derive(Debug, Args)]
pub struct OutboxItemArgs {
    /// The outbox item (see `mss outbox`).
    pub id: i64,
    #[command(flatten)]
    pub author: AuthorArg,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The configured mailbox to read.
    #[arg(long)]
    pub bal: Option<String>,
    /// Fetch once and exit (the long-running sync is `mss run`).
    #[arg(long)]
    pub once: bool,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Fetch every message again, ignoring the saved position.
    #[arg(long)]
    pub all: bool,
    /// Also write each message, byte for byte, to DIR/<uid>.eml.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AutoconfigArgs {
    /// The mailbox address to look up.
    pub address: String,
    #[arg(long)]
    pub json: bool,
}

/// Where the directory keeps its index and care teams: `<data-dir>/directory`.
#[derive(Debug, Args)]
pub struct DataDirArg {
    /// Data directory of mss.
    #[arg(long, env = "MSS_DATA_DIR", default_value = "mss-data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Import the ANS extraction files (.txt or .zip) into a new index, then swap it in.
    Import(DirectoryImportArgs),
    /// Search the directory with free text (« Dupont 97500 cardiologue »).
    Search(DirectorySearchArgs),
    /// Show every field of a person (national id, RPPS, ADELI), a structure or a mailbox.
    Show(DirectoryShowArgs),
    /// What the current index holds and when it was imported.
    Info(DataDirArg),
    /// The professionals who take care of a patient (LABEL.06).
    #[command(subcommand)]
    CareTeam(CareTeamCommand),
}

#[derive(Debug, Args)]
pub struct DirectoryImportArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Indexing threads (default: the number of cores, at most 4).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Extraction files: Personne_activite, MSSanté, SavoirFaire, Dipl_AutExerc, as .txt or .zip.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DirectorySearchArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Results (people or structures) at most.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Read one query per line from FILE and print one JSON line per query, with took_us.
    #[arg(long, conflicts_with = "query")]
    pub batch: Option<PathBuf>,
    /// Only this postcode.
    #[arg(long)]
    pub cp: Option<String>,
    /// Only this département (63, 2A, 974).
    #[arg(long)]
    pub dep: Option<String>,
    /// Only this profession code (TRE_G15: 10 médecin, 60 infirmier…).
    #[arg(long)]
    pub profession: Option<String>,
    /// Only this savoir-faire code (SM04…).
    #[arg(long)]
    pub specialite: Option<String>,
    /// Only mailboxes of this type (PER, ORG).
    #[arg(long)]
    pub type_bal: Option<String>,
    /// Only this city.
    #[arg(long)]
    pub ville: Option<String>,
    /// The query words.
    #[arg(required_unless_present = "batch")]
    pub query: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DirectoryShowArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// National id (8+RPPS, 0+ADELI), RPPS, ADELI, FINESS, structure id, or MSSanté address.
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum CareTeamCommand {
    /// Add a professional (national id or MSSanté address) to a patient's care team.
    Add {
        #[command(flatten)]
        data: DataDirArg,
        /// The patient's INS matricule (15 characters).
        ins: String,
        /// National id (8+RPPS, 0+ADELI) or MSSanté address.
        id: String,
        /// Role in the team (« médecin traitant »…).
        #[arg(long)]
        role: Option<String>,
    },
    /// Remove a professional from a patient's care team.
    Remove {
        #[command(flatten)]
        data: DataDirArg,
        ins: String,
        id: String,
    },
    /// List a patient's care team.
    List {
        #[command(flatten)]
        data: DataDirArg,
        ins: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
