//! The whole sandbox started as `mss sandbox` starts it: what it writes and what it serves.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mss_sandbox::{Sandbox, SandboxOptions};
use serde_json::Value;

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test]
async fn sandbox_json_describes_what_runs() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxOptions::new(dir.path()))
        .await
        .unwrap();
    assert!(sandbox.created);
    let json_path = dir.path().join("sandbox.json");
    let info = read_json(&json_path);
    assert_eq!(
        std::fs::metadata(&json_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let http = http();

    // PSC: discovery at the issuer named in the file, and the secret works.
    let issuer = info["psc"]["issuer"].as_str().unwrap();
    let disco: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disco["issuer"], issuer);
    let answer = http
        .post(
            disco["backchannel_authentication_endpoint"]
                .as_str()
                .unwrap(),
        )
        .basic_auth(
            info["psc"]["client_id"].as_str().unwrap(),
            info["psc"]["client_secret"].as_str(),
        )
        .form(&[
            ("scope", "openid scope_all"),
            (
                "login_hint",
                info["bals"][0]["login_hint"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    // Autoconfig announces the reserved operator ports.
    let xml = http
        .get(info["autoconfig"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let imap = info["operator_ports"]["imap"].as_u64().unwrap();
    assert!(xml.contains(&format!("<port>{imap}</port>")), "{xml}");
    // The operator's servers, as host:port, and the same ports in operator_ports.
    for (key, port) in [("imap", "imap"), ("imaps", "imaps"), ("smtp", "smtp")] {
        let addr = info[key].as_str().unwrap();
        assert_eq!(
            addr,
            format!(
                "localhost:{}",
                info["operator_ports"][port].as_u64().unwrap()
            )
        );
        tokio::net::TcpStream::connect(addr.replace("localhost", "127.0.0.1"))
            .await
            .unwrap_or_else(|e| panic!("{key} {addr}: {e}"));
    }

    // Mailboxes: at least two PER, one ORG, one APP with its certificate files.
    let bals = info["bals"].as_array().unwrap();
    let count = |kind: &str| bals.iter().filter(|b| b["kind"] == kind).count();
    assert!(count("per") >= 2 && count("org") >= 1 && count("app") >= 1);
    for bal in bals {
        match bal["auth"].as_str().unwrap() {
            "psc" => assert!(bal["login_hint"].as_str().unwrap().starts_with("8997")),
            "certificate" => {
                assert!(std::path::Path::new(bal["cert_pem"].as_str().unwrap()).exists());
                let key = bal["key_pem"].as_str().unwrap();
                assert_eq!(
                    std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
            other => panic!("auth {other}"),
        }
    }
    assert!(std::path::Path::new(info["ca_pem"].as_str().unwrap()).exists());

    // Patients: valid test INS and their Mon espace santé address.
    let patients = info["patients"].as_array().unwrap();
    assert!(!patients.is_empty());
    for p in patients {
        let matricule = p["matricule"].as_str().unwrap();
        let ins = mss_model::Ins::new(matricule, p["oid"].as_str().unwrap()).unwrap();
        assert_eq!(ins.oid(), "1.2.250.1.213.1.4.10");
        assert_eq!(p["address"], format!("{matricule}@patient.mssante.fr"));
    }

    // mss.toml: the configuration contract, paths relative to the file.
    let config_path = std::path::PathBuf::from(info["config"].as_str().unwrap());
    assert_eq!(config_path, dir.path().join("mss.toml"));
    let config: toml::Table = std::fs::read_to_string(&config_path)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(config["psc"]["issuer"].as_str().unwrap(), issuer);
    assert_eq!(config["software"]["test_identities"].as_bool(), Some(true));
    let anchor = config["tls"]["anchors"][0].as_str().unwrap();
    assert!(dir.path().join(anchor).exists(), "{anchor}");
    let app = config["bal"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"].as_str() == Some("app"))
        .unwrap();
    assert!(
        dir.path()
            .join(app["client_cert"].as_str().unwrap())
            .exists()
    );
    // Every mailbox of both operators; the second operator's name their servers, and
    // each PSC mailbox names the professional who logs in for it.
    let second = info["second_operator"]["bals"].as_array().unwrap();
    let configured = config["bal"].as_array().unwrap();
    assert_eq!(configured.len(), bals.len() + second.len());
    for bal in second {
        let entry = configured
            .iter()
            .find(|b| b["address"].as_str() == bal["address"].as_str())
            .unwrap();
        assert_eq!(
            entry["imap"].as_str(),
            info["second_operator"]["imap"].as_str()
        );
        assert_eq!(entry["login_hint"].as_str(), bal["login_hint"].as_str());
    }
    for bal in configured
        .iter()
        .filter(|b| b["kind"].as_str() != Some("app"))
    {
        assert!(
            bal["login_hint"].as_str().unwrap().starts_with("8997"),
            "{bal}"
        );
    }
}

#[tokio::test]
async fn a_second_start_reuses_the_pki_and_the_client_secret() {
    let dir = tempfile::tempdir().unwrap();
    let first = Sandbox::start(SandboxOptions::new(dir.path()))
        .await
        .unwrap();
    let root = std::fs::read(&first.info.ca_pem).unwrap();
    let secret = first.info.psc.client_secret.clone();
    let app_cert = first
        .info
        .bals
        .iter()
        .find_map(|b| b.cert_pem.clone())
        .unwrap();
    let app_bytes = std::fs::read(&app_cert).unwrap();
    drop(first);

    let second = Sandbox::start(SandboxOptions::new(dir.path()))
        .await
        .unwrap();
    assert!(!second.created);
    let shown = format!("{second:?} {}", second.summary());
    assert!(
        !shown.contains(&secret),
        "the client secret leaks in Debug or the summary"
    );
    assert_eq!(std::fs::read(&second.info.ca_pem).unwrap(), root);
    assert_eq!(second.info.psc.client_secret, secret);
    assert_eq!(std::fs::read(&app_cert).unwrap(), app_bytes);
    eprintln!("second start in {:?}", second.started_in);
}

/// The first of `n` consecutive free ports, below the ephemeral range (where other tests'
/// free ports come from) so that a parallel test does not take one meanwhile.
fn free_run(n: u16) -> u16 {
    let mut base = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    loop {
        let bound: Vec<_> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).ok())
            .collect();
        if bound.len() == n as usize {
            return base;
        }
        base += n;
    }
}

#[tokio::test]
async fn port_base_gives_fixed_ports_and_a_taken_port_is_a_clear_error() {
    let base = free_run(10);
    let dir = tempfile::tempdir().unwrap();
    let mut options = SandboxOptions::new(dir.path());
    options.port_base = Some(base);
    let sandbox = Sandbox::start(options.clone()).await.unwrap();
    assert_eq!(sandbox.psc.addr.port(), base);
    assert_eq!(sandbox.autoconfig.addr.port(), base + 1);
    assert_eq!(sandbox.info.operator_ports.imap, base + 2);
    assert!(sandbox.summary().contains("Pro Santé Connect"));

    let err = Sandbox::start(options).await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{base}")) && err.contains("--port-base"),
        "{err}"
    );
}

#[tokio::test]
async fn every_patient_has_a_test_report_naming_their_ins() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(SandboxOptions::new(dir.path()))
        .await
        .unwrap();
    let info = &sandbox.info;
    assert_eq!(info.documents.len(), info.patients.len());
    for (patient, path) in info.patients.iter().zip(&info.documents) {
        let xml = std::fs::read_to_string(path).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let ins = doc
            .descendants()
            .find(|n| n.has_tag_name("id") && n.attribute("root") == Some("1.2.250.1.213.1.4.10"))
            .unwrap();
        assert_eq!(ins.attribute("extension"), Some(patient.matricule.as_str()));
        assert!(xml.contains(&format!(
            "<family qualifier=\"BR\">{}</family>",
            patient.family_name
        )));
    }
    if std::env::var_os("MSS_KEEP_SANDBOX").is_some() {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
}
