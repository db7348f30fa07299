//! The sandbox is the other side of the wire: it must never use mss's own clients or the
//! test kit, or a bug shared by client and server would be invisible (ARCHITECTURE.md).

#[test]
fn the_sandbox_depends_on_none_of_mss_clients() {
    let manifest: toml::Table =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let forbidden = [
        "mss-psc",
        "mss-transport",
        "mss-engine",
        "mss-testkit",
        "mss",
    ];
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        assert!(
            deps.contains_key("axum") || section != "dependencies",
            "the manifest was read"
        );
        for name in forbidden {
            assert!(!deps.contains_key(name), "{section} has {name}");
        }
    }
}
