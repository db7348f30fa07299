//! `mss directory …` end to end through the binary: import generated files,
//! search (text, JSON, batch), show, care team.

use mss_directory::synth::{Options, write_dir};
use std::process::Command;

fn mss(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mss"))
        .arg("directory")
        .args(args)
        .env("MSS_DATA_DIR", data)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_search_batch_show_and_care_team() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    let opts = Options {
        seed: 5,
        people: 300,
        queries: 20,
        ..Options::default()
    };
    let (paths, _) = write_dir(&files, &opts, "202611250000").unwrap();
    let data = tmp.path().join("data");
    let mut args = vec!["import"];
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let (ok, out, err) = mss(&data, &args);
    assert!(ok, "{err}");
    assert!(
        out.contains("Import terminé") && out.contains("300 personnes"),
        "{out}"
    );

    let (ok, out, err) = mss(&data, &["search", "--json", "médecin"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = v["hits"][0]["id"].as_str().unwrap().to_owned();
    assert!(v["took_us"].as_u64().is_some());

    let (ok, out, err) = mss(
        &data,
        &[
            "search",
            "--batch",
            &files.join("queries.txt").display().to_string(),
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let queries = std::fs::read_to_string(files.join("queries.txt")).unwrap();
    assert_eq!(
        lines.len(),
        queries.lines().filter(|l| !l.trim().is_empty()).count()
    );
    assert!(lines.len() >= 15);
    assert!(
        lines
            .iter()
            .all(|l| l["took_us"].is_u64() && l["hits"].is_array())
    );
    assert!(err.contains("p50"), "{err}");

    let (ok, out, err) = mss(&data, &["show", "--json", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("Identification nationale PP"), "{out}");
    let (ok, _, err) = mss(&data, &["show", "99999999999"]);
    assert!(!ok && err.contains("not in the directory"), "{err}");

    let ins = "279035121518989";
    let (ok, out, err) = mss(
        &data,
        &["care-team", "add", ins, &id, "--role", "médecin traitant"],
    );
    assert!(ok && out.contains("Ajouté"), "{out}{err}");
    let (ok, out, _) = mss(&data, &["care-team", "list", "--json", ins]);
    assert!(
        ok && out.contains(&id) && out.contains("médecin traitant"),
        "{out}"
    );
    let (ok, _, err) = mss(&data, &["care-team", "add", "123", &id]);
    assert!(!ok && !err.is_empty());
}
