//! `mss conformance`: starts the sandbox in this process, has a client work against it one
//! step at a time (mss itself, run as a separate process exactly as a user runs it, or
//! another software driven by a person while the step waits), and judges each step with
//! the sandbox's checks (docs/conformance.md).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mss_sandbox::conformance::{self, CheckResult, Fault, Observation, STEPS, Step};
use mss_sandbox::operator::OperatorContext;
use mss_sandbox::{Sandbox, SandboxInfo, SandboxOptions};

use crate::cli::{ConformanceArgs, ConformanceClient};

pub fn run(args: ConformanceArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let results = runtime.block_on(run_steps(&args))?;
    if args.json {
        super::print_json(&results)?;
    } else {
        print!("{}", conformance::report(&results));
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        bail!("{failed} conformance check(s) did not pass / vérification(s) en échec");
    }
    Ok(())
}

async fn run_steps(args: &ConformanceArgs) -> Result<Vec<CheckResult>> {
    let mut options = SandboxOptions::new(&args.sandbox);
    // Approve CIBA at once: the steps are about the operator, not about waiting.
    options.ciba_delay = Duration::ZERO;
    let sandbox = Sandbox::start(options).await?;
    let ctx = sandbox.operator.context.clone();
    let wanted: Vec<&Step> = STEPS
        .iter()
        .filter(|s| args.step.is_empty() || args.step.iter().any(|w| w == s.id))
        .collect();
    if wanted.is_empty() {
        bail!(
            "no such step: {} (steps: {})",
            args.step.join(", "),
            STEPS.iter().map(|s| s.id).collect::<Vec<_>>().join(", ")
        );
    }
    let mut results = Vec::new();
    for step in wanted {
        set_fault(&ctx, step.fault);
        let mark = ctx.recorder.mark();
        let driven = match args.client {
            ConformanceClient::Mss => drive_mss(step, &sandbox.info).await,
            ConformanceClient::Other => {
                wait_for_other(step, &ctx, mark, Duration::from_secs(args.wait)).await;
                Ok(())
            }
        };
        set_fault(&ctx, Fault::None);
        // Let the operator record the end of the sessions the client just closed.
        tokio::time::sleep(Duration::from_millis(200)).await;
        driven?;
        let observed = Observation {
            events: ctx.recorder.since(mark),
            messages: ctx.recorder.messages_since(mark),
        };
        results.extend(conformance::judge_step(step, &observed));
    }
    Ok(results)
}

fn set_fault(ctx: &OperatorContext, fault: Fault) {
    let faults = &ctx.faults;
    faults
        .untrusted_certificate
        .store(fault == Fault::UntrustedCertificate, Ordering::SeqCst);
    faults.refuse_tokens.store(
        u32::from(fault == Fault::RefuseFirstToken),
        Ordering::SeqCst,
    );
}

/// Shows the step to the person driving the other software, then waits until every check
/// of the step passes, or the time is up (a check can fail on the way: an MDN request is
/// seen before its answer).
async fn wait_for_other(step: &Step, ctx: &OperatorContext, mark: u64, wait: Duration) {
    eprintln!("\n[{}] {}", step.id, step.instruction);
    eprintln!("  (attente / waiting up to {} s)", wait.as_secs());
    let started = Instant::now();
    while started.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let observed = Observation {
            events: ctx.recorder.since(mark),
            messages: ctx.recorder.messages_since(mark),
        };
        if conformance::judge_step(step, &observed)
            .iter()
            .all(|r| r.passed)
        {
            return;
        }
    }
}

/// Runs what mss does for the step, as separate `mss` processes on the sandbox's mss.toml.
async fn drive_mss(step: &Step, info: &SandboxInfo) -> Result<()> {
    let per = |n: usize| {
        info.bals
            .iter()
            .filter(|b| b.auth == "psc")
            .nth(n)
            .map(|b| b.address.clone())
            .context("the sandbox has no personal mailbox")
    };
    let app = info
        .bals
        .iter()
        .find(|b| b.auth == "certificate")
        .map(|b| b.address.clone())
        .context("the sandbox has no application mailbox")?;
    let patient = info
        .patients
        .first()
        .context("the sandbox has no patient")?;
    let document = info
        .documents
        .first()
        .context("the sandbox has no document")?;
    let (sender, recipient) = (per(0)?, per(1)?);
    match step.id {
        "send-document" => {
            let cda = document.to_string_lossy().into_owned();
            mss(
                &info.config,
                &["send", "--bal", &sender, "--to", &recipient, "--cda", &cda],
                true,
            )
            .await
        }
        "end-patient-exchange" => {
            mss(
                &info.config,
                &[
                    "send",
                    "--bal",
                    &sender,
                    "--to",
                    &patient.address,
                    "--subject",
                    "Fin de votre suivi",
                    "--body",
                    "Votre suivi est terminé ; cette conversation est close.",
                    "--close-patient-exchange",
                ],
                true,
            )
            .await
        }
        "mdn-requested" => {
            let cda = document.to_string_lossy().into_owned();
            let request = [
                "send",
                "--bal",
                &sender,
                "--to",
                &recipient,
                "--cda",
                &cda,
                "--request-mdn",
            ];
            mss(&info.config, &request, true).await?;
            // The recipient's software files what arrived and answers.
            mss(&info.config, &["run", "--once"], true).await
        }
        "application-mailbox" => mss(&info.config, &["sync", "--bal", &app, "--once"], true).await,
        "token-refused" => mss(&info.config, &["sync", "--bal", &recipient, "--once"], true).await,
        // The client must fail here: that is the point.
        "untrusted-operator" => {
            mss(
                &info.config,
                &["sync", "--bal", &recipient, "--once"],
                false,
            )
            .await
        }
        other => bail!("mss does not know how to drive step {other}"),
    }
}

/// Runs `mss --config CONFIG ARGS…`; `must_succeed` says whether a failure is an error of
/// the run (the steps that expect a refusal do not).
async fn mss(config: &Path, args: &[&str], must_succeed: bool) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the mss program")?;
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(exe)
            .arg("--config")
            .arg(config)
            .args(args)
            .env_remove("MSS_CONFIG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("mss did not finish within 120 s")?
    .context("cannot run mss")?;
    if must_succeed && !output.status.success() {
        bail!(
            "`mss {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
